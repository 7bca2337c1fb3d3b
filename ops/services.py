"""Writes of the ops layer: tickets and their comments; and the ops actions that go through the log.

The database is the authority on the ticket rules (the status FSM trigger, the SLA clock trigger, the one open
ticket per automation key); these services turn its refusals into exceptions a clerk can act on, and record who
did what in pghistory's context, as domain.services does for devices.

An alarm acknowledgement, an odometer reading or correction and a manual driver assignment change derived state, so
they are never written into a state (or domain) table here: each is appended to the log as an ops event
(events.services.ops_event_append; parsed by events/parsers/ops.py) and projected like any push, so a replay keeps it.
Each returns the raw row's id; the projection follows within the worker's wake-up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pghistory
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import Q
from django.utils import timezone

from domain.models import Device, Driver, DriverAssignment, Vehicle
from events.services import ops_event_append
from ops.models import TICKET_TRANSITIONS, ServiceLog, Ticket, TicketComment, TicketPriority, TicketStatus
from ops.selectors import AccountUnknown, alarm_refs, vehicle_account_id
from slo.thresholds import threshold

# SQLSTATE of a plpgsql RAISE EXCEPTION: how the pgtrigger FSM trigger refuses a move (see domain.services).
RAISE_EXCEPTION_SQLSTATE = "P0001"


class OpsError(Exception):
    """A write ops refuses, with a message meant for the person who asked for it."""


class TicketTransitionError(OpsError):
    pass


def _history_context(user: Any, reason: str) -> dict[str, Any]:
    return {"reason": reason} | ({"user": user.pk} if user is not None else {})


# Hours from opening to the SLA deadline, per priority: rows of slo_targets (ticket_sla_<priority>_h).
SLA_HOURS: dict[str, Callable[[], float]] = {
    TicketPriority.URGENT: lambda: threshold("ticket_sla_urgent_h"),
    TicketPriority.HIGH: lambda: threshold("ticket_sla_high_h"),
    TicketPriority.NORMAL: lambda: threshold("ticket_sla_normal_h"),
    TicketPriority.LOW: lambda: threshold("ticket_sla_low_h"),
}


def ticket_sla_due(*, priority: str, opened_at: datetime) -> datetime:
    return opened_at + timedelta(hours=SLA_HOURS[priority]())


def ticket_allowed_from(status: str) -> list[str]:
    """The statuses a ticket in `status` may move to (TICKET_TRANSITIONS, which the database enforces)."""
    return [str(new) for old, new in TICKET_TRANSITIONS if old == status]


def ticket_open(
    *,
    title: str,
    category: str,
    priority: str = TicketPriority.NORMAL,
    description: str = "",
    vehicle: Vehicle | None = None,
    device: Device | None = None,
    driver: Driver | None = None,
    alarm_parsed_id: int | None = None,
    alarm_type: str = "",
    assignee: Any = None,
    due_at: datetime | None = None,
    user: Any = None,
) -> Ticket:
    """Open a ticket; its SLA deadline follows from the priority (a threshold row per priority)."""
    if vehicle is None and device is not None:
        vehicle = device.vehicle
    now = timezone.now()
    with pghistory.context(**_history_context(user, "opened")), transaction.atomic():
        return Ticket.objects.create(
            title=title.strip(),
            description=description,
            category=category,
            priority=priority,
            vehicle=vehicle,
            device=device,
            driver=driver,
            alarm_parsed_id=alarm_parsed_id,
            alarm_type=alarm_type,
            assignee=assignee,
            due_at=due_at,
            created_by=user,
            opened_at=now,
            status_changed_at=now,
            sla_due_at=ticket_sla_due(priority=priority, opened_at=now),
        )


def _transition_refused(ticket: Ticket, to: str) -> TicketTransitionError:
    allowed = ", ".join(ticket_allowed_from(ticket.status)) or "nothing (final state)"
    return TicketTransitionError(
        f"ticket #{ticket.pk}: cannot go from {ticket.status} to {to}; allowed from {ticket.status}: {allowed}"
    )


def ticket_transition(*, ticket: Ticket, to: str, user: Any = None, note: str = "") -> Ticket:
    """Move `ticket` to status `to`. The FSM trigger on ops_tickets decides, against the row as it is in the
    database (a stale `ticket` cannot sneak through); a note becomes a comment in the same transaction."""
    if to not in TicketStatus.values:
        raise TicketTransitionError(f"ticket #{ticket.pk}: {to!r} is not a ticket status")
    reason = f"status → {to}" + (f": {note.strip()}" if note.strip() else "")
    with pghistory.context(**_history_context(user, reason)):
        try:
            with transaction.atomic():
                updated = Ticket.objects.filter(pk=ticket.pk).exclude(status=to).update(status=to)
                if updated and note.strip():
                    TicketComment.objects.create(ticket=ticket, author=user, body=note.strip())
        except DatabaseError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != RAISE_EXCEPTION_SQLSTATE:
                raise
            ticket.refresh_from_db()
            raise _transition_refused(ticket, to) from exc
    ticket.refresh_from_db()
    if not updated:
        raise TicketTransitionError(f"ticket #{ticket.pk}: already {ticket.status}")
    return ticket


def ticket_comment(*, ticket: Ticket, body: str, user: Any = None) -> TicketComment:
    body = body.strip()
    if not body:
        raise OpsError(f"ticket #{ticket.pk}: a comment needs some text")
    with pghistory.context(**_history_context(user, "comment")):
        return TicketComment.objects.create(ticket=ticket, author=user, body=body)


def ticket_update(*, ticket: Ticket, user: Any = None, **changes: Any) -> Ticket:
    """Change a ticket's editable fields (never its status: ticket_transition). A new priority moves the SLA
    deadline by the difference of the two priorities' hours (time already added for waits stays added)."""
    editable = {"title", "description", "priority", "assignee", "due_at", "vehicle", "device", "driver", "category"}
    unknown = set(changes) - editable
    if unknown:
        raise OpsError(f"ticket #{ticket.pk}: cannot change {', '.join(sorted(unknown))} here")
    changed = [name for name, value in changes.items() if getattr(ticket, name) != value]
    if not changed:
        return ticket
    for name in changed:
        setattr(ticket, name, changes[name])
    if "priority" in changed and ticket.sla_due_at is not None:
        before = Ticket.objects.values_list("priority", flat=True).get(pk=ticket.pk)
        ticket.sla_due_at += timedelta(hours=SLA_HOURS[ticket.priority]() - SLA_HOURS[before]())
        changed.append("sla_due_at")
    with pghistory.context(**_history_context(user, "changed: " + ", ".join(changed))):
        # Only these columns: a whole-row save could write back a status changed meanwhile.
        ticket.save(update_fields=changed)
    return ticket


