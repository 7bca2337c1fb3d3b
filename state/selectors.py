"""Reads of the state layer: operational state at read time, and the state digest replay is checked against.

Operational state (moving | idling | parked | offline | unknown) and freshness (fresh | stale | late | none) are
never stored: they depend on *now* and on thresholds ops may change at any time (slo_targets), so they are
computed here, per read, from the live position and the latest heartbeat.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import CharField, Model, TextField
from django.utils import timezone

from domain.models import Lifecycle
from slo.thresholds import threshold
from state import models as m


@dataclass(frozen=True)
class StateThresholds:
    fresh_s: float
    stale_s: float
    offline_s: float
    moving_kmh: float

    @classmethod
    def current(cls) -> StateThresholds:
        return cls(
            fresh_s=threshold("fresh_fix_max_age_s"),
            stale_s=threshold("stale_fix_max_age_s"),
            offline_s=threshold("offline_after_s"),
            moving_kmh=threshold("moving_speed_kmh"),
        )


# Freshness, one definition for the SLO (fix_freshness_pct_60s) and the dashboards' freshness line: the population
# is the active devices — provisioned, suspended and decommissioned ones are not expected to report — and an active
# device that never reported counts as behind. A device is fresh while its latest ok fix is at most
# fresh_fix_max_age_s old (docs/numbers.md).
FRESHNESS_POPULATION: tuple[str, ...] = (Lifecycle.ACTIVE,)


def counts_for_freshness(lifecycle: str) -> bool:
    return lifecycle in FRESHNESS_POPULATION


def freshness_class(*, fix_at: datetime | None, now: datetime, t: StateThresholds) -> str:
    if fix_at is None:
        return "none"
    age = (now - fix_at).total_seconds()
    if age <= t.fresh_s:
        return "fresh"
    return "stale" if age <= t.stale_s else "late"


def operational_state(
    *,
    fix_at: datetime | None,
    fix_speed_kmh: float | None,
    fix_ignition: bool | None,
    heartbeat_at: datetime | None,
    heartbeat_ignition: bool | None,
    now: datetime,
    t: StateThresholds,
) -> str:
    """The one definition of a vehicle's operational state.

    unknown: never heard from. offline: neither a fix nor a heartbeat for offline_after_s. moving: a fix no older
    than stale_fix_max_age_s at moving speed with the ignition not off. Otherwise the newest known ignition
    (fix or heartbeat) decides: on → idling, off → parked; no ignition known → parked.
    """
    seen = [x for x in (fix_at, heartbeat_at) if x is not None]
    if not seen:
        return "unknown"
    if (now - max(seen)).total_seconds() > t.offline_s:
        return "offline"
    if (
        fix_at is not None
        and (now - fix_at).total_seconds() <= t.stale_s
        and (fix_speed_kmh or 0.0) >= t.moving_kmh
        and fix_ignition is not False
    ):
        return "moving"
    ignitions = [
        (at, ign) for at, ign in ((fix_at, fix_ignition), (heartbeat_at, heartbeat_ignition)) if at and ign is not None
    ]
    if ignitions and max(ignitions, key=lambda x: x[0])[1]:
        return "idling"
    return "parked"


def state_flip_ages(t: StateThresholds) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ages, in seconds, at which `operational_state` and `freshness_class` can change while no new data arrives:
    (ages of the latest fix, ages of the newest of fix and heartbeat). Between two such moments both are constant in
    time — the live view's validators and deltas (state/dashboards/sync.py) rely on it, and a test checks it against
    the two functions above. A new time-dependent rule there must add its age here."""
    return (t.fresh_s, t.stale_s), (t.offline_s,)


@dataclass(frozen=True)
class VehicleState:
    device_id: int
    imei: str
    plate: str | None
    suspended: bool
    state: str
    freshness: str
    fix_at: datetime | None
    heartbeat_at: datetime | None
    lat: float | None
    lng: float | None
    speed_kmh: float | None


_STATES = """
SELECT d.id, d.imei, v.plate, d.lifecycle, l.occurred_at, l.speed_kmh, l.ignition, s.last_heartbeat_at, s.ignition,
       ST_Y(l.point::geometry), ST_X(l.point::geometry)
  FROM domain_devices d
  LEFT JOIN domain_vehicles v ON v.id = d.vehicle_id
  LEFT JOIN state_live_positions l ON l.device_id = d.id
  LEFT JOIN state_devices s ON s.device_id = d.id
 WHERE d.lifecycle <> %(decommissioned)s {filters}
 ORDER BY d.imei
"""


def vehicle_states(
    *, account_id: int | None = None, device_ids: list[int] | None = None, now: datetime | None = None
) -> list[VehicleState]:
    """Operational state of every device in operation (decommissioned ones are out; suspended ones flagged)."""
    now = now or timezone.now()
    t = StateThresholds.current()
    filters = ""
    params: dict[str, Any] = {"decommissioned": Lifecycle.DECOMMISSIONED}
    if account_id is not None:
        filters += " AND d.account_id = %(account)s"
        params["account"] = account_id
    if device_ids is not None:
        filters += " AND d.id = ANY(%(devices)s)"
        params["devices"] = list(device_ids)
    with connection.cursor() as cursor:
        cursor.execute(_STATES.format(filters=filters), params)
        rows = cursor.fetchall()
    return [
        VehicleState(
            device_id=r[0],
            imei=r[1],
            plate=r[2],
            suspended=r[3] == Lifecycle.SUSPENDED,
            state=operational_state(
                fix_at=r[4],
                fix_speed_kmh=r[5],
                fix_ignition=r[6],
                heartbeat_at=r[7],
                heartbeat_ignition=r[8],
                now=now,
                t=t,
            ),
            freshness=freshness_class(fix_at=r[4], now=now, t=t),
            fix_at=r[4],
            heartbeat_at=r[7],
            lat=r[9],
            lng=r[10],
            speed_kmh=r[5],
        )
        for r in rows
    ]


