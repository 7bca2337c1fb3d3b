"""Replay rate: generate N position events (~80 devices over 90 days) straight into events_parsed, time a full
`manage.py replay` on a scratch database, and its ceiling in the same run: the same rows written with no folding.
Last line is JSON: events, seconds, events_per_s, ceiling_events_per_s, ratio."""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError

from devtools import bench
from state.projectors.history import _COLUMNS as HISTORY_COLUMNS
from state.projectors.history import _fixes_from_parsed as history_fixes

DEVICES = 80
DAYS = 90
# Generated straight into the log with the projector trigger off (session_replication_role = replica): the
# benchmark times the replay, not 1M work-list inserts nobody would drain.
GENERATE_SQL = """
WITH k AS (
    SELECT g AS n, (g %% %(devices)s) AS dev, (g / %(devices)s) AS i FROM generate_series(0, %(events)s - 1) g
), day AS (
    SELECT k.*, (k.i / %(per_day)s) AS d, (k.i %% %(per_day)s) AS j FROM k
), fix AS (
    SELECT day.*,
           -- a day of one vehicle: a morning drive, parked at work, an evening drive back, parked at home
           timestamptz '2026-08-01 04:00+00' + d * interval '1 day' + CASE
             WHEN j < 60 THEN j * interval '15 seconds'
             WHEN j < 70 THEN interval '15 minutes' + (j - 59) * interval '20 minutes'
             WHEN j < 130 THEN interval '10 hours' + (j - 70) * interval '15 seconds'
             ELSE interval '10 hours 15 minutes' + (j - 129) * interval '30 minutes' END AS at,
           CASE WHEN j < 60 THEN j WHEN j < 70 THEN 60 WHEN j < 130 THEN 130 - j ELSE 0 END AS step,
           (j < 60 OR (j >= 70 AND j < 130)) AS moving
      FROM day
)
INSERT INTO events_parsed (raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at,
                           parser_version, payload, dedup_key)
SELECT n, at, 'position_fix', %(account)s, (%(device_ids)s::bigint[])[dev + 1], at,
       at + CASE WHEN n %% 50 = 0 THEN interval '3 hours' ELSE interval '2 seconds' END, 'bench@1',
       jsonb_build_object(
           'lat', CASE WHEN n %% 997 = 0 THEN 0 ELSE -1.30 + dev * 0.002 + step * 0.0015
                       + CASE WHEN n %% 1499 = 0 THEN 0.5 ELSE 0 END END,
           'lng', CASE WHEN n %% 997 = 0 THEN 0 ELSE 36.75 + dev * 0.002 END,
           'speed_kmh', CASE WHEN moving THEN 36 + (n %% 9) ELSE 0 END, 'heading', 0, 'satellites', 11,
           'ignition', moving, 'position_type', 'gps', 'retransmitted', n %% 50 = 0, 'gate_time', NULL,
           'altitude_m', 1650, 'odometer_m', n * 10, 'battery_pct', 90, 'extra', '{}'::jsonb),
       md5(n::text)
  FROM fix
"""


# The ceiling: the rows the replay wrote (history, live positions, trips, parking events), as many of each, written
# into empty copies of their tables (same columns, partitions, indexes and constraints) by trivial INSERT … SELECTs
# from events_parsed, in one transaction: every fix becomes a history row with the same fields read from its payload
# and the same point, but no verdict windows; each device's latest row its live position; the first fixes as many
# trips and parking events as the fold made, with no fold.
CEILING_TABLES = (
    ("bench_ceiling_history", "state_position_history"),
    ("bench_ceiling_live", "state_live_positions"),
    ("bench_ceiling_trips", "state_trips"),
    ("bench_ceiling_parking", "state_parking_events"),
)
# The history rows exactly as the rebuild reads them from events_parsed (fields, point), with no verdict windows.
HISTORY_ROWS = f"SELECT {HISTORY_COLUMNS}, 'ok', '' FROM ({history_fixes('true')}) x"
FIRST_FIXES = f"SELECT x.* FROM ({history_fixes('true')}) x ORDER BY x.parsed_id LIMIT %({{n}})s"
CEILING_SQL = (
    f"INSERT INTO bench_ceiling_history ({HISTORY_COLUMNS}, verdict, reason) {HISTORY_ROWS}",
    # One probe per device on the copy's (device, time) index, as the rebuild's.
    "WITH RECURSIVE d AS (SELECT min(device_id) AS id FROM bench_ceiling_history UNION ALL"
    " SELECT (SELECT min(h.device_id) FROM bench_ceiling_history h WHERE h.device_id > d.id) FROM d"
    " WHERE d.id IS NOT NULL)"
    " INSERT INTO bench_ceiling_live (device_id, parsed_id, occurred_at, received_at, point, speed_kmh, heading,"
    " ignition, satellites, battery_pct, updated_at)"
    " SELECT d.id, f.parsed_id, f.occurred_at, f.received_at, f.point, f.speed_kmh, f.heading, f.ignition,"
    " f.satellites, f.battery_pct, clock_timestamp() FROM d CROSS JOIN LATERAL (SELECT * FROM bench_ceiling_history h"
    " WHERE h.device_id = d.id ORDER BY h.occurred_at DESC LIMIT 1) f WHERE d.id IS NOT NULL LIMIT %(live)s",
    "INSERT INTO bench_ceiling_trips (device_id, source, started_at, ended_at, closed, end_reason, start_point,"
    " end_point, distance_m, duration_s, max_speed_kmh, avg_speed_kmh, idle_s, fixes, recorded_at)"
    " SELECT f.device_id, 'derived', f.occurred_at, f.occurred_at, true, 'stop', f.point, f.point, 0, 0, 0, 0, 0, 1,"
    f" clock_timestamp() FROM ({FIRST_FIXES.format(n='trips')}) f ON CONFLICT DO NOTHING",
    "INSERT INTO bench_ceiling_parking (device_id, source, mode, started_at, ended_at, closed, duration_s, point,"
    " address)"
    " SELECT f.device_id, 'derived', 'parking', f.occurred_at, f.occurred_at, true, 0, f.point, ''"
    f" FROM ({FIRST_FIXES.format(n='parking')}) f ON CONFLICT DO NOTHING",
)