# --- Ops actions through the log -------------------------------------------------------------------------------


def _actor(user: Any) -> str:
    """Who did it, as the log keeps it: a username (a user may be deleted later; the name stays readable)."""
    return str(user.get_username()) if user is not None else "automation"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def alarms_acknowledge(*, parsed_ids: list[int], user: Any, note: str = "") -> tuple[list[int], list[str]]:
    """Acknowledge alarms (state_alarms rows, by parsed event id): one `alarm_ack` event each. Returns the raw ids
    written and, for the alarms skipped, why (already acknowledged, or no such alarm)."""
    refs = alarm_refs(parsed_ids=parsed_ids)
    written: list[int] = []
    skipped: list[str] = []
    now = timezone.now()
    with transaction.atomic():
        for parsed_id in parsed_ids:
            ref = refs.get(parsed_id)
            if ref is None:
                skipped.append(f"alarm #{parsed_id}: no such alarm")
                continue
            if ref.acknowledged_at is not None:
                skipped.append(
                    f"alarm #{parsed_id}: acknowledged by {ref.acknowledged_by} at {ref.acknowledged_at:%Y-%m-%d %H:%M}"
                )
                continue
            document = {
                "id": uuid.uuid4().hex,
                "imei": ref.imei,
                "alarm_at": _iso(ref.occurred_at),
                "alarm_key": ref.dedup_key,
                "acknowledged_at": _iso(now),
                "acknowledged_by": _actor(user),
                "note": note.strip() or None,
            }
            raw_id, _ = ops_event_append(account_id=ref.account_id, action="alarm_ack", document=document)
            written.append(raw_id)
    return written, skipped


