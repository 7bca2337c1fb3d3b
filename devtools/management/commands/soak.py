"""Soak: a fleet driving on the road graph, pushed as a hub pushes it, through real gateway, worker and cron roles.

On a scratch database (beside the configured one, dropped at the end): the vendored road graph is loaded, the demo
fleet is provisioned at the size asked for, and the roles are started as `make run` starts them. The demo simulator
then drives every vehicle, one fix per vehicle per `--every` seconds, and each tick's IoT Hub `/pushgps` batches
(up to 100 fixes of many vehicles each) are posted spread evenly over the tick, as a hub streams them — with
duplicate batches, late re-transmitted bursts, alarms and LBS reports. Real time: nothing is sped up.

Lag is measured server-side for every fix that became a vehicle's live position: from its raw row's `received_at`
(the gateway's INSERT) to the moment the positions projector wrote the live-position row (a row trigger on the
scratch database logs each write). A fleet is "held" when that p95 stays under `--goal-ms` and the pipeline is
drained within `--drain-s` of the last push. The last line printed is one JSON object.

`--find-knee` runs trials of growing fleets (doubling from `--vehicles`, then bisecting between the last fleet held
and the first not held) and reports the largest fleet held.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from devtools import bench
from devtools.simulator.demo import DEMO_SOURCE, demo_imeis
from devtools.simulator.fleet import Config, FleetSimulator, Push
from devtools.simulator.poster import Poster, PushRefused, Stopped
from devtools.simulator.roads import PgRoadGraph, Route, Vertex

ROAD_GRAPH = bench.ROOT / "geo" / "data" / "monaco.osm.pbf"

LIVE_LOG_SQL = """
CREATE UNLOGGED TABLE soak_live_log (parsed_id bigint NOT NULL, written_at timestamptz NOT NULL);
CREATE FUNCTION soak_live_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO soak_live_log VALUES (NEW.parsed_id, NEW.updated_at);
    RETURN NULL;
END $$;
CREATE TRIGGER soak_live_logged AFTER INSERT OR UPDATE ON state_live_positions
    FOR EACH ROW EXECUTE FUNCTION soak_live_logged();
"""

# Per fix that became a live position: received (raw row) → live row written.
LAG_SQL = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms), count(*)
  FROM (SELECT extract(epoch FROM min(l.written_at) - p.raw_received_at) * 1000 AS ms
          FROM soak_live_log l JOIN events_parsed p ON p.id = l.parsed_id
         WHERE l.written_at >= %(since)s
         GROUP BY p.id, p.raw_received_at) t
"""

PARSE_LAG_SQL = """
SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM parsed_at - received_at) * 1000)
  FROM events_raw WHERE status = 'parsed' AND received_at >= %(since)s
"""

BACKLOG_SQL = """
SELECT (SELECT count(*) FROM events_raw_pending),
       (SELECT count(*) FROM state_projection_pending WHERE failed_at IS NULL)
"""

# Map matching trails the fleet by design (windows settle first) and runs niced in the cron role: its work-list is
# reported apart, as the fixes waiting and the age of the oldest.
MATCH_SQL = """
SELECT count(*), extract(epoch FROM now() - min(occurred_at)) FROM geo_match_pending WHERE failed_at IS NULL
"""

# Bytes on disk (heap, indexes, TOAST) of the largest tables, partitions counted in their parent.
TABLE_BYTES_SQL = """
SELECT coalesce(parent.relname, c.relname) AS name, sum(pg_total_relation_size(c.oid))::bigint AS bytes
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
  LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
  LEFT JOIN pg_class parent ON parent.oid = i.inhparent
 WHERE c.relkind = 'r'
 GROUP BY 1 ORDER BY 2 DESC LIMIT 12
"""

