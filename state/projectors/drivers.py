"""The drivers projector: the log's facts about drivers, applied to the domain (drivers and their assignments).

It owns no state table. The domain is the record of who drives what; this projector is how facts that arrive
through the log reach it — a clerk's manual assignment (`driver_assignment`, appended by ops) and the HR system's
roster (`driver_record`, one per driver row of a `driver_roster` push) — through the domain's own services (state
may call down into domain), so every rule the domain enforces (no double-booking, in the database) holds, and
pghistory records each change with the roster or the clerk it came from.

Applying is idempotent: an assignment that already exists as the event describes it is left alone, and a roster
row older than the roster that last set its driver changes nothing (domain.services.roster_record_apply). So a replay
re-applies the log in order (occurred_at, then id) and changes nothing that is already there, and re-creates what
is missing. Events are applied, never retracted: a domain row outlives the event that made it (a clerk ends an
assignment in the admin, as a record of work, not by deleting the log). A fact the domain refuses (an assignment
that overlaps another, a driver or vehicle that no longer exists) is skipped and logged, never retried: retrying
cannot change the answer, and a replay must not stop on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pghistory
import structlog
from django.db import connection
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

from domain.models import Driver, DriverAssignment, Vehicle
from domain.plates import normalize_plate
from domain.services import DomainError, RosterRecord, roster_record_apply, vehicle_assign_driver
from events.parsers.fields import to_time

log = structlog.get_logger(__name__)

KINDS = ("driver_assignment", "driver_record")


@dataclass(frozen=True)
class DriverFact:
    parsed_id: int
    kind: str
    occurred_at: datetime
    payload: dict[str, Any]


_SELECT = "SELECT p.id, p.kind, p.occurred_at, p.payload FROM events_parsed p WHERE p.kind = ANY(%(kinds)s) AND "


def facts_of(*, parsed_ids: Sequence[int], occurred: Sequence[datetime]) -> list[DriverFact]:
    """The events of these work-list rows that still exist, in the order they are applied."""
    return _facts(
        "p.id = ANY(%(ids)s) AND p.occurred_at = ANY(%(ats)s)",
        {"ids": list(parsed_ids), "ats": sorted(set(occurred))},
    )


def facts_in(*, where: str, params: dict[str, Any]) -> list[DriverFact]:
    """Replay: every driver event matching `where` (events_parsed alias p)."""
    return _facts(where, params)


def _facts(where: str, params: dict[str, Any]) -> list[DriverFact]:
    with connection.cursor() as cursor:
        cursor.execute(_SELECT + where + " ORDER BY p.occurred_at, p.id", {**params, "kinds": list(KINDS)})
        # Django's cursor hands jsonb over as text.
        return [DriverFact(r[0], r[1], r[2], r[3] if isinstance(r[3], dict) else json.loads(r[3])) for r in cursor]


def facts_apply(facts: Sequence[DriverFact]) -> int:
    """Apply each fact to the domain; returns how many changed it."""
    changed = 0
    for fact in facts:
        if fact.kind == "driver_assignment":
            changed += _assignment_apply(fact)
        elif fact.kind == "driver_record":
            changed += _roster_apply(fact)
    return changed


def _time(value: Any) -> datetime | None:
    return to_time(value) if value else None


def _roster_apply(fact: DriverFact) -> bool:
    """One HR roster row (kind driver_record, dated at the roster's extraction): domain.services.roster_record_apply
    keeps the newest roster's word per driver, so a late or replayed older row changes nothing."""
    p = fact.payload
    record = RosterRecord(
        hr_id=str(p["hr_id"]), name=str(p["name"]), extracted_at=fact.occurred_at, phone=p.get("phone"),
        licence_number=p.get("licence_number"), active=p.get("active") is not False,
        vehicle_plate=p.get("vehicle_plate"), assigned_from=_time(p.get("assigned_from")),
        assigned_until=_time(p.get("assigned_until")),
    )  # fmt: skip
    try:
        done = roster_record_apply(record)
    except DomainError as exc:
        return _skip(fact, str(exc))
    if done:
        log.info("drivers.roster", parsed_id=fact.parsed_id, hr_id=record.hr_id, done=done)
    return bool(done)


def _skip(fact: DriverFact, why: str) -> bool:
    log.warning("drivers.skipped", parsed_id=fact.parsed_id, kind=fact.kind, reason=why)
    return False


def _assignment_apply(fact: DriverFact) -> bool:
    payload = fact.payload
    driver_id = payload.get("driver_id")
    driver = Driver.objects.filter(pk=driver_id).first() if isinstance(driver_id, int) else None
    try:
        vehicle = Vehicle.objects.filter(plate=normalize_plate(str(payload.get("plate", "")))).first()
    except ValueError:
        vehicle = None
    if driver is None or vehicle is None:
        return _skip(fact, f"no driver #{payload.get('driver_id')} or no vehicle {payload.get('plate')!r}")
    start = to_time(payload["start"])
    end = to_time(payload["end"]) if payload.get("end") else None
    period = DateTimeTZRange(start, end, "[)")
    if DriverAssignment.objects.filter(driver=driver, vehicle=vehicle, period=period).exists():
        return False
    note = " · ".join(filter(None, [payload.get("note"), f"assigned by {payload.get('assigned_by')}"]))
    reason = f"driver assignment by {payload.get('assigned_by')} (event #{fact.parsed_id})"
    try:
        with pghistory.context(reason=reason):
            vehicle_assign_driver(vehicle=vehicle, driver=driver, start=start, end=end, note=note[:200])
    except (DomainError, ValueError) as exc:
        return _skip(fact, str(exc))
    return True
