"""Constructed drives for projector tests: parsed events written straight into events_parsed, projected by the
real projector code (the deferred trigger made immediate inside the test transaction)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from state.models import Projector
from state.projectors.groups import FOLDS, REPLAYED_ALL, REPLAYS, Scope
from state.projectors.runner import projector_drain
from state.selectors import state_digest_total, state_digests

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday morning in Nairobi
NAIROBI = (-1.2921, 36.8219)
_raw_ids = itertools.count(1)
# Metres per degree of latitude, for laying out drives by distance.
M_PER_DEG = 111_195.0


@dataclass
class Ev:
    kind: str
    device_id: int | None
    at: datetime
    payload: dict[str, Any]
    received_at: datetime | None = None
    key: str = ""
    raw_id: int = field(default_factory=lambda: next(_raw_ids))

    def dedup(self) -> str:
        material = self.key or json.dumps([self.kind, self.device_id, self.at.isoformat()])
        return hashlib.sha256(material.encode()).hexdigest()


def fix(
    device_id: int,
    at: datetime,
    lat: float,
    lng: float,
    speed: float,
    *,
    ignition: bool | None = True,
    received_at: datetime | None = None,
    **extra: Any,
) -> Ev:
    payload = {
        "lat": lat,
        "lng": lng,
        "speed_kmh": speed,
        "heading": None,
        "satellites": 10,
        "ignition": ignition,
        "position_type": "gps",
        "retransmitted": False,
        **extra,
    }
    return Ev("position_fix", device_id, at, payload, received_at)  # fmt: skip


def drive(
    device_id: int,
    start: datetime,
    *,
    seconds: int,
    every: int = 10,
    speed: float = 36.0,
    origin: tuple[float, float] = NAIROBI,
    ignition: bool | None = True,
    north: bool = True,
) -> list[Ev]:
    """Fixes every `every` s moving north (or east) at `speed` km/h for `seconds`."""
    out = []
    for k in range(seconds // every + 1):
        d = speed / 3.6 * k * every / M_PER_DEG
        lat, lng = (
            (origin[0] + d, origin[1]) if north else (origin[0], origin[1] + d / math.cos(math.radians(origin[0])))
        )
        out.append(fix(device_id, start + timedelta(seconds=k * every), lat, lng, speed, ignition=ignition))
    return out


def stay(
    device_id: int,
    start: datetime,
    *,
    seconds: int,
    every: int = 30,
    at: tuple[float, float] = NAIROBI,
    ignition: bool | None = False,
    speed: float = 0.0,
) -> list[Ev]:
    return [fix(device_id, start + timedelta(seconds=k * every), at[0], at[1], speed, ignition=ignition)
            for k in range(1, seconds // every + 1)]  # fmt: skip


def end_of(events: list[Ev]) -> tuple[float, float]:
    last = max(events, key=lambda e: e.at)
    return last.payload["lat"], last.payload["lng"]


def insert(events: list[Ev], *, account_id: int) -> list[int]:
    """Write parsed events (as the parser would) and make the work-list trigger fire now, not at commit."""
    rows = [
        {"raw_id": e.raw_id, "raw_received_at": (e.received_at or e.at).isoformat(), "kind": e.kind,
         "account_id": account_id, "device_id": e.device_id, "occurred_at": e.at.isoformat(),
         "received_at": (e.received_at or e.at + timedelta(seconds=2)).isoformat(), "parser_version": "test@1",
         "payload": e.payload, "dedup_key": e.dedup()}
        for e in events
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "INSERT INTO events_parsed (raw_id, raw_received_at, kind, account_id, device_id, occurred_at,"
            " received_at, parser_version, payload, dedup_key)"
            " SELECT raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at, parser_version,"
            "        payload, dedup_key"
            "   FROM jsonb_to_recordset(%s::jsonb) AS r(raw_id bigint, raw_received_at timestamptz, kind text,"
            "        account_id bigint, device_id bigint, occurred_at timestamptz, received_at timestamptz,"
            "        parser_version text, payload jsonb, dedup_key text)"
            " RETURNING id",
            [json.dumps(rows)],
        )
        ids = [r[0] for r in cursor.fetchall()]
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    return ids


def project(batch_size: int = 1000) -> None:
    """What the woken jobs do: drain both projectors."""
    for projector in Projector:
        projector_drain(
            projector, FOLDS[projector], batch_size=batch_size, wake_task=f"state.project_{projector}", woken=False,
            budget_s=3600,
        )  # fmt: skip


def feed(events: list[Ev], *, account_id: int, batch_size: int = 1000) -> list[int]:
    ids = insert(events, account_id=account_id)
    project(batch_size)
    return ids


def replay_all() -> None:
    for projector in REPLAYED_ALL:
        REPLAYS[projector](Scope(), progress=lambda step, n: None)


def digest() -> str:
    return state_digest_total(state_digests())


def trips_of(device_id: int, source: str = "derived") -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT started_at, ended_at, closed, round(distance_m::numeric, 1)::float8, duration_s, idle_s,"
            " max_speed_kmh, matched_started_at FROM state_trips WHERE device_id = %s AND source = %s"
            " ORDER BY started_at",
            [device_id, source],
        )
        names = ["started_at", "ended_at", "closed", "distance_m", "duration_s", "idle_s", "max_speed_kmh", "matched"]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def stops_of(device_id: int, source: str = "derived") -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT started_at, ended_at, mode, duration_s, closed FROM state_parking_events"
            " WHERE device_id = %s AND source = %s ORDER BY started_at",
            [device_id, source],
        )
        names = ["started_at", "ended_at", "mode", "duration_s", "closed"]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def verdicts_of(device_id: int) -> list[tuple[datetime, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT occurred_at, verdict FROM state_position_history WHERE device_id = %s"
            " ORDER BY occurred_at, parsed_id",
            [device_id],
        )
        return cursor.fetchall()


def live_of(device_id: int) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT parsed_id, occurred_at FROM state_live_positions WHERE device_id = %s", [device_id])
        return cursor.fetchone()


def geodesic_m(points: list[tuple[float, float]]) -> float:
    """The geodesic length of a polyline of (lat, lng), by PostGIS (as trip distances are measured)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(ST_Length(ST_MakeLine(array_agg(ST_MakePoint(lng, lat) ORDER BY n))::geography), 0)"
            "  FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(lat, lng, n)",
            [[p[0] for p in points], [p[1] for p in points]],
        )
        return float(cursor.fetchone()[0])