ERRORS_SQL = """
SELECT (SELECT count(*) FROM events_raw WHERE status = 'failed'),
       (SELECT count(*) FROM state_projection_pending WHERE failed_at IS NOT NULL),
       (SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed')
"""


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> tuple[Any, ...]:
    """The one row of an aggregate query."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None  # aggregates without GROUP BY return one row
    return tuple(row)


@dataclass
class Trial:
    vehicles: int
    minutes: float
    fixes: int
    fixes_per_s: float
    lag_p50_ms: float
    lag_p95_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    measured: int
    parse_lag_p95_ms: float
    drained_s: float | None
    worker_rss_mb: float
    worker_cpu_s: float
    cron_cpu_s: float
    postgres_cpu_s: float
    db_growth_mb_per_h: float
    db_bytes_per_fix: float
    bytes_per_fix_by_table: dict[str, float]
    match_waiting: int
    match_oldest_s: float
    errors: int
    error_detail: dict[str, int]
    held: bool

    def line(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class PooledRoads:
    """The road graph with its routes memoised and the trips' ends drawn from a pool of vertices: thousands of
    vehicles drive the same few hundred routes, so the simulator asks the database for each route once rather than
    spending the cores the platform is being measured on."""

    def __init__(self, roads: PgRoadGraph, *, pool: int, seed: int) -> None:
        self._roads = roads
        vertices = roads.vertices()
        self._pool = random.Random(seed).sample(  # noqa: S311  (a reproducible choice, not a secret)
            vertices, min(pool, len(vertices))
        )
        self._routes: dict[tuple[int, int], Route | None] = {}

    def vertices(self) -> list[Vertex]:
        return self._pool

    def route(self, source: int, target: int) -> Route | None:
        key = (source, target)
        if key not in self._routes:
            self._routes[key] = self._roads.route(source, target)
        return self._routes[key]

    def nearest_vertex(self, lat: float, lng: float, *, within_m: float) -> Vertex | None:
        return self._roads.nearest_vertex(lat, lng, within_m=within_m)


class _Proc(NamedTuple):
    pid: int
    ppid: int
    pgrp: int
    ticks: int  # CPU, user + system
    path: str


def _processes() -> Iterator[_Proc]:
    """Every live process, from /proc (one that ends while being read is skipped)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        yield _Proc(int(entry.name), int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]), entry.path)


