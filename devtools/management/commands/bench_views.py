"""Live view latency at 100 and 10,000 vehicles and a 30-day history of one vehicle, through the real gateway
with a real bearer token, on a scratch database: domain rows and parsed events seeded by SQL, state derived by
`manage.py replay` (the projectors stay the only writers of the state tables).

Then the live view on the wire, at 10,000 vehicles (docs/architecture.md, "The live view on the wire"):
- live_10000_wire_bytes: the whole view as it crosses the wire gzipped (Accept-Encoding: gzip);
- live_10000_since_1pct_p95_ms: a `since=` refresh (with If-None-Match, as the page asks) after 1 % of the vehicles
  got a new fix — parsed events inserted and folded by a real worker before each timed request;
- live_10000_304_p95_ms: If-None-Match on an unchanged fleet. The seeded fixes are 0-15 minutes old, so some
  vehicle's freshness or state changes with time almost every second, which rightly ends a 304; for this part the
  freshness thresholds are raised to a day (slo_targets rows, re-read by the gateway within SLO_TARGET_CACHE_S), so
  nothing changes: what a validation costs does not depend on them.
"""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import psycopg
import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devtools import bench

SEED_SQL = """
INSERT INTO domain_accounts (name, jimi_account, api_node, credential_ref, created_at)
VALUES ('small', 'small', 'hk', '', now()), ('large', 'large', 'hk', '', now());
INSERT INTO domain_cost_centres (name, code) SELECT 'Centre ' || i, 'C' || i FROM generate_series(1, 12) i;
INSERT INTO domain_vehicles (plate, model, depot, created_at, cost_centre_id)
SELECT 'KB' || lpad(i::text, 5, '0') || 'X', 'Isuzu NQR', 'Depot ' || (i %% 7), now(),
       (SELECT id FROM domain_cost_centres ORDER BY id OFFSET (i %% 12) LIMIT 1)
  FROM generate_series(1, %(vehicles)s) i;
INSERT INTO domain_devices (imei, account_id, vehicle_id, name, model, sim_number, iccid, lifecycle,
                            lifecycle_changed_at, lifecycle_reason, created_at)
SELECT '86' || lpad(v.id::text, 13, '0'),
       (SELECT id FROM domain_accounts WHERE name = CASE WHEN v.id < (SELECT min(id) + 100 FROM domain_vehicles)
                                                         THEN 'small' ELSE 'large' END),
       v.id, '', CASE WHEN v.id %% 3 = 0 THEN 'VL502' ELSE 'VL802' END, '', '', 'provisioned', now(), '', now()
  FROM domain_vehicles v;
INSERT INTO events_parsed (raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at,
                           parser_version, payload, dedup_key)
SELECT d.id, now(), 'position_fix', d.account_id, d.id, now() - (d.id %% 900) * interval '1 second', now(),
       'bench@1', jsonb_build_object('lat', -1.4 + random() * 0.3, 'lng', 36.7 + random() * 0.3,
       'speed_kmh', (d.id %% 5) * 12, 'heading', d.id %% 360, 'ignition', d.id %% 4 <> 0, 'satellites', 9,
       'position_type', 'gps', 'retransmitted', false, 'battery_pct', 80, 'extra', '{}'::jsonb), md5('live' || d.id)
  FROM domain_devices d;
"""

# 30 days of one vehicle: 8 working hours a day, a fix every 30 s, driving 40 min and stopping 20 min in turn.
HISTORY_SQL = """
INSERT INTO events_parsed (raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at,
                           parser_version, payload, dedup_key)
SELECT i, t, 'position_fix', d.account_id, d.id, t, t, 'bench@1',
       jsonb_build_object('lat', -1.29 + sin(i / 200.0) * 0.05, 'lng', 36.82 + cos(i / 300.0) * 0.05,
       'speed_kmh', CASE WHEN moving THEN 35 ELSE 0 END, 'heading', 90, 'ignition', moving, 'satellites', 10,
       'position_type', 'gps', 'retransmitted', false, 'battery_pct', 80, 'extra', '{}'::jsonb),
       md5('history' || i)
  FROM domain_devices d,
       generate_series(0, 30 * 960 - 1) i,
       LATERAL (SELECT now() - interval '30 days' + (i / 960) * interval '1 day' + interval '6 hours'
                       + (i %% 960) * interval '30 seconds', (i %% 120) < 80) AS x(t, moving)
 WHERE d.id = %(device)s;
"""


# 1 % of the vehicles move a few metres (a plausible move: no jump verdict), as parsed events the worker folds.
MOVE_SQL = """
INSERT INTO events_parsed (raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at,
                           parser_version, payload, dedup_key)
SELECT d.id, now(), 'position_fix', d.account_id, d.id, %(at)s, now(), 'bench@1',
       jsonb_build_object('lat', ST_Y(l.point::geometry) + 0.0001, 'lng', ST_X(l.point::geometry), 'speed_kmh', 30,
       'heading', 0, 'ignition', true, 'satellites', 9, 'position_type', 'gps', 'retransmitted', false,
       'battery_pct', 80, 'extra', '{}'::jsonb), md5('move' || %(at)s::text || d.id)
  FROM domain_devices d JOIN state_live_positions l ON l.device_id = d.id
 WHERE d.id = ANY(%(devices)s)
"""


