"""Push → live position visible, with a real gateway and worker on a scratch database, against the floor of the
machinery it runs on. Last line is JSON.

Measured server-side: for every push, from its events_raw.received_at (the gateway's INSERT) to the moment the
positions projector wrote the live-position row for that fix (state_live_positions.updated_at, clock_timestamp()
at the write; a committed row is visible microseconds later). A row-level trigger on the scratch database logs
each write, because the next fix of the same device overwrites the row.

The floor, in the same run and with the same worker: two hops with the work taken out (devtools/tasks.py). A row
inserted at the same rate wakes a job on the parse queue through a deferred trigger and fleet_wake_once, which
writes one row; that row's trigger wakes a job on the project queue, which writes one row. From the first INSERT's
now() to the second write's clock_timestamp(), like the real path.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import psycopg
import requests
from django.core.management.base import BaseCommand

from devtools import bench
from devtools.management.commands._bench_data import BENCH_SECRET, BENCH_SOURCE, IMEIS, seed_source

# Benchmark instrumentation, on the scratch database only: a log of every live-position write.
LIVE_LOG_SQL = """
CREATE TABLE bench_live_log (parsed_id bigint NOT NULL, written_at timestamptz NOT NULL);
CREATE FUNCTION bench_live_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_live_log VALUES (NEW.parsed_id, NEW.updated_at);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_live_logged AFTER INSERT OR UPDATE ON state_live_positions
    FOR EACH ROW EXECUTE FUNCTION bench_live_logged();
"""

LATENCY_SQL = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms), count(*)
  FROM (SELECT extract(epoch FROM min(l.written_at) - r.received_at) * 1000 AS ms
          FROM bench_live_log l
          JOIN events_parsed p ON p.id = l.parsed_id
          JOIN events_raw r ON r.id = p.raw_id AND r.received_at = p.raw_received_at
         GROUP BY r.id, r.received_at) t
"""


# The floor's two hops (devtools/tasks.py), on the scratch database only: each table's row trigger puts a work-list
# row down and wakes the next hop's job exactly as events_raw's and events_parsed's triggers do.
FLOOR_SQL = """
CREATE TABLE bench_hop_in (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench_hop_pending_1 (id bigint PRIMARY KEY);
CREATE TABLE bench_hop_mid (id bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE bench_hop_pending_2 (id bigint PRIMARY KEY);
CREATE TABLE bench_hop_out (id bigint PRIMARY KEY, written_at timestamptz NOT NULL);
CREATE FUNCTION bench_hop_1_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_hop_pending_1 VALUES (NEW.id);
    PERFORM fleet_wake_once('parse', 'devtools.bench_hop_1');
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER bench_hop_1_wake AFTER INSERT ON bench_hop_in DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bench_hop_1_wake();
CREATE FUNCTION bench_hop_2_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_hop_pending_2 VALUES (NEW.id);
    PERFORM fleet_wake_once('project', 'devtools.bench_hop_2');
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER bench_hop_2_wake AFTER INSERT ON bench_hop_mid DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bench_hop_2_wake();
"""

# Both hops, and the first alone (the floor of push → parsed).
FLOOR_LATENCY_SQL = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY first_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY first_ms)
  FROM (SELECT extract(epoch FROM o.written_at - i.at) * 1000 AS ms,
               extract(epoch FROM m.written_at - i.at) * 1000 AS first_ms
          FROM bench_hop_in i JOIN bench_hop_mid m ON m.id = i.id JOIN bench_hop_out o ON o.id = i.id) t
"""

# The first hop alone (push → parsed), to tell the parser's share from the projector's.
PARSE_SQL = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)
  FROM (SELECT extract(epoch FROM parsed_at - received_at) * 1000 AS ms FROM events_raw WHERE status = 'parsed') t
"""


def _body(n: int, at: datetime) -> str:
    """One IoT Hub /pushgps item: device n % 80 driving north at ~50 km/h, dated now."""
    device, step = n % len(IMEIS), n // len(IMEIS)
    item = {
        "deviceImei": IMEIS[device],
        "gpsTime": at.strftime("%Y-%m-%d %H:%M:%S"),
        "gateTime": at.strftime("%Y-%m-%d %H:%M:%S"),
        "lat": -1.2921 + device * 0.01 + step * 0.0002,
        "lng": 36.8219 + device * 0.01,
        "gpsSpeed": 50,
        "direction": 0,
        "satelliteNum": 11,
        "acc": 1,
        "gpsMode": 0,
        "postType": 1,
    }
    return urlencode({"token": BENCH_SECRET, "data_list": json.dumps([item])})