def _group_rss_and_cpu(pgid: int) -> tuple[float, float]:
    """Resident MB and CPU seconds (user + system) of every live process of a process group."""
    rss_kb, ticks = 0, 0
    for proc in _processes():
        if proc.pgrp != pgid:
            continue
        ticks += proc.ticks
        try:
            status = Path(proc.path, "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        rss_kb += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss_kb / 1024, ticks / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s(info: dict[str, Any]) -> float:
    """CPU seconds of the cluster's processes (all of them: the machine's PostgreSQL is the one being measured)."""
    with psycopg.connect(**info) as conn:  # open while its backend is looked up: that one exits with it
        pid = _one(conn, "SELECT pg_backend_pid()")[0]
        postmaster = next(p.ppid for p in _processes() if p.pid == pid)
    total = sum(p.ticks for p in _processes() if postmaster in (p.pid, p.ppid))
    return total / os.sysconf("SC_CLK_TCK")


class Command(BaseCommand):
    help = (
        "Soak test: drive N simulated vehicles (one fix each per 10 s) through real gateway, worker and cron roles on"
        " a scratch database for M minutes; print lag, worker memory, database growth and errors. Last line is JSON."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--vehicles", type=int, default=1000)
        parser.add_argument("--minutes", type=float, default=10.0)
        parser.add_argument("--every", type=int, default=10, help="seconds between two fixes of a vehicle")
        parser.add_argument("--goal-ms", type=float, default=1000.0, help="the lag p95 a held fleet stays under")
        parser.add_argument("--drain-s", type=float, default=30.0, help="a held fleet's backlog is gone this soon")
        parser.add_argument("--warmup-s", type=float, default=60.0, help="left out of the figures (start-up)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--find-knee", action="store_true", help="grow the fleet until it is not held")
        parser.add_argument("--max-vehicles", type=int, default=40_000, help="the largest fleet --find-knee tries")
        parser.add_argument("--gateway-workers", type=int, default=2)

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["vehicles"] < 1 or opts["minutes"] <= 0 or opts["every"] < 1:
            raise CommandError("--vehicles ≥ 1, --minutes > 0 and --every ≥ 1")
        if opts["warmup_s"] >= opts["minutes"] * 60:
            raise CommandError("--warmup-s must be shorter than the run (--minutes)")
        if not opts["find_knee"]:
            trial = self._trial(opts["vehicles"], opts)
            self.stdout.write(json.dumps(trial.line()))
            return
        trials: list[Trial] = []
        held: Trial | None = None
        lo, hi = 0, None  # largest held, smallest not held
        n = opts["vehicles"]
        while n <= opts["max_vehicles"]:
            trial = self._trial(n, opts)
            trials.append(trial)
            if trial.held:
                held, lo = trial, n
            else:
                hi = n
            if hi is None:
                n *= 2
            elif hi - lo <= max(opts["vehicles"] // 2, hi // 8):
                break
            else:
                n = (lo + hi) // 2
        self.stdout.write(
            json.dumps(
                {
                    "knee_vehicles": lo,
                    "knee_fixes_per_s": round(lo / opts["every"], 1),
                    "first_not_held": hi,
                    "held": held.line() if held else None,
                    "trials": [
                        {"vehicles": t.vehicles, "lag_p95_ms": round(t.lag_p95_ms), "held": t.held} for t in trials
                    ],
                }
            )
        )

    # --- one trial ---------------------------------------------------------------------------------------------

    def _trial(self, vehicles: int, opts: dict[str, Any]) -> Trial:
        self.stdout.write(f"soak: {vehicles} vehicles, {opts['minutes']:g} min, one fix each per {opts['every']} s")
        with ExitStack() as stack:
            url = stack.enter_context(bench.scratch_database(prefix="fleet_soak"))
            info = bench.conninfo_for(url)
            started = time.monotonic()
            bench.manage("load_osm", str(ROAD_GRAPH), url=url)
            bench.manage("demo_fleet", "--vehicles", str(vehicles), url=url)
            with psycopg.connect(**info) as conn:
                conn.execute(LIVE_LOG_SQL)
                token = conn.execute("SELECT secret FROM events_push_sources WHERE name = %s", [DEMO_SOURCE]).fetchone()
            if token is None:
                raise CommandError("demo_fleet made no push source")
            self.stdout.write(f"soak: scratch database ready in {time.monotonic() - started:.0f} s")
            port = bench.free_port()
            base = f"http://127.0.0.1:{port}"
            env = {"RATE_LIMIT_PUSH_PER_MIN": "0"}
            stack.enter_context(
                bench.role(
                    "gateway", "--no-wait", "--bind", f"127.0.0.1:{port}",
                    "--workers", str(opts["gateway_workers"]), url=url, **env,
                )
            )  # fmt: skip
            worker = stack.enter_context(bench.role("worker", "--no-migrate", url=url, **env))
            cron = stack.enter_context(bench.role("cron", "--no-wait", url=url, **env))
            bench.wait_http(base + "/health/gateway")
            bench.wait_listening(info)
            return self._drive(
                vehicles,
                opts,
                url=url,
                info=info,
                base=base,
                token=token[0],
                worker_pgid=worker.pid,
                cron_pgid=cron.pid,
            )
        raise AssertionError("unreachable")  # pragma: no cover  (the ExitStack never swallows)

    def _drive(
        self, vehicles: int, opts: dict[str, Any], *, url: str, info: dict[str, Any], base: str, token: str,
        worker_pgid: int, cron_pgid: int,
    ) -> Trial:  # fmt: skip
        every, minutes = opts["every"], opts["minutes"]
        stop = threading.Event()
        poster = Poster(base, DEMO_SOURCE, token, stop=stop, max_backoff_s=5.0)
        with _database(url):
            roads = PooledRoads(PgRoadGraph(), pool=200, seed=opts["seed"])
            start = int(time.time())
            simulator = FleetSimulator(
                roads, demo_imeis(vehicles), seed=opts["seed"], config=Config(every_s=every), start=start
            )
            peak_rss = 0.0
            t0 = time.time()
            end = t0 + minutes * 60
            measured_from = t0 + opts["warmup_s"]
            with psycopg.connect(**info) as conn:
                size_at = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            cpu0 = _group_rss_and_cpu(worker_pgid)[1]
            cron0 = _group_rss_and_cpu(cron_pgid)[1]
            pg_cpu0 = _postgres_cpu_s(info)
            since = None
            fixes0 = 0
            last_report = t0
            k = 0
            try:
                while (t := start + k * every) <= start + minutes * 60:
                    tick = simulator.tick(t)
                    self._post_spread(poster, tick.pushes, until=t0 + (k + 1) * every, stop=stop)
                    k += 1
                    rss, _ = _group_rss_and_cpu(worker_pgid)
                    peak_rss = max(peak_rss, rss)
                    now = time.time()
                    if since is None and now >= measured_from:
                        since = now
                        fixes0 = simulator.stats["fixes"]
                        cpu0 = _group_rss_and_cpu(worker_pgid)[1]
                        cron0 = _group_rss_and_cpu(cron_pgid)[1]
                        pg_cpu0 = _postgres_cpu_s(info)
                        with psycopg.connect(**info) as conn:
                            size_at = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
                    if now - last_report >= 30:
                        last_report = now
                        self._progress(info, simulator, now - t0, rss)
                    if now >= end:
                        break
            except (PushRefused, Stopped) as exc:
                raise CommandError(f"the gateway refused a push: {exc}") from exc
            finished = time.time()
            fixes = simulator.stats["fixes"] - fixes0
            cpu1 = _group_rss_and_cpu(worker_pgid)[1]
            cron1 = _group_rss_and_cpu(cron_pgid)[1]
            pg_cpu1 = _postgres_cpu_s(info)
            drained = self._drained(info, timeout=max(opts["drain_s"], 120.0))
        assert since is not None  # the warm-up is shorter than the run
        with psycopg.connect(**info) as conn:
            since_ts = conn.execute("SELECT to_timestamp(%s)", [since]).fetchone()[0]
            p50, p95, p99, worst, n = _one(conn, LAG_SQL, {"since": since_ts})
            parse_p95 = conn.execute(PARSE_LAG_SQL, {"since": since_ts}).fetchone()[0]
            size1 = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            failed_raw, parked, failed_jobs = _one(conn, ERRORS_SQL)
            match_waiting, match_oldest = _one(conn, MATCH_SQL)
            all_fixes = simulator.stats["fixes"]
            by_table = {
                name: round(size / max(all_fixes, 1), 1)
                for name, size in conn.execute(TABLE_BYTES_SQL).fetchall()
                if not name.startswith("soak_")
            }
        hours = (finished - since) / 3600
        detail = {
            "push_retries": poster.stats["retries"],
            "raw_failed": failed_raw,
            "projection_parked": parked,
            "jobs_failed": failed_jobs,
            "worker_exited": int(_group_rss_and_cpu(worker_pgid)[0] == 0),
        }
        errors = sum(detail.values())
        lag_p95 = float(p95 or 0.0)
        return Trial(
            vehicles=vehicles,
            minutes=minutes,
            fixes=fixes,
            fixes_per_s=fixes / (finished - since),
            lag_p50_ms=float(p50 or 0.0),
            lag_p95_ms=lag_p95,
            lag_p99_ms=float(p99 or 0.0),
            lag_max_ms=float(worst or 0.0),
            measured=int(n),
            parse_lag_p95_ms=float(parse_p95 or 0.0),
            drained_s=drained,
            worker_rss_mb=peak_rss,
            worker_cpu_s=cpu1 - cpu0,
            cron_cpu_s=cron1 - cron0,
            postgres_cpu_s=pg_cpu1 - pg_cpu0,
            db_growth_mb_per_h=(size1 - size_at) / 2**20 / hours,
            db_bytes_per_fix=(size1 - size_at) / max(fixes, 1),
            bytes_per_fix_by_table=by_table,
            match_waiting=int(match_waiting),
            match_oldest_s=float(match_oldest or 0.0),
            errors=errors,
            error_detail=detail,
            held=lag_p95 < opts["goal_ms"] and drained is not None and drained <= opts["drain_s"] and errors == 0,
        )

    @staticmethod
    def _post_spread(poster: Poster, pushes: list[Push], *, until: float, stop: threading.Event) -> None:
        """Post a tick's pushes evenly over what is left of the tick, as a hub streams them."""
        for i, push in enumerate(pushes):
            due = time.time() + (until - time.time()) / max(len(pushes) - i, 1) * (1 if i else 0)
            if (delay := due - time.time()) > 0:
                stop.wait(delay)
            poster.post(push)
        if (rest := until - time.time()) > 0:
            stop.wait(rest)

    def _progress(self, info: dict[str, Any], simulator: FleetSimulator, elapsed: float, rss: float) -> None:
        with psycopg.connect(**info) as conn:
            raw, projection = _one(conn, BACKLOG_SQL)
        self.stdout.write(
            f"soak: {elapsed:5.0f} s, {simulator.stats['fixes']} fixes sent, backlog {raw} raw rows /"
            f" {projection} events to project, worker {rss:.0f} MB"
        )

    @staticmethod
    def _drained(info: dict[str, Any], *, timeout: float) -> float | None:
        """Seconds from the last push until nothing is left to parse or project (None: not within `timeout`)."""
        t0 = time.time()
        with psycopg.connect(**info) as conn:
            while time.time() - t0 < timeout:
                raw, projection = _one(conn, BACKLOG_SQL)
                if not raw and not projection:
                    return max(0.0, time.time() - t0)
                time.sleep(0.2)
        return None


@contextmanager
def _database(url: str) -> Iterator[None]:
    """Point this process's default connection at the scratch database for the simulator's road queries."""
    db = connections["default"]
    saved = dict(db.settings_dict)
    db.close()
    db.settings_dict["NAME"] = url.rsplit("/", 1)[1]
    try:
        yield
    finally:
        db.close()
        db.settings_dict.clear()
        db.settings_dict.update(saved)