class Command(BaseCommand):
    help = "Benchmark the live view (100 and 10,000 vehicles) and a 30-day history; last line is JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--requests", type=int, default=60, help="timed requests per case")
        parser.add_argument("--vehicles", type=int, default=10_000)

    def handle(self, *args: Any, **opts: Any) -> None:
        with bench.scratch_database() as url:
            info = bench.conninfo_for(url)
            with psycopg.connect(**info) as conn:
                # Seeded events bypass the projector trigger (replica role): replay below derives the state.
                conn.execute("SET session_replication_role = replica")
                for statement in filter(str.strip, SEED_SQL.split(";\n")):
                    conn.execute(statement, {"vehicles": opts["vehicles"]})
                device = conn.execute("SELECT min(id) FROM domain_devices").fetchone()[0]
                conn.execute(HISTORY_SQL.rstrip().rstrip(";"), {"device": device})
            # The state tables are derived by their projectors, as in production: replay the seeded events.
            bench.manage("replay", "-v", "0", url=url)
            with psycopg.connect(**info) as conn:
                conn.execute("ANALYZE")
                plate = conn.execute(
                    "SELECT v.plate FROM domain_devices d JOIN domain_vehicles v ON v.id = d.vehicle_id"
                    " WHERE d.id = %s",
                    [device],
                ).fetchone()[0]
            bench.manage("shell", "-c", CREATE_READER, url=url)
            port = bench.free_port()
            base = f"http://127.0.0.1:{port}"
            with bench.role(
                "gateway", "--no-wait", "--bind", f"127.0.0.1:{port}", url=url, RATE_LIMIT_DASHBOARDS_PER_MIN="0"
            ):
                bench.wait_http(base + "/health/gateway")
                session = requests.Session()
                session.headers["Authorization"] = "Bearer " + self._token(session, base)
                cases: dict[str, tuple[str, dict[str, Any]]] = {
                    "live_100": ("/api/views/live", {"filters": json.dumps({"account": "small"})}),
                    "live_10000": ("/api/views/live", {}),
                    "history_30d": (
                        "/api/views/history",
                        {"filters": json.dumps({"vehicle_numbers": [plate]}), "days": 30, "tolerance_m": 10},
                    ),
                }
                results = {
                    name: self._time(session, base + path, params, opts["requests"])
                    for name, (path, params) in cases.items()
                }
                session.headers["Authorization"] = "Bearer " + self._token(session, base)
                wire = self._wire_bytes(session, base + "/api/views/live")
                with bench.role("worker", url=url):
                    bench.wait_listening(info)
                    since = self._since(session, base + "/api/views/live", info, opts)
                session.headers["Authorization"] = "Bearer " + self._token(session, base)
                with psycopg.connect(**info) as conn:
                    conn.execute(
                        "UPDATE slo_targets SET threshold = 86000"
                        " WHERE metric IN ('fresh_fix_max_age_s', 'stale_fix_max_age_s')"
                    )
                time.sleep(settings.SLO_TARGET_CACHE_S + 1)  # every gateway process re-reads them
                not_modified = self._not_modified(session, base, opts["requests"])
        for name, r in results.items():
            self.stdout.write(f"{name}: p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, {r['bytes']} bytes")
        self.stdout.write(f"live_10000 on the wire: {wire} bytes gzipped")
        self.stdout.write(
            f"live_10000 since= after 1 % moved: p50 {since['p50']:.1f} ms, p95 {since['p95']:.1f} ms,"
            f" {since['features']:.0f} features and {since['bytes']:.0f} bytes on the wire per answer (mean)"
        )
        self.stdout.write(
            f"live_10000 304: p50 {not_modified['p50']:.1f} ms, p95 {not_modified['p95']:.1f} ms (GET /api/slo/status"
            f" beside it: p50 {not_modified['floor_p50']:.1f} ms, p95 {not_modified['floor_p95']:.1f} ms)"
        )
        out = {f"{name}_p{q}_ms": round(r[f"p{q}"], 1) for name, r in results.items() for q in (50, 95)}
        out |= {f"{name}_bytes": r["bytes"] for name, r in results.items()}
        out["vehicles"] = opts["vehicles"]
        out["live_10000_wire_bytes"] = wire
        out["live_10000_304_p50_ms"] = round(not_modified["p50"], 1)
        out["live_10000_304_p95_ms"] = round(not_modified["p95"], 1)
        out["slo_status_p50_ms"] = round(not_modified["floor_p50"], 1)
        out["slo_status_p95_ms"] = round(not_modified["floor_p95"], 1)
        out["live_10000_since_1pct_p50_ms"] = round(since["p50"], 1)
        out["live_10000_since_1pct_p95_ms"] = round(since["p95"], 1)
        out["live_10000_since_1pct_wire_bytes"] = round(since["bytes"])
        self.stdout.write(json.dumps(out))

    @staticmethod
    def _wire_bytes(session: requests.Session, url: str) -> int:
        response = session.get(url, headers={"Accept-Encoding": "gzip"}, stream=True)
        response.raise_for_status()
        if response.headers.get("Content-Encoding") != "gzip":
            raise CommandError("the live view was not gzipped for a client that accepts gzip")
        return len(response.raw.read(decode_content=False))

    @staticmethod
    def _since(session: requests.Session, url: str, info: dict[str, Any], opts: dict[str, Any]) -> dict[str, float]:
        """Time `since=` refreshes, each after 1 % of the vehicles got a new fix (folded by the worker)."""
        moved = max(1, opts["vehicles"] // 100)
        first = session.get(url)
        first.raise_for_status()
        cursor, etag = first.headers["X-Fleet-Cursor"], first.headers["ETag"]
        samples, features, sizes = [], [], []
        with psycopg.connect(**info) as conn:
            for _ in range(min(opts["requests"], 30)):
                devices = [
                    r[0]
                    for r in conn.execute(
                        "SELECT device_id FROM state_live_positions ORDER BY random() LIMIT %s", [moved]
                    ).fetchall()
                ]
                at = conn.execute("SELECT date_trunc('milliseconds', now())").fetchone()[0]
                conn.execute(MOVE_SQL, {"at": at, "devices": devices})
                deadline = time.monotonic() + 60
                while conn.execute(
                    "SELECT count(*) FROM state_live_positions WHERE device_id = ANY(%s) AND occurred_at >= %s",
                    [devices, at],
                ).fetchone()[0] < len(devices):
                    if time.monotonic() > deadline:
                        raise CommandError("the worker did not fold the moved vehicles within 60 s")
                    time.sleep(0.02)
                started = time.perf_counter()
                response = session.get(url, params={"since": cursor}, headers={"If-None-Match": etag}, stream=True)
                wire = response.raw.read(decode_content=False)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                body = json.loads(gzip.decompress(wire) if response.headers.get("Content-Encoding") == "gzip" else wire)
                if not body.get("delta") or not {
                    f["properties"]["device_id"] for f in body["geojson"]["features"]
                } >= set(devices):
                    raise CommandError("a since= refresh did not bring the vehicles that moved")
                features.append(len(body["geojson"]["features"]))
                sizes.append(len(wire))
                cursor, etag = response.headers["X-Fleet-Cursor"], response.headers["ETag"]
        return {
            "p50": bench.percentile(samples, 50),
            "p95": bench.percentile(samples, 95),
            "features": sum(features) / len(features),
            "bytes": sum(sizes) / len(sizes),
        }

    @staticmethod
    def _not_modified(session: requests.Session, base: str, count: int) -> dict[str, float]:
        """If-None-Match on an unchanged fleet, each sample next to one of GET /api/slo/status (authentication and one
        small query: what any API answer costs on this machine at that moment), so both see the same contention."""
        url = base + "/api/views/live"
        first = session.get(url)
        first.raise_for_status()
        etag = first.headers["ETag"]
        samples, floor = [], []
        for _ in range(count):
            started = time.perf_counter()
            response = session.get(url, headers={"If-None-Match": etag})
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != 304:
                raise CommandError(f"an unchanged fleet was answered {response.status_code}, not 304")
            started = time.perf_counter()
            session.get(base + "/api/slo/status").raise_for_status()
            floor.append((time.perf_counter() - started) * 1000)
        return {
            "p50": bench.percentile(samples, 50),
            "p95": bench.percentile(samples, 95),
            "floor_p50": bench.percentile(floor, 50),
            "floor_p95": bench.percentile(floor, 95),
        }

    @staticmethod
    def _token(session: requests.Session, base: str) -> str:
        response = session.post(base + "/api/auth/token", json={"username": "bench", "password": BENCH_PASSWORD})
        response.raise_for_status()
        access: str = response.json()["access"]
        return access

    @staticmethod
    def _time(session: requests.Session, url: str, params: dict[str, Any], count: int) -> dict[str, float]:
        session.get(url, params=params).raise_for_status()  # warm-up
        samples, size = [], 0
        for _ in range(count):
            started = time.perf_counter()
            response = session.get(url, params=params)
            samples.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            size = len(response.content)
        return {"p50": bench.percentile(samples, 50), "p95": bench.percentile(samples, 95), "bytes": size}


BENCH_PASSWORD = "bench-reader-pass-8d1"  # noqa: S105 - a scratch database's user, dropped after the run
CREATE_READER = f"""
from django.contrib.auth.models import Group, User
user = User.objects.create_user("bench", password="{BENCH_PASSWORD}")
user.groups.add(Group.objects.get(name="read:fleet"))
"""
