"""The three projectors (work-list groups) and what a batch or a replay of each does, in order.

positions: position_fix, trip_report, parking_report → history (verdicts) → live positions; hands each changed device
           window (and each report) to the trips projector, in its own transaction.
trips:     what positions handed over → trips and parking events (derived from history; Jimi's reports). Apart from
           positions so that a live position never waits for a trip re-fold: the two run side by side, and a trips
           batch behind a burst re-folds each device once for all the fixes that reached it meanwhile.
readings:  alarm, heartbeat, device_event, device_meta, obd, fuel, temperature, lbs, odometer_reading → reading
           tables → devices; alarm_ack → the acknowledged alarm's row.
drivers:   driver_assignment, driver_record (the HR roster) → the domain's drivers and assignments (through domain
           services).

Each step calls the module that owns the table; this module writes nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from state.models import Projector
from state.projectors import devices, drivers, history, live, readings, trips
from state.projectors.runner import Fold, Pending, projector_enqueue, projector_forget, projector_lock
from state.signals import alarms_folded

REPORT_KINDS = ("trip_report", "parking_report")


def positions_fold(pending: Sequence[Pending]) -> None:
    fixes = [p for p in pending if p.kind == "position_fix"]
    handed: list[Pending] = []
    if fixes:
        history.history_partitions_cover(lo=min(p.occurred_at for p in fixes), hi=max(p.occurred_at for p in fixes))
        history.history_refresh(parsed_ids=[p.parsed_id for p in fixes], occurred=[p.occurred_at for p in fixes])
        windows: dict[int, tuple[datetime, datetime]] = {}
        first: dict[int, Pending] = {}
        for p in fixes:
            if p.device_id is None:
                continue
            lo, hi = windows.get(p.device_id, (p.occurred_at, p.occurred_at))
            windows[p.device_id] = (min(lo, p.occurred_at), max(hi, p.occurred_at))
            first.setdefault(p.device_id, p)
        los = positions_windows_refold(windows)
        # One row per device for the trips projector: re-fold from its earliest change.
        handed += [Pending(first[d].parsed_id, lo, d, "position_fix") for d, lo in los.items()]
    handed += [Pending(p.parsed_id, p.occurred_at, p.device_id, p.kind) for p in pending if p.kind in REPORT_KINDS]
    projector_enqueue(Projector.TRIPS, handed, wake_task="state.project_trips")


def positions_windows_refold(windows: dict[int, tuple[datetime, datetime]]) -> dict[int, datetime]:
    """After history rows of these windows changed: verdicts, live positions. Returns, per device, where its trips
    must be re-folded from (the window's start, or an earlier fix whose verdict changed)."""
    changed = history.verdicts_recompute(windows)
    live.live_positions_refresh(device_ids=list(windows))
    return {d: min(lo, changed.get(d, lo)) for d, (lo, _hi) in windows.items()}


def trips_fold(pending: Sequence[Pending]) -> None:
    los: dict[int, datetime] = {}
    for p in pending:
        if p.kind == "position_fix" and p.device_id is not None:
            los[p.device_id] = min(p.occurred_at, los.get(p.device_id, p.occurred_at))
    trips.trips_refold(los=los)
    reports = [p for p in pending if p.kind in REPORT_KINDS]
    if reports:
        trips.reports_refresh(keys=[(p.device_id, p.occurred_at) for p in reports])


def readings_fold(pending: Sequence[Pending]) -> None:
    # An acknowledgement re-folds the alarms it may name (same device, same time).
    acked = readings.alarms_at(keys=[(p.device_id, p.occurred_at) for p in pending if p.kind == "alarm_ack"])
    readings.readings_refresh(
        parsed_ids=[p.parsed_id for p in pending] + [a[0] for a in acked],
        occurred=[p.occurred_at for p in pending] + [a[1] for a in acked],
    )
    devices.devices_refresh(device_ids=[p.device_id for p in pending])
    alarm_ids = [p.parsed_id for p in pending if p.kind == "alarm"]
    if alarm_ids:
        alarms_folded.send(sender=Projector.READINGS, parsed_ids=alarm_ids)


def drivers_fold(pending: Sequence[Pending]) -> None:
    facts = drivers.facts_of(parsed_ids=[p.parsed_id for p in pending], occurred=[p.occurred_at for p in pending])
    drivers.facts_apply(facts)


FOLDS: dict[str, Fold] = {
    Projector.POSITIONS: positions_fold,
    Projector.TRIPS: trips_fold,
    Projector.READINGS: readings_fold,
    Projector.DRIVERS: drivers_fold,
}

POSITIONS_KINDS = ("position_fix", *REPORT_KINDS)
READINGS_KINDS = (
    "alarm", "heartbeat", "device_event", "device_meta", "obd", "fuel", "temperature", "lbs", "odometer_reading",
    "alarm_ack",
)  # fmt: skip
KINDS = {Projector.POSITIONS: POSITIONS_KINDS, Projector.READINGS: READINGS_KINDS, Projector.DRIVERS: drivers.KINDS}
# Replaying positions rebuilds trips too (they derive from its history); replaying everything replays these.
REPLAYED_ALL = (Projector.POSITIONS, Projector.READINGS, Projector.DRIVERS)


@dataclass(frozen=True)
class Scope:
    """What a replay rebuilds: everything, or one device and/or a device-time window."""

    device_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def whole(self) -> bool:
        return self.device_id is None and self.since is None and self.until is None

    def where(self, alias: str = "p") -> tuple[str, dict[str, Any]]:
        """SQL condition (columns of `alias`, or bare with alias "") and its parameters."""
        a = f"{alias}." if alias else ""
        clauses = ["true"]
        params: dict[str, Any] = {}
        if self.device_id is not None:
            clauses.append(f"{a}device_id = %(scope_device)s")
            params["scope_device"] = self.device_id
        if self.since is not None:
            clauses.append(f"{a}occurred_at >= %(scope_since)s")
            params["scope_since"] = self.since
        if self.until is not None:
            clauses.append(f"{a}occurred_at < %(scope_until)s")
            params["scope_until"] = self.until
        return " AND ".join(clauses), params


def positions_replay(scope: Scope, *, progress: Callable[[str, int], None]) -> int:
    """Rebuild the positions projections in scope, and the trips derived from them. Call inside a transaction."""
    projector_lock(Projector.POSITIONS)
    projector_lock(Projector.TRIPS)  # always after positions' (the only other holder of both is this function)
    projector_forget(Projector.POSITIONS, *scope.where("q"))
    projector_forget(Projector.TRIPS, *scope.where("q"))
    where, params = scope.where()
    lo, hi = _time_range(where, params, POSITIONS_KINDS)
    if lo is not None and hi is not None:  # both or neither: the min and max of the same rows
        history.history_partitions_cover(lo=lo, hi=hi)
    if scope.since is None and scope.until is None:
        # Whole devices: verdicts in the same statement as the rebuild, trips folded from each first fix.
        if scope.whole:
            history.history_truncate()
        n = history.history_rebuild(
            where=where, params=params, delete_where=None if scope.whole else scope.where("h")[0]
        )
        progress("history", n)
        # Here the scope is whole exactly when it names no device.
        device_ids = None if scope.device_id is None else [scope.device_id]
        if device_ids is None:
            live.live_positions_rebuild_all()
        else:
            live.live_positions_refresh(device_ids=device_ids)
        progress("live", 0)
        trips.reports_rebuild(device_ids=device_ids)
        trips.trips_rebuild(device_ids=device_ids, progress=lambda k: progress("trips", k))
        return n
    # A time window: rewrite its history rows, then re-judge and re-fold each device's window like a batch.
    n = _history_window_rewrite(scope)
    progress("history", n)
    windows = _device_windows(scope)
    if windows:  # a window without fixes has no device to re-fold (and an empty list is no device, never all)
        trips.reports_rebuild(device_ids=list(windows))
        trips.trips_refold(los=positions_windows_refold(windows))  # matches the reports too
    return n


def trips_replay(scope: Scope, *, progress: Callable[[str, int], None]) -> int:
    """Rebuild trips and parking events in scope from history as it stands (and Jimi's reports from the log). Call
    inside a transaction."""
    projector_lock(Projector.TRIPS)
    projector_forget(Projector.TRIPS, *scope.where("q"))
    windows = _device_windows(scope) if not (scope.since is None and scope.until is None) else None
    if windows is None:
        device_ids = None if scope.device_id is None else [scope.device_id]
        trips.reports_rebuild(device_ids=device_ids)
        return trips.trips_rebuild(device_ids=device_ids, progress=lambda k: progress("trips", k))
    if windows:
        trips.reports_rebuild(device_ids=list(windows))
        trips.trips_refold(los={d: lo for d, (lo, _hi) in windows.items()})
    return 0


def _history_window_rewrite(scope: Scope) -> int:
    where, params = scope.where("p")
    hwhere, hparams = scope.where("h")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.id, p.occurred_at FROM events_parsed p WHERE p.kind = 'position_fix' AND {where}", params
        )
        rows = cursor.fetchall()
        cursor.execute(f"SELECT h.parsed_id, h.occurred_at FROM state_position_history h WHERE {hwhere}", hparams)
        rows += cursor.fetchall()
    if rows:
        history.history_refresh(parsed_ids=[r[0] for r in rows], occurred=[r[1] for r in rows])
    return len(rows)


