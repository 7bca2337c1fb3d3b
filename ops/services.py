"""Writes of the ops layer: tickets and their comments.

The database is the authority on the ticket rules (the status FSM trigger, the SLA clock trigger, the one open
ticket per automation key); these services turn its refusals into exceptions a clerk can act on, and record who
did what in pghistory's context, as domain.services does for devices.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pghistory
from django.db import DatabaseError, transaction
from django.utils import timezone

from domain.models import Device, Driver, Vehicle
from ops.models import TICKET_TRANSITIONS, Ticket, TicketComment, TicketPriority, TicketStatus
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
