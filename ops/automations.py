"""Tickets the platform opens by itself: alarms of the watched types, maintenance due, devices gone silent.

Each automation names what it opens a ticket for with the ticket's `auto_key`, and the database keeps at most one
open ticket per key (the partial unique index ops_tickets_one_open_per_key): every write here is one
`INSERT … ON CONFLICT (auto_key) WHERE <open> DO …` statement, so two workers racing on the same cause — the cron
role's minute run and the job the readings projector queues, or two worker processes — end with one ticket, the
second writer waiting on the first's row and then updating or leaving it (ops/tests/test_automations.py runs two
workers into each other on purpose).

- Alarms (`alarm:<vehicle>:<family>`): SOS, power cut, tamper and collision alarms (ALARM_TICKET_TYPES) open a
  ticket per vehicle and family, or update the open one (occurrences, last seen) until it is resolved; an alarm no
  later than what a ticket of that key has already seen never opens another, and alarms older than
  `alarm_ticket_max_age_s` open none (a first run, a replay of old history).
- Maintenance (`maintenance:<vehicle>:<service entry>`): a vehicle due (overdue or due soon: ops.selectors) opens one
  ticket per service plan; a resolved one is not opened again until a new service entry is logged.
- Device check (`device_check:<device>`): an active device with no fix, heartbeat or reading for
  `device_check_silent_s` opens one ticket per silence (its last contact is the ticket's `last_seen_at`: a resolved
  ticket for the same silence is not opened again; one that reports and falls silent again opens a new one).

These are ops' writes (like ops.services), run by ops/tasks.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pghistory
import structlog
from django.db import connection, transaction
from django.utils import timezone

from ops.models import TICKET_OPEN_STATUSES, TicketCategory, TicketPriority
from ops.selectors import maintenance_plan
from ops.services import SLA_HOURS
from slo.thresholds import threshold

log = structlog.get_logger(__name__)

# Alarm normalised name → (family, priority): one open ticket per vehicle and family.
ALARM_TICKET_TYPES: dict[str, tuple[str, str]] = {
    "sos_alert": ("sos", TicketPriority.URGENT),
    "power_cut_off_alert": ("power_cut", TicketPriority.HIGH),
    "disassembly_alert": ("tamper", TicketPriority.HIGH),
    "device_pull_out": ("tamper", TicketPriority.HIGH),
    "collision_alert": ("collision", TicketPriority.URGENT),
    "collision_dvr": ("collision", TicketPriority.URGENT),
    "collision_ubi": ("collision", TicketPriority.URGENT),
}
FAMILY_TITLES = {"sos": "SOS", "power_cut": "Power cut", "tamper": "Tamper", "collision": "Collision"}

# The predicate of the partial unique index, for ON CONFLICT to infer it.
_OPEN = "status IN (" + ", ".join(f"'{status}'" for status in TICKET_OPEN_STATUSES) + ")"


@dataclass(frozen=True)
class AlarmGroup:
    auto_key: str
    vehicle_id: int
    plate: str
    family: str
    priority: str
    count: int
    last_seen: datetime
    first_alarm: int
    first_device: int
    first_type: str


_ALARM_GROUPS = """
WITH watched AS (
    SELECT d.vehicle_id, f.family, f.priority, a.parsed_id, a.occurred_at, a.device_id, a.normalised_name,
           'alarm:' || d.vehicle_id || ':' || f.family AS auto_key
      FROM state_alarms a
      JOIN unnest(%(names)s::text[], %(families)s::text[], %(priorities)s::text[]) AS f(name, family, priority)
        ON f.name = a.normalised_name
      JOIN domain_devices d ON d.id = a.device_id
     WHERE NOT a.cleared AND d.vehicle_id IS NOT NULL AND a.occurred_at >= %(since)s
)
SELECT w.auto_key, w.vehicle_id, v.plate, w.family, min(w.priority), count(*), max(w.occurred_at),
       (array_agg(w.parsed_id ORDER BY w.occurred_at, w.parsed_id))[1],
       (array_agg(w.device_id ORDER BY w.occurred_at, w.parsed_id))[1],
       (array_agg(w.normalised_name ORDER BY w.occurred_at, w.parsed_id))[1]
  FROM watched w
  JOIN domain_vehicles v ON v.id = w.vehicle_id
 WHERE w.occurred_at > coalesce((SELECT max(t.last_seen_at) FROM ops_tickets t WHERE t.auto_key = w.auto_key),
                                '-infinity')
 GROUP BY w.auto_key, w.vehicle_id, v.plate, w.family
 ORDER BY w.auto_key
