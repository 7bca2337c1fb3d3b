"""Push → parsed latency with a real gateway and worker; parse throughput on a backlog drained by one and by N
worker processes, against its ceiling: the same parsed rows written by COPY, with no parsing, in the same run."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from django.conf import settings
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

# Each backlog run starts from the same state: the raw rows pending again, their parsed events and the projectors'
# work-list rows gone (the parse worker does not project), dead row versions vacuumed away.
RESET_SQL = (
    "UPDATE events_raw SET status = 'pending', parser_version = '', parsed_at = NULL, parsed_count = NULL,"
    " error = '' WHERE id >= %(first)s",
    "TRUNCATE events_parsed, state_projection_pending, geo_match_pending, events_raw_pending",
    "DELETE FROM procrastinate_jobs WHERE status = 'todo'",
)
VACUUM_SQL = ("VACUUM ANALYZE events_raw", "VACUUM ANALYZE events_parsed", "VACUUM ANALYZE events_raw_pending")

# Start of a run: the whole backlog on the work-list and one parse job, in one commit (as the raw rows' own
# trigger does when they are stored).
QUEUE_SQL = (
    "INSERT INTO events_raw_pending (raw_id, received_at) SELECT id, received_at FROM events_raw WHERE id >= %(first)s",
    "SELECT fleet_wake_once('parse', 'events.parse_pending')",
)

# The ceiling's table: a real copy of events_parsed — the same columns, partitions, indexes, unique constraint,
# foreign keys and row triggers (the projectors' work-list rows and wake-ups), built from the catalogue.
PARTITIONS_SQL = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'events_parsed'::regclass
"""
FOREIGN_KEYS_SQL = (
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'events_parsed'::regclass"
    " AND contype = 'f'"
)
TRIGGERS_SQL = (
    "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'events_parsed'::regclass AND NOT tgisinternal"
)
COLUMNS = (
    "raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at, parser_version, payload, dedup_key"
)


