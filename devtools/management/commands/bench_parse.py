"""Push → parsed latency with a real gateway and worker, and parse throughput on a backlog."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import requests
from django.core.management.base import BaseCommand

from devtools import bench
from devtools.management.commands._bench_data import BENCH_SOURCE, IMEIS, pushgps_body, seed_source

BACKLOG_SQL = """
INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body)
SELECT %(source)s, 'jimi-iothub', 'pushgps', 'application/x-www-form-urlencoded',
       convert_to('token=x&data_list=' || (
         SELECT json_agg(json_build_object(
           'deviceImei', (%(imeis)s::text[])[1 + (i * %(items)s + k) %% 80],
           'gpsTime', to_char(timestamp '2026-10-01' + (i * %(items)s + k) * interval '1 second',
                              'YYYY-MM-DD HH24:MI:SS'),
           'gateTime', to_char(timestamp '2026-10-01' + (i * %(items)s + k) * interval '1 second',
                               'YYYY-MM-DD HH24:MI:SS'),
           'lat', -1.2921 + (i %% 500) * 1e-4, 'lng', 36.8219 + k * 1e-4, 'gpsSpeed', 42, 'direction', 187,
           'satelliteNum', 11, 'acc', 1, 'gpsMode', 0, 'postType', 1))
           FROM generate_series(0, %(items)s - 1) AS k)::text, 'UTF8')
  FROM generate_series(1, %(rows)s) AS i
"""


class Command(BaseCommand):
    help = "Benchmark parsing: push→parsed latency at a steady rate, and backlog throughput. Last line is JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rate", type=float, default=50.0, help="pushes per second for the latency run")
        parser.add_argument("--seconds", type=int, default=20)
        parser.add_argument("--backlog", type=int, default=100_000, help="raw rows in the backlog")
        parser.add_argument("--items-per-row", type=int, default=10, help="fixes per raw row (an IoT Hub batch)")

    def handle(self, *args: Any, **opts: Any) -> None:
        with bench.scratch_database() as url:
            info = bench.conninfo_for(url)
            source_id = seed_source(info)
            latency = self._latency(url, info, rate=opts["rate"], seconds=opts["seconds"])
            throughput = self._backlog(
                url, info, source_id=source_id, rows=opts["backlog"], items=opts["items_per_row"]
            )
        self.stdout.write(
            f"push→parsed at {opts['rate']:.0f} req/s: p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms"
            f" over {latency['pushes']} pushes; backlog of {opts['backlog']} rows x {opts['items_per_row']} fixes"
            f" parsed at {throughput['events_per_s']:.0f} events/s"
        )
        result = {
            "p50_ms": round(latency["p50_ms"], 2),
            "p95_ms": round(latency["p95_ms"], 2),
            "pushes": latency["pushes"],
            "backlog_rows": opts["backlog"],
            "backlog_events": throughput["events"],
            "backlog_seconds": round(throughput["seconds"], 2),
            "backlog_events_per_s": round(throughput["events_per_s"], 1),
        }
        self.stdout.write(json.dumps(result))

    def _latency(self, url: str, info: dict[str, Any], *, rate: float, seconds: int) -> dict[str, Any]:
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        with (
            # The per-source push limit (1000/min) would refuse part of a steady 50/s run: lift it here.
            bench.role("gateway", "--no-wait", "--bind", f"127.0.0.1:{port}", url=url, RATE_LIMIT_PUSH_PER_MIN="0"),
            bench.role("worker", "--no-migrate", url=url),
        ):
            bench.wait_http(base + "/health/gateway")
            bench.wait_listening(info)
            session = requests.Session()
            push_url = f"{base}/push/iothub/{BENCH_SOURCE}/pushgps"
            count = int(rate * seconds)
            start = time.monotonic()
            for n in range(count):
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
                body = pushgps_body(items=1, start=n, base=datetime(2026, 11, 2, tzinfo=UTC))
                session.post(push_url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            self._wait_drained(info, timeout=60)
        with psycopg.connect(**info) as conn:
            # received_at: the push's INSERT; parsed_at: when its parse finished writing (clock_timestamp()).
            row = conn.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP"
                " (ORDER BY ms), count(*) FROM (SELECT extract(epoch FROM parsed_at - received_at) * 1000 AS ms"
                " FROM events_raw WHERE status = 'parsed') t"
            ).fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        p50, p95, n = row
        return {"p50_ms": float(p50), "p95_ms": float(p95), "pushes": int(n)}

    def _backlog(self, url: str, info: dict[str, Any], *, source_id: int, rows: int, items: int) -> dict[str, float]:
        with psycopg.connect(**info) as conn:
            conn.execute(BACKLOG_SQL, {"source": source_id, "imeis": IMEIS, "rows": rows, "items": items})
            before = conn.execute("SELECT count(*) FROM events_parsed").fetchone()[0]
        # Parse only: the projectors (another queue) would share the two cores and this times the parser.
        with bench.role("worker", "--no-migrate", "--queues", "parse,worker", url=url, PARSE_BATCH_SIZE="1000"):
            bench.wait_listening(info)
            started = time.monotonic()
            self._wait_drained(info, timeout=600)
            seconds = time.monotonic() - started
        with psycopg.connect(**info) as conn:
            events = conn.execute("SELECT count(*) FROM events_parsed").fetchone()[0] - before
        return {"seconds": seconds, "events": events, "events_per_s": events / seconds}

    @staticmethod
    def _wait_drained(info: dict[str, Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with psycopg.connect(**info) as conn:
            while time.monotonic() < deadline:
                pending = conn.execute("SELECT count(*) FROM events_raw WHERE status = 'pending'").fetchone()[0]
                if not pending:
                    return
                time.sleep(0.05)
        raise TimeoutError(f"parse backlog not drained within {timeout}s")