"""

# One statement: a new ticket, or the open one of the key counts the alarms it has not seen yet (between its
# last_seen_at and this group's); a writer that lost the race to an equal or newer last_seen_at changes nothing.
_ALARM_UPSERT = f"""
INSERT INTO ops_tickets (title, description, category, priority, status, vehicle_id, device_id, alarm_parsed_id,
                         alarm_type, auto_key, occurrences, last_seen_at, opened_at, status_changed_at, sla_due_at)
VALUES (%(title)s, %(description)s, 'alarm', %(priority)s, 'open', %(vehicle)s, %(device)s, %(alarm)s, %(type)s,
        %(auto_key)s, %(count)s, %(last_seen)s, now(), now(), now() + make_interval(secs => %(sla_s)s))
ON CONFLICT (auto_key) WHERE {_OPEN} DO UPDATE
   SET occurrences = ops_tickets.occurrences + (
           SELECT count(*) FROM state_alarms a JOIN domain_devices d ON d.id = a.device_id
            WHERE d.vehicle_id = ops_tickets.vehicle_id AND a.normalised_name = ANY(%(family_names)s) AND NOT a.cleared
              AND a.occurred_at > ops_tickets.last_seen_at AND a.occurred_at <= EXCLUDED.last_seen_at),
       last_seen_at = EXCLUDED.last_seen_at
 WHERE ops_tickets.last_seen_at < EXCLUDED.last_seen_at
RETURNING id, xmax = 0
"""


def alarm_ticket_groups(*, now: datetime) -> list[AlarmGroup]:
    """Per vehicle and family, the watched alarms no ticket of that key has seen yet."""
    names = list(ALARM_TICKET_TYPES)
    with connection.cursor() as cursor:
        cursor.execute(
            _ALARM_GROUPS,
            {
                "names": names,
                "families": [ALARM_TICKET_TYPES[n][0] for n in names],
                "priorities": [str(ALARM_TICKET_TYPES[n][1]) for n in names],
                "since": now - timedelta(seconds=threshold("alarm_ticket_max_age_s")),
            },
        )
        return [AlarmGroup(*row) for row in cursor.fetchall()]


def alarm_ticket_upsert(group: AlarmGroup) -> tuple[int, bool] | None:
    """Open the group's ticket or update the open one: (ticket id, opened?), or None when a racing writer already
    saw as much."""
    title = f"{FAMILY_TITLES[group.family]} on {group.plate}"
    with connection.cursor() as cursor:
        cursor.execute(
            _ALARM_UPSERT,
            {
                "title": title,
                "description": f"Opened by the alarm automation: {FAMILY_TITLES[group.family].lower()} alarms on "
                f"{group.plate}. Further alarms of the kind update this ticket until it is resolved.",
                "priority": group.priority,
                "vehicle": group.vehicle_id,
                "device": group.first_device,
                "alarm": group.first_alarm,
                "type": group.first_type,
                "auto_key": group.auto_key,
                "count": group.count,
                "last_seen": group.last_seen,
                "sla_s": SLA_HOURS[group.priority]() * 3600,
                "family_names": [n for n, (family, _) in ALARM_TICKET_TYPES.items() if family == group.family],
            },
        )
        row = cursor.fetchone()
    return (row[0], bool(row[1])) if row else None


def alarm_tickets_sync(*, now: datetime | None = None) -> dict[str, int]:
    """Open or update the alarm tickets; one transaction per ticket (a slow one holds nobody else up)."""
    now = now or timezone.now()
    opened = updated = 0
    for group in alarm_ticket_groups(now=now):
        with pghistory.context(reason=f"automation: {group.family} alarms"), transaction.atomic():
            result = alarm_ticket_upsert(group)
        if result is not None:
            opened += result[1]
            updated += not result[1]
    if opened or updated:
        log.info("ops.alarm_tickets", opened=opened, updated=updated)
    return {"opened": opened, "updated": updated}


_SIMPLE_UPSERT = f"""
INSERT INTO ops_tickets (title, description, category, priority, status, vehicle_id, device_id, alarm_type, auto_key,
                         occurrences, last_seen_at, opened_at, status_changed_at, sla_due_at)