class Command(BaseCommand):
    help = "Benchmark parsing: push→parsed latency, backlog throughput and its ceiling. Last line is JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rate", type=float, default=50.0, help="pushes per second for the latency run")
        parser.add_argument("--seconds", type=int, default=20)
        parser.add_argument("--backlog", type=int, default=100_000, help="raw rows in the backlog")
        parser.add_argument("--items-per-row", type=int, default=10, help="fixes per raw row (an IoT Hub batch)")
        parser.add_argument("--batch", type=int, default=1000, help="PARSE_BATCH_SIZE of the backlog's workers")
        parser.add_argument(
            "--workers", type=int, default=1, help="worker processes; above 1 the backlog is drained by 1 and by N"
        )
        parser.add_argument(
            "--ceiling-connections",
            type=int,
            default=settings.WORKER_CONCURRENCY,
            help="connections writing the ceiling at once (default: a worker's slots, WORKER_CONCURRENCY)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        workers = max(1, opts["workers"])
        with bench.scratch_database() as url:
            info = bench.conninfo_for(url)
            source_id = seed_source(info)
            latency = self._latency(url, info, rate=opts["rate"], seconds=opts["seconds"])
            first = self._backlog_store(info, source_id=source_id, rows=opts["backlog"], items=opts["items_per_row"])
            runs = {
                n: self._backlog(url, info, first=first, workers=n, batch=opts["batch"]) for n in sorted({1, workers})
            }
            ceiling = self._ceiling(
                info, first=first, batch=opts["batch"], connections=max(1, opts["ceiling_connections"])
            )
        one = runs[1]
        self.stdout.write(
            f"push→parsed at {opts['rate']:.0f} req/s: p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms"
            f" over {latency['pushes']} pushes; backlog of {opts['backlog']} rows x {opts['items_per_row']} fixes"
            f" parsed at {one['events_per_s']:.0f} events/s by 1 worker; ceiling (the same rows by COPY into a copy"
            f" of events_parsed, {opts['ceiling_connections']} connections) {ceiling['events_per_s']:.0f} events/s"
        )
        for n, run in sorted(runs.items()):
            self.stdout.write(
                f"  {n} worker(s): {run['events_per_s']:.0f} events/s in {run['seconds']:.1f} s; CPU seconds per"
                f" 100k events: python {run['python_cpu_s'] / run['events'] * 1e5:.2f},"
                f" postgres {run['postgres_cpu_s'] / run['events'] * 1e5:.2f};"
                f" busy {run['cpu_cores_busy']:.2f} of {os.cpu_count()} cores"
            )
        self.stdout.write(
            f"  ceiling: postgres {ceiling['postgres_cpu_s'] / ceiling['events'] * 1e5:.2f} CPU s per 100k events"
        )
        result: dict[str, Any] = {
            "p50_ms": round(latency["p50_ms"], 2),
            "p95_ms": round(latency["p95_ms"], 2),
            "pushes": latency["pushes"],
            "backlog_rows": opts["backlog"],
            "backlog_events": one["events"],
            "backlog_seconds": round(one["seconds"], 2),
            "backlog_events_per_s": round(one["events_per_s"], 1),
            "ceiling_events_per_s": round(ceiling["events_per_s"], 1),
            "ratio": round(one["events_per_s"] / ceiling["events_per_s"], 3),
            # The same comparison in CPU time, which other programs on the machine do not change much.
            "cpu_ratio": round(ceiling["postgres_cpu_s"] / (one["python_cpu_s"] + one["postgres_cpu_s"]), 3),
            "python_cpu_share": round(one["python_cpu_s"] / (one["python_cpu_s"] + one["postgres_cpu_s"]), 3),
        }
        if workers > 1:
            many = runs[workers]
            result[f"backlog_{workers}_events_per_s"] = round(many["events_per_s"], 1)
            result[f"scale_{workers}_ratio"] = round(many["events_per_s"] / one["events_per_s"], 3)
            result[f"cores_busy_{workers}"] = round(many["cpu_cores_busy"], 2)
        result["cores_busy_1"] = round(one["cpu_cores_busy"], 2)
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

    @staticmethod
    def _backlog_store(info: dict[str, Any], *, source_id: int, rows: int, items: int) -> int:
        """Store the backlog's raw rows (without their trigger: each run queues them itself); returns the first id."""
        with psycopg.connect(**info) as conn:
            first: int = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM events_raw").fetchone()[0]
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(BACKLOG_SQL, {"source": source_id, "imeis": IMEIS, "rows": rows, "items": items})
        return first

    def _backlog(self, url: str, info: dict[str, Any], *, first: int, workers: int, batch: int) -> dict[str, float]:
        with psycopg.connect(**info) as conn:
            for sql in RESET_SQL:
                conn.execute(sql, {"first": first})
            for sql in VACUUM_SQL:
                conn.execute(sql)
        # Parse only: the projectors (another queue) would share the two cores and this times the parser.
        with contextlib.ExitStack() as stack:
            procs = [
                stack.enter_context(
                    bench.role(
                        "worker", "--no-migrate", "--queues", "parse,worker", url=url, PARSE_BATCH_SIZE=str(batch)
                    )
                )
                for _ in range(workers)
            ]
            bench.wait_listening(info, count=workers)
            with psycopg.connect(**info) as conn:
                own = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                cpu = _CpuMeter(info, [p.pid for p in procs], exclude=own)
                with conn.transaction():
                    for sql in QUEUE_SQL:
                        conn.execute(sql, {"first": first})
                started = time.monotonic()
                cpu.start()
                self._wait_drained(info, timeout=900, conn=conn)
                seconds = time.monotonic() - started
                python_s, postgres_s = cpu.stop()
        with psycopg.connect(**info) as conn:
            events = conn.execute("SELECT count(*) FROM events_parsed").fetchone()[0]
        return {
            "seconds": seconds,
            "events": events,
            "events_per_s": events / seconds,
            "python_cpu_s": python_s,
            "postgres_cpu_s": postgres_s,
            "cpu_cores_busy": (python_s + postgres_s) / seconds,
        }

    @staticmethod
    def _ceiling(info: dict[str, Any], *, first: int, batch: int, connections: int) -> dict[str, float]:
        """The backlog's parsed rows, batch by batch as the workers claimed them, written by one COPY each into a
        real copy of events_parsed, each batch its own transaction, on as many connections at once as a worker has
        slots (a worker's parse jobs run side by side too). The batches are read out first, into files; the clock
        runs from the first COPY to the last commit."""
        with psycopg.connect(**info) as conn, tempfile.TemporaryDirectory(prefix="bench_parse_") as tmp:
            conn.execute(
                "CREATE TABLE bench_parsed_ceiling (LIKE events_parsed INCLUDING ALL) PARTITION BY RANGE (occurred_at)"
            )
            for name, bound in conn.execute(PARTITIONS_SQL).fetchall():
                conn.execute(f"CREATE TABLE bench_ceiling_{name} PARTITION OF bench_parsed_ceiling {bound}")
            for name, definition in conn.execute(FOREIGN_KEYS_SQL).fetchall():
                conn.execute(f"ALTER TABLE bench_parsed_ceiling ADD CONSTRAINT bench_ceiling_{name} {definition}")
            for (definition,) in conn.execute(TRIGGERS_SQL).fetchall():
                conn.execute(definition.replace(" ON public.events_parsed ", " ON bench_parsed_ceiling "))
            # The real runs started with empty work-lists too.
            conn.execute("TRUNCATE state_projection_pending, geo_match_pending")
            conn.execute("DELETE FROM procrastinate_jobs WHERE status = 'todo'")
            conn.execute("VACUUM ANALYZE state_projection_pending")
            conn.execute("VACUUM ANALYZE geo_match_pending")
            ids = [r[0] for r in conn.execute("SELECT id FROM events_raw WHERE id >= %s ORDER BY id", [first])]
            batches: queue.Queue[Path] = queue.Queue()
            events = 0
            for at in range(0, len(ids), batch):
                lo, hi = ids[at], ids[min(at + batch, len(ids)) - 1]
                path = Path(tmp, f"{at:09d}")
                with (
                    path.open("wb") as out,
                    conn.cursor().copy(
                        f"COPY (SELECT {COLUMNS} FROM events_parsed WHERE raw_id BETWEEN {lo} AND {hi} ORDER BY id)"
                        " TO STDOUT"
                    ) as copy,
                ):
                    for chunk in copy:
                        out.write(chunk)
                        events += bytes(chunk).count(b"\n")
                batches.put(path)
            writers = [psycopg.connect(**info) for _ in range(connections)]
            try:
                pids = [w.pgconn.backend_pid for w in writers]
                failures: list[BaseException] = []

                def write(writer: psycopg.Connection[Any]) -> None:
                    try:
                        while True:
                            try:
                                path = batches.get_nowait()
                            except queue.Empty:
                                return
                            data = path.read_bytes()
                            with (
                                writer.transaction(),
                                writer.cursor().copy(f"COPY bench_parsed_ceiling ({COLUMNS}) FROM STDIN") as copy,
                            ):
                                copy.write(data)
                    except BaseException as exc:  # raised below, in the command's thread
                        failures.append(exc)

                threads = [threading.Thread(target=write, args=(w,)) for w in writers]
                cpu_before = sum(_proc_cpu(pid) for pid in pids)
                started = time.monotonic()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                seconds = time.monotonic() - started
                cpu_s = sum(_proc_cpu(pid) for pid in pids) - cpu_before
                if failures:
                    raise failures[0]
            finally:
                for writer in writers:
                    writer.close()
        return {"seconds": seconds, "events": events, "events_per_s": events / seconds, "postgres_cpu_s": cpu_s}

    @staticmethod
    def _wait_drained(info: dict[str, Any], timeout: float, conn: psycopg.Connection[Any] | None = None) -> None:
        """Until the parse work-list is empty: a batch leaves it in the transaction that writes its events, so
        empty means every row parsed and committed (an index probe: the work-list's dead rows are not scanned)."""
        deadline = time.monotonic() + timeout
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(psycopg.connect(**info))
            while time.monotonic() < deadline:
                if conn.execute("SELECT raw_id FROM events_raw_pending ORDER BY raw_id LIMIT 1").fetchone() is None:
                    return
                time.sleep(0.05)
        raise TimeoutError(f"parse backlog not drained within {timeout}s")


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a local process has used; 0 when it cannot be read (a remote database)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _CpuMeter:
    """CPU used during a run by the worker processes and by the database's server processes of this database
    (except the benchmark's own connection), read from /proc: the database must be on this machine."""

    def __init__(self, info: dict[str, Any], worker_pids: list[int], *, exclude: int) -> None:
        self.info, self.worker_pids, self.exclude = info, worker_pids, exclude
        self.before: dict[int, float] = {}
        self.workers_before = 0.0

    def _backends(self) -> list[int]:
        with psycopg.connect(**self.info) as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s"
                    " AND pid <> pg_backend_pid()",
                    [self.exclude],
                )
            ]

    def start(self) -> None:
        self.before = {pid: _proc_cpu(pid) for pid in self._backends()}
        self.workers_before = sum(_proc_cpu(pid) for pid in self.worker_pids)

    def stop(self) -> tuple[float, float]:
        backends = self._backends()
        postgres = sum(_proc_cpu(pid) - self.before.get(pid, 0.0) for pid in backends)
        python = sum(_proc_cpu(pid) for pid in self.worker_pids) - self.workers_before
        return python, postgres