ODOMETER_SOURCES = ("reading", "correction", "service")


def odometer_record(
    *, vehicle: Vehicle, odometer_km: float, read_at: datetime, user: Any, source: str = "reading", note: str = ""
) -> int:
    """A vehicle's odometer as read (or corrected: the latest reading by read time is what counts, so a correction
    dated now supersedes a wrong reading). One `odometer_reading` event; returns its raw id."""
    if source not in ODOMETER_SOURCES:
        raise OpsError(f"{source!r} is not an odometer source ({', '.join(ODOMETER_SOURCES)})")
    if odometer_km < 0:
        raise OpsError(f"{vehicle.plate}: an odometer cannot read {odometer_km:g} km")
    now = timezone.now()
    if read_at > now:
        raise OpsError(f"{vehicle.plate}: a reading cannot be dated in the future ({read_at:%Y-%m-%d %H:%M})")
    try:
        account_id = vehicle_account_id(vehicle)
    except AccountUnknown as exc:
        raise OpsError(str(exc)) from exc
    document = {
        "id": uuid.uuid4().hex,
        "plate": vehicle.plate,
        "odometer_km": float(odometer_km),
        "read_at": _iso(read_at),
        "source": source,
        "recorded_by": _actor(user),
        "recorded_at": _iso(now),
        "note": note.strip() or None,
    }
    raw_id, _ = ops_event_append(account_id=account_id, action="odometer_reading", document=document)
    return raw_id


def driver_assign(
    *, vehicle: Vehicle, driver: Driver, start: datetime, end: datetime | None = None, user: Any, note: str = ""
) -> int:
    """Put `driver` on `vehicle` for [start, end): one `driver_assignment` event, which the drivers projector applies
    to the domain. An overlap the domain would refuse is refused here already, with the clash named."""
    if end is not None and end <= start:
        raise OpsError(f"an assignment must end after it starts ({start:%Y-%m-%d %H:%M})")
    period = DateTimeTZRange(start, end, "[)")
    clash = (
        DriverAssignment.objects.filter(Q(vehicle=vehicle) | Q(driver=driver), period__overlap=period)
        .select_related("driver", "vehicle")
        .first()
    )
    if clash is not None:
        raise OpsError(f"{clash.driver} is on {clash.vehicle} for an overlapping period; end that assignment first")
    try:
        account_id = vehicle_account_id(vehicle)
    except AccountUnknown as exc:
        raise OpsError(str(exc)) from exc
    document = {
        "id": uuid.uuid4().hex,
        "driver_id": driver.pk,
        "driver_name": driver.name,
        "plate": vehicle.plate,
        "start": _iso(start),
        "end": _iso(end) if end is not None else None,
        "assigned_by": _actor(user),
        "recorded_at": _iso(timezone.now()),
        "note": note.strip() or None,
    }
    raw_id, _ = ops_event_append(account_id=account_id, action="driver_assignment", document=document)
    return raw_id


# --- Service log -------------------------------------------------------------------------------------------------