class Command(BaseCommand):
    help = "Benchmark a full replay of N generated position events. Last line is JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--events", type=int, default=1_000_000)

    def handle(self, *args: Any, **opts: Any) -> None:
        events = opts["events"]
        with bench.scratch_database(prefix="fleet_bench_replay") as url:
            info = bench.conninfo_for(url)
            started = time.monotonic()
            self._generate(info, events)
            self.stdout.write(f"generated {events} position events in {time.monotonic() - started:.1f}s")
            _checkpoint(info)
            out = bench.manage("replay", "-v", "0", url=url)
            match = re.search(r"replayed (\d+) events .* in ([\d.]+)s", out)
            if not match:
                raise CommandError(f"replay said: {out!r}")
            replayed, seconds = int(match.group(1)), float(match.group(2))
            with psycopg.connect(**info) as conn:
                trips = conn.execute("SELECT count(*) FROM state_trips").fetchone()[0]
                verdicts = dict(conn.execute("SELECT verdict, count(*) FROM state_position_history GROUP BY 1"))
            _checkpoint(info)
            ceiling = self._ceiling(info)
        rate = replayed / seconds
        self.stdout.write(f"replayed {replayed} events in {seconds:.1f}s: {trips} trips, verdicts {verdicts}")
        self.stdout.write(
            f"ceiling: the same {ceiling['rows']} rows by INSERT … SELECT, no folding, in {ceiling['seconds']:.1f}s"
        )
        self.stdout.write(
            json.dumps(
                {
                    "events": replayed,
                    "seconds": round(seconds, 2),
                    "events_per_s": round(rate),
                    "ceiling_seconds": round(ceiling["seconds"], 2),
                    "ceiling_events_per_s": round(replayed / ceiling["seconds"]),
                    "ratio": round(ceiling["seconds"] / seconds, 3),
                }
            )
        )

    @staticmethod
    def _ceiling(info: dict[str, Any]) -> dict[str, float]:
        with psycopg.connect(**info) as conn:
            for copy, table in CEILING_TABLES:
                partitioned = conn.execute(
                    "SELECT relkind = 'p' FROM pg_class WHERE oid = %s::regclass", [table]
                ).fetchone()[0]
                conn.execute(
                    f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)"
                    + (" PARTITION BY RANGE (occurred_at)" if partitioned else "")
                )
                for name, bound in conn.execute(
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                    " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                    [table],
                ).fetchall():
                    conn.execute(f"CREATE TABLE bench_ceiling_{name} PARTITION OF {copy} {bound}")
            counts = {
                "live": conn.execute("SELECT count(*) FROM state_live_positions").fetchone()[0],
                "trips": conn.execute("SELECT count(*) FROM state_trips").fetchone()[0],
                "parking": conn.execute("SELECT count(*) FROM state_parking_events").fetchone()[0],
            }
            started = time.monotonic()
            rows = 0
            with conn.transaction():
                for sql in CEILING_SQL:
                    rows += conn.execute(sql, counts).rowcount
            seconds = time.monotonic() - started
        return {"seconds": seconds, "rows": rows}

    @staticmethod
    def _generate(info: dict[str, Any], events: int) -> None:
        per_day = max(1, events // DEVICES // DAYS)
        with psycopg.connect(**info) as conn:
            account = conn.execute(
                "INSERT INTO domain_accounts (name, jimi_account, api_node, credential_ref, created_at)"
                " VALUES ('bench', 'bench', 'hk', '', now()) RETURNING id"
            ).fetchone()[0]
            device_ids = [
                conn.execute(
                    "INSERT INTO domain_devices (imei, account_id, name, model, sim_number, iccid, lifecycle,"
                    " lifecycle_changed_at, lifecycle_reason, created_at)"
                    " VALUES (%s, %s, '', '', '', '', 'provisioned', now(), '', now()) RETURNING id",
                    [f"86812024659{n:04d}", account],
                ).fetchone()[0]
                for n in range(DEVICES)
            ]
            conn.execute(
                "SELECT fleet_partition_month('events_parsed', 'occurred_at', m::date, false)"
                "  FROM generate_series(date '2026-08-01', date '2026-11-01', interval '1 month') m"
            )
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(
                    GENERATE_SQL,
                    {
                        "devices": DEVICES,
                        "events": events,
                        "per_day": per_day,
                        "account": account,
                        "device_ids": device_ids,
                    },
                )
            # As an older log is: hint bits set and the visibility map written, not by the first statement to read it.
            conn.execute("VACUUM ANALYZE events_parsed")


def _checkpoint(info: dict[str, Any]) -> None:
    """Start a timed phase with no dirty buffers left by the one before (best effort: needs the right to)."""
    with psycopg.connect(**info) as conn, contextlib.suppress(psycopg.Error):
        conn.execute("CHECKPOINT")
