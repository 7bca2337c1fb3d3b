"""Realistic push bodies and seed rows for the benchmarks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import psycopg

BENCH_SOURCE = "bench-hub"
BENCH_SECRET = "bench-token-3c9e1f"  # noqa: S105 - a scratch database's source, dropped after the run
IMEIS = [f"86812024659{n:04d}" for n in range(80)]


def gps_item(imei: str, at: datetime, i: int) -> dict[str, Any]:
    """A full IoT Hub /pushgps item, as the hub sends it."""
    return {
        "deviceImei": imei,
        "gpsTime": at.strftime("%Y-%m-%d %H:%M:%S"),
        "gateTime": (at + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S"),
        "satelliteNum": 11,
        "lat": -1.2921 + (i % 500) * 1e-4,
        "lng": 36.8219 + (i % 300) * 1e-4,
        "gpsMode": 0,
        "gpsSpeed": 42,
        "direction": 187,
        "acc": 1,
        "postType": 1,
        "altitude": 1650,
        "distance": 1523400 + i * 10,
    }


def pushgps_body(*, items: int, start: int = 0, base: datetime | None = None) -> str:
    base = base or datetime(2026, 11, 1, tzinfo=UTC)
    batch = [
        gps_item(IMEIS[(start + k) % len(IMEIS)], base + timedelta(seconds=start + k), start + k) for k in range(items)
    ]
    return urlencode({"token": BENCH_SECRET, "data_list": json.dumps(batch)})


def seed_source(url_conninfo: dict[str, Any]) -> int:
    """An account and the IoT Hub source the benchmark pushes as; returns the source id."""
    with psycopg.connect(**url_conninfo) as conn:
        account = conn.execute(
            "INSERT INTO domain_accounts (name, jimi_account, api_node, credential_ref, created_at)"
            " VALUES ('bench', 'bench', 'hk', '', now()) RETURNING id"
        ).fetchone()[0]
        source_id: int = conn.execute(
            "INSERT INTO events_push_sources (name, kind, account_id, secret, allowed_cidrs, enabled, created_at)"
            " VALUES (%s, 'jimi-iothub', %s, %s, '{}', true, now()) RETURNING id",
            [BENCH_SOURCE, account, BENCH_SECRET],
        ).fetchone()[0]
        return source_id