class Command(BaseCommand):
    help = "Benchmark push → live position at a steady push rate. Last line is JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rate", type=float, default=50.0, help="pushes per second")
        parser.add_argument("--seconds", type=int, default=30)
        parser.add_argument("--floor-seconds", type=int, default=15, help="length of the floor's run, same rate")

    def handle(self, *args: Any, **opts: Any) -> None:
        with bench.scratch_database(prefix="fleet_bench_fresh") as url:
            info = bench.conninfo_for(url)
            seed_source(info)
            with psycopg.connect(**info) as conn:
                conn.execute(LIVE_LOG_SQL)
                conn.execute(FLOOR_SQL)
                # The fleet exists already: provisioning is not what this measures.
                account = conn.execute("SELECT id FROM domain_accounts WHERE name = 'bench'").fetchone()[0]
                for imei in IMEIS:
                    conn.execute(
                        "INSERT INTO domain_devices (imei, account_id, name, model, sim_number, iccid, lifecycle,"
                        " lifecycle_changed_at, lifecycle_reason, created_at)"
                        " VALUES (%s, %s, '', '', '', '', 'provisioned', now(), '', now())",
                        [imei, account],
                    )
            pushes = self._push(url, info, rate=opts["rate"], seconds=opts["seconds"], floor_s=opts["floor_seconds"])
            with psycopg.connect(**info) as conn:
                latency = conn.execute(LATENCY_SQL).fetchone()
                parse = conn.execute(PARSE_SQL).fetchone()
                floor = conn.execute(FLOOR_LATENCY_SQL).fetchone()
        # Aggregates without GROUP BY: one row each.
        assert latency is not None
        assert parse is not None
        assert floor is not None
        p50, p95, p99, worst, n = latency
        parse_p50, parse_p95 = parse
        floor_p50, floor_p95, floor_n, hop1_p50, hop1_p95 = floor
        self.stdout.write(
            f"push→live position at {opts['rate']:.0f} pushes/s: p50 {p50:.1f} ms, p95 {p95:.1f} ms,"
            f" p99 {p99:.1f} ms, max {worst:.1f} ms over {n} of {pushes} pushes (server-side: raw received_at →"
            f" live row written); of which push→parsed p50 {parse_p50:.1f} ms, p95 {parse_p95:.1f} ms; floor (two"
            f" LISTEN-woken hops writing one row each, same worker, same rate) p50 {floor_p50:.1f} ms,"
            f" p95 {floor_p95:.1f} ms over {floor_n} rows, of which the first hop p50 {hop1_p50:.1f} ms,"
            f" p95 {hop1_p95:.1f} ms"
        )
        self.stdout.write(
            json.dumps(
                {
                    "p50_ms": round(p50, 2),
                    "p95_ms": round(p95, 2),
                    "p99_ms": round(p99, 2),
                    "pushes": pushes,
                    "measured": n,
                    "rate": opts["rate"],
                    "parse_p50_ms": round(parse_p50, 2),
                    "parse_p95_ms": round(parse_p95, 2),
                    "floor_p50_ms": round(floor_p50, 2),
                    "floor_p95_ms": round(floor_p95, 2),
                    "floor_hop1_p50_ms": round(hop1_p50, 2),
                    "floor_hop1_p95_ms": round(hop1_p95, 2),
                    "floor_ratio": round(p95 / floor_p95, 2),
                }
            )
        )

    def _push(self, url: str, info: dict[str, Any], *, rate: float, seconds: int, floor_s: int) -> int:
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        with (
            # The push rate limit (fleet/ratelimit.py) would refuse a 50/s run from one address after a minute.
            bench.role("gateway", "--no-wait", "--bind", f"127.0.0.1:{port}", url=url, RATE_LIMIT_PUSH_PER_MIN="0"),
            bench.role("worker", "--no-migrate", url=url),
        ):
            bench.wait_http(base + "/health/gateway")
            bench.wait_listening(info)
            session = requests.Session()
            push_url = f"{base}/push/iothub/{BENCH_SOURCE}/pushgps"
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            accepted = 0
            start = time.monotonic()
            for n in range(int(rate * seconds)):
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
                at = datetime.now(UTC) - timedelta(seconds=1)
                accepted += session.post(push_url, data=_body(n, at), headers=headers).status_code == 200
            self._wait_projected(info, accepted, timeout=60)
            self._floor(info, rate=rate, seconds=floor_s)
        return accepted

    @staticmethod
    def _floor(info: dict[str, Any], *, rate: float, seconds: int) -> None:
        """The floor's rows, paced like the pushes, each in its own transaction (as a push is)."""
        count = int(rate * seconds)
        with psycopg.connect(**info) as conn:
            start = time.monotonic()
            for n in range(count):
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
                conn.execute("INSERT INTO bench_hop_in DEFAULT VALUES")
            deadline = time.monotonic() + 60
            while conn.execute("SELECT count(*) FROM bench_hop_out").fetchone()[0] < count:
                if time.monotonic() > deadline:
                    raise TimeoutError("the floor's rows did not all come through within 60 s")
                time.sleep(0.1)

    @staticmethod
    def _wait_projected(info: dict[str, Any], count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with psycopg.connect(**info) as conn:
            while time.monotonic() < deadline:
                if conn.execute("SELECT count(DISTINCT parsed_id) FROM bench_live_log").fetchone()[0] >= count:
                    return
                time.sleep(0.1)
        raise TimeoutError(f"not every push reached the live position within {timeout}s")