def _device_windows(scope: Scope) -> dict[int, tuple[datetime, datetime]]:
    where, params = scope.where("p")
    hwhere, _ = scope.where("h")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.device_id, min(p.occurred_at), max(p.occurred_at) FROM events_parsed p"
            f" WHERE p.kind = 'position_fix' AND p.device_id IS NOT NULL AND {where} GROUP BY p.device_id"
            " UNION ALL SELECT h.device_id, min(h.occurred_at), max(h.occurred_at) FROM state_position_history h"
            f" WHERE {hwhere} GROUP BY h.device_id",
            params,
        )
        windows: dict[int, tuple[datetime, datetime]] = {}
        for device_id, lo, hi in cursor.fetchall():
            old = windows.get(device_id, (lo, hi))
            windows[device_id] = (min(old[0], lo), max(old[1], hi))
    return windows


def _time_range(where: str, params: dict[str, Any], kinds: Sequence[str]) -> tuple[datetime | None, datetime | None]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(p.occurred_at), max(p.occurred_at) FROM events_parsed p WHERE p.kind = ANY(%(kinds)s)"
            f" AND {where}",
            {**params, "kinds": list(kinds)},
        )
        bounds: tuple[datetime | None, datetime | None] = cursor.fetchone()  # an aggregate: one row
        return bounds


