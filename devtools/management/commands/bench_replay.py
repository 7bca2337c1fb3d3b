"""Replay rate: generate N position events (~80 devices over 90 days) straight into events_parsed, time a full
`manage.py replay` on a scratch database. Last line is JSON: events, seconds, events_per_s."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError

from devtools import bench

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
            out = bench.manage("replay", "-v", "0", url=url)
            match = re.search(r"replayed (\d+) events .* in ([\d.]+)s", out)
            if not match:
                raise CommandError(f"replay said: {out!r}")
            replayed, seconds = int(match.group(1)), float(match.group(2))
            with psycopg.connect(**info) as conn:
                trips = conn.execute("SELECT count(*) FROM state_trips").fetchone()[0]
                verdicts = dict(conn.execute("SELECT verdict, count(*) FROM state_position_history GROUP BY 1"))
        self.stdout.write(f"replayed {replayed} events in {seconds:.1f}s: {trips} trips, verdicts {verdicts}")
        self.stdout.write(
            json.dumps({"events": replayed, "seconds": round(seconds, 2), "events_per_s": round(replayed / seconds)})
        )

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
            conn.execute("ANALYZE events_parsed")