def service_log_record(
    *,
    vehicle: Vehicle,
    service_date: date,
    work_done: str,
    user: Any,
    odometer_km: float | None = None,
    cost: Decimal | None = None,
    currency: str = "KES",
    next_due_km: float | None = None,
    next_due_date: date | None = None,
) -> ServiceLog:
    """A service done on a vehicle. Its odometer, when given, is also an odometer reading (an `odometer_reading`
    event with source "service", dated at the start of the service day in DISPLAY_TIME_ZONE), so the vehicle's
    distance since the service counts from it."""
    if not work_done.strip():
        raise OpsError(f"{vehicle.plate}: say what work was done")
    if service_date > timezone.localdate(timezone=ZoneInfo(settings.DISPLAY_TIME_ZONE)):
        raise OpsError(f"{vehicle.plate}: a service cannot be dated in the future ({service_date})")
    if odometer_km is not None and next_due_km is not None and next_due_km <= odometer_km:
        raise OpsError(
            f"{vehicle.plate}: the next service ({next_due_km:g} km) must be after this one ({odometer_km:g} km)"
        )
    if next_due_date is not None and next_due_date <= service_date:
        raise OpsError(f"{vehicle.plate}: the next service ({next_due_date}) must be after this one ({service_date})")
    if cost is not None and cost < 0:
        raise OpsError(f"{vehicle.plate}: a cost cannot be negative")
    with pghistory.context(**_history_context(user, "service recorded")), transaction.atomic():
        entry = ServiceLog.objects.create(
            vehicle=vehicle, service_date=service_date, odometer_km=odometer_km, work_done=work_done.strip(),
            cost=cost, currency=currency, next_due_km=next_due_km, next_due_date=next_due_date, recorded_by=user,
        )  # fmt: skip
        if odometer_km is not None:
            day_start = datetime.combine(service_date, time(), tzinfo=ZoneInfo(settings.DISPLAY_TIME_ZONE))
            odometer_record(
                vehicle=vehicle, odometer_km=odometer_km, read_at=min(day_start, timezone.now()), user=user,
                source="service", note=f"service #{entry.pk}",
            )  # fmt: skip
    return entry


# --- Restore -----------------------------------------------------------------------------------------------------


def ticket_alarms_renumber(*, keys: Sequence[tuple[int, str, datetime]]) -> tuple[int, int]:
    """Point tickets, and their history, at the new ids of the alarm events they name, after the log was parsed
    again into an empty events_parsed (a restore from the events-only backup: fleet/backup.py). `keys` are the
    (old id, dedup key, device time) of those events, from ops.selectors.ticket_alarm_keys at backup time. A ticket
    whose alarm event the parsers no longer give (or that named none that existed) loses the link.

    The tickets did not change, only their alarm's numbering did: the database's triggers are bypassed for this one
    statement per table (no history event, FSM or SLA clock), which takes a superuser, as the restore does anyway.
    Returns (relinked, unlinked) tickets."""
    counts = {True: 0, False: 0}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("CREATE TEMP TABLE ops_alarm_renumber (old_id bigint PRIMARY KEY, new_id bigint) ON COMMIT DROP")
        cursor.execute(
            "INSERT INTO ops_alarm_renumber (old_id, new_id)"
            " SELECT u.old_id, p.id FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS u(old_id, key, at)"
            "   LEFT JOIN events_parsed p ON p.dedup_key = u.key AND p.occurred_at = u.at",
            [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]],
        )
        for table in ("ops_tickets", "ops_ticketevent"):
            # One statement: each row is matched on its old id, so an old id equal to another's new id is no trap.
            cursor.execute(
                f"UPDATE {table} t SET alarm_parsed_id = (SELECT r.new_id FROM ops_alarm_renumber r"
                "                                          WHERE r.old_id = t.alarm_parsed_id)"
                " WHERE t.alarm_parsed_id IS NOT NULL RETURNING t.alarm_parsed_id IS NOT NULL"
            )
            if table == "ops_tickets":
                for (linked,) in cursor.fetchall():
                    counts[linked] += 1
    return counts[True], counts[False]