def readings_replay(scope: Scope, *, progress: Callable[[str, int], None]) -> int:
    """Rebuild the reading tables and device summaries in scope. Call inside a transaction."""
    projector_lock(Projector.READINGS)
    projector_forget(Projector.READINGS, *scope.where("q"))
    where, params = scope.where()
    if scope.whole:
        readings.readings_truncate()
        n = readings.readings_rebuild(where="true", params={}, delete_where="false")
        devices.devices_rebuild_all()
    else:
        n = readings.readings_rebuild(where=where, params=params, delete_where=scope.where("")[0])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT p.device_id FROM events_parsed p WHERE {where}", params)
            device_ids = [r[0] for r in cursor.fetchall()]
        devices.devices_refresh(device_ids=device_ids + ([scope.device_id] if scope.device_id else []))
    progress("readings", n)
    return n


def drivers_replay(scope: Scope, *, progress: Callable[[str, int], None]) -> int:
    """Re-apply the driver events in scope to the domain, in order (idempotent: drivers.py). Driver events are about
    no device, so a replay of one device has none. Call inside a transaction."""
    projector_lock(Projector.DRIVERS)
    projector_forget(Projector.DRIVERS, *scope.where("q"))
    if scope.device_id is not None:
        return 0
    where, params = scope.where()
    facts = drivers.facts_in(where=where, params=params)
    drivers.facts_apply(facts)
    progress("drivers", len(facts))
    return len(facts)


REPLAYS: dict[str, Callable[..., int]] = {
    Projector.POSITIONS: positions_replay,
    Projector.TRIPS: trips_replay,
    Projector.READINGS: readings_replay,
    Projector.DRIVERS: drivers_replay,
}