# --- the state digest ------------------------------------------------------------------------------------------

# What a state row is about, by natural identity rather than by surrogate id: the same events fed to two databases in
# any order give the same rows here, though their devices, vehicles and parsed events got other ids there.
#   column → (join, expression that replaces it)
NATURAL_IDENTITIES: dict[str, tuple[str, str]] = {
    "device_id": ("LEFT JOIN domain_devices nd ON nd.id = t.device_id", "nd.imei"),
    "vehicle_id": ("LEFT JOIN domain_vehicles nv ON nv.id = t.vehicle_id", "nv.plate"),
    "parsed_id": ("LEFT JOIN events_parsed np ON np.id = t.parsed_id", "np.dedup_key"),
}

# table model → (natural key, columns left out: surrogate ids and arrival or processing clocks)
DIGESTED: tuple[tuple[type[Model], tuple[str, ...], tuple[str, ...]], ...] = (
    (m.PositionHistory, ("parsed_id",), ("received_at",)),
    (m.LivePosition, ("device_id",), ("received_at", "updated_at")),
    (m.Trip, ("device_id", "source", "started_at"), ("id", "recorded_at")),
    (m.ParkingEvent, ("device_id", "source", "started_at", "mode"), ("id",)),
    (m.Alarm, ("parsed_id",), ("received_at",)),
    (m.Heartbeat, ("parsed_id",), ("received_at",)),
    (m.DeviceEvent, ("parsed_id",), ("received_at",)),
    (m.ObdReading, ("parsed_id",), ("received_at",)),
    (m.FuelReading, ("parsed_id",), ("received_at",)),
    (m.TemperatureReading, ("parsed_id",), ("received_at",)),
    (m.LbsReading, ("parsed_id",), ("received_at",)),
    (m.OdometerReading, ("parsed_id",), ("received_at",)),
    (m.DeviceSummary, ("device_id",), ()),
)


def _digest_sql(model: type[Model], key: tuple[str, ...], excluded: tuple[str, ...]) -> str:
    """One table's rows as text, natural identities in place of ids, in natural-key order. Text sorts bytewise
    (COLLATE "C"), so clusters with other locales order the rows alike; the whole row breaks any tie."""
    joins: list[str] = []
    values: dict[str, str] = {}
    texts: set[str] = set()
    for field in model._meta.concrete_fields:
        column = field.column
        if column in excluded:
            continue
        if column in NATURAL_IDENTITIES:
            join, values[column] = NATURAL_IDENTITIES[column]
            joins.append(join)
            texts.add(column)
        else:
            values[column] = f"t.{column}"
            if isinstance(field, CharField | TextField):
                texts.add(column)
    keys = [f"{values[column]} AS k{i}" for i, column in enumerate(key)]
    order = [f'k{i} COLLATE "C"' if column in texts else f"k{i}" for i, column in enumerate(key)]
    return (
        f"SELECT row_text FROM (SELECT ROW({', '.join(values.values())})::text AS row_text, {', '.join(keys)}"
        f"  FROM {model._meta.db_table} t {' '.join(joins)}) AS s"
        f' ORDER BY {", ".join(order)}, row_text COLLATE "C"'
    )


def state_digests() -> dict[str, tuple[int, str]]:
    """table → (rows, sha256 over the rows' text in natural-key order)."""
    out: dict[str, tuple[int, str]] = {}
    for model, key, excluded in DIGESTED:
        digest, rows = hashlib.sha256(), 0
        with connection.chunked_cursor() as cursor:
            cursor.execute(_digest_sql(model, key, excluded))
            for (text,) in cursor:
                digest.update(text.encode())
                digest.update(b"\n")
                rows += 1
        out[model._meta.db_table] = (rows, digest.hexdigest())
    return out


def state_digest_total(digests: dict[str, tuple[int, str]]) -> str:
    return hashlib.sha256("".join(d for _, d in digests.values()).encode()).hexdigest()


def counted_sql(alias: str) -> str:
    """Which trips (and parking events) count, as SQL on table alias `alias`: every derived one, plus those Jimi
    reported that matched none of ours — an event both we and Jimi saw counts once. The one statement of it."""
    return f"({alias}.source = 'derived' OR {alias}.matched_started_at IS NULL)"


def trip_totals(*, device_id: int, since: datetime | None = None, until: datetime | None = None) -> dict[str, float]:
    """Trips and distance of a device: derived trips, plus Jimi-reported trips nothing derived matched — a trip
    both we and Jimi saw counts once. (Jimi's distance unit is unconfirmed, so only derived metres are summed.)"""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(t.distance_m) FILTER (WHERE t.source = 'derived'), 0) FROM state_trips t"
            f" WHERE t.device_id = %(device)s AND {counted_sql('t')}"
            " AND t.started_at >= coalesce(%(since)s::timestamptz, '-infinity')"
            " AND t.started_at < coalesce(%(until)s::timestamptz, 'infinity')",
            {"device": device_id, "since": since, "until": until},
        )
        trips, distance = cursor.fetchone()
    return {"trips": trips, "distance_m": float(distance)}