SELECT %(title)s, %(description)s, %(category)s, %(priority)s, 'open', %(vehicle)s, %(device)s, '', %(auto_key)s, 1,
       %(last_seen)s, now(), now(), now() + make_interval(secs => %(sla_s)s)
 WHERE NOT EXISTS (SELECT 1 FROM ops_tickets t WHERE t.auto_key = %(auto_key)s
                    AND (t.{_OPEN} OR t.last_seen_at IS NOT DISTINCT FROM %(last_seen)s::timestamptz))
ON CONFLICT (auto_key) WHERE {_OPEN} DO NOTHING
RETURNING id
"""


def _simple_upsert(**params: Any) -> bool:
    priority = str(params["priority"])
    with connection.cursor() as cursor:
        cursor.execute(_SIMPLE_UPSERT, {**params, "sla_s": SLA_HOURS[priority]() * 3600})
        return cursor.fetchone() is not None


def maintenance_tickets_sync(*, now: datetime | None = None) -> int:
    """One ticket per due service plan (overdue or due soon); returns how many were opened."""
    opened = 0
    for row in maintenance_plan(now=now):
        if not row.due:
            continue
        left = [
            f"{row.km_left:,.0f} km" if row.km_left is not None else "",
            f"{row.days_left} days" if row.days_left is not None else "",
        ]
        why = " or ".join(part for part in left if part) + " left"
        with pghistory.context(reason="automation: maintenance due"), transaction.atomic():
            opened += _simple_upsert(
                title=f"Service due on {row.plate}",
                description=f"Opened by the maintenance automation: {row.status} ({why}); last service "
                f"{row.service_date}.",
                category=TicketCategory.MAINTENANCE,
                priority=TicketPriority.HIGH if row.status == "overdue" else TicketPriority.NORMAL,
                vehicle=row.vehicle_id,
                device=None,
                auto_key=f"maintenance:{row.vehicle_id}:{row.service_id}",
                last_seen=None,
            )
    if opened:
        log.info("ops.maintenance_tickets", opened=opened)
    return opened


# Last contact: the latest of the live fix, the latest heartbeat and the latest reading (greatest() skips NULLs); a
# device that never reported is silent since it was activated.
_LAST_CONTACT = "greatest(l.occurred_at, s.last_heartbeat_at, s.last_reading_at)"
_SILENT = f"""
SELECT d.id, d.imei, d.vehicle_id, v.plate, coalesce({_LAST_CONTACT}, d.lifecycle_changed_at), {_LAST_CONTACT} IS NULL
  FROM domain_devices d
  LEFT JOIN domain_vehicles v ON v.id = d.vehicle_id
  LEFT JOIN state_live_positions l ON l.device_id = d.id
  LEFT JOIN state_devices s ON s.device_id = d.id
 WHERE d.lifecycle = 'active' AND coalesce({_LAST_CONTACT}, d.lifecycle_changed_at) < %(silent_since)s
 ORDER BY d.id
"""


def device_check_tickets_sync(*, now: datetime | None = None) -> int:
    """One "device check" ticket per silence of an active device; returns how many were opened."""
    now = now or timezone.now()
    silent_since = now - timedelta(seconds=threshold("device_check_silent_s"))
    with connection.cursor() as cursor:
        cursor.execute(_SILENT, {"silent_since": silent_since})
        silent = cursor.fetchall()
    opened = 0
    for device_id, imei, vehicle_id, plate, since, never in silent:
        what = "never reported since it was activated" if never else "no fix, heartbeat or reading"
        with pghistory.context(reason="automation: device silent"), transaction.atomic():
            opened += _simple_upsert(
                title=f"Device check: {plate or imei} silent",
                description=f"Opened by the device automation: {imei} ({plate or 'no vehicle'}) — {what} since "
                f"{since:%Y-%m-%d %H:%M} UTC.",
                category=TicketCategory.DEVICE_CHECK,
                priority=TicketPriority.HIGH,
                vehicle=vehicle_id,
                device=device_id,
                auto_key=f"device_check:{device_id}",
                last_seen=since,
            )
    if opened:
        log.info("ops.device_check_tickets", opened=opened)
    return opened


def automations_run(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    alarms = alarm_tickets_sync(now=now)
    return {
        "alarm_opened": alarms["opened"],
        "alarm_updated": alarms["updated"],
        "maintenance_opened": maintenance_tickets_sync(now=now),
        "device_check_opened": device_check_tickets_sync(now=now),
    }
