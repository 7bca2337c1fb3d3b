"""Routing latency through the real endpoint: POST /api/routes on a real gateway with a bearer token, over random
routable pairs of the loaded graph, on a scratch database. Last line is JSON.

The graph: an OSM extract loaded with `manage.py load_osm` (default: the vendored Monaco extract). The pairs: points
drawn at random (seeded) on routable segments — at a random fraction of each, so every request snaps and splits
two segments as a real one does — origin and destination on different segments. Each request is timed on the
client (the HTTP round trip over loopback); the server's own figure (geo_route_requests.duration_ms, what the
route_p95_ms SLO reads) is printed beside it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import requests
from django.core.management.base import BaseCommand, CommandError

from devtools import bench
from devtools.management.commands.bench_views import BENCH_PASSWORD, CREATE_READER

MONACO = bench.ROOT / "geo" / "data" / "monaco.osm.pbf"

PAIRS_SQL = """
WITH shuffled AS (
    SELECT w.id, ST_LineInterpolatePoint(w.geom, 0.05 + 0.9 * random()) AS p
      FROM (SELECT id, geom FROM geo_ways WHERE routable ORDER BY id) w
     ORDER BY random()
     LIMIT %(points)s
), picked AS (SELECT id, p, row_number() OVER () AS n FROM shuffled)
SELECT a.id, ST_Y(a.p), ST_X(a.p), b.id, ST_Y(b.p), ST_X(b.p)
  FROM picked a JOIN picked b ON b.n = a.n + 1
 WHERE a.n %% 2 = 1 AND a.id <> b.id
 ORDER BY a.n
"""


class Command(BaseCommand):
    help = "Benchmark POST /api/routes over random routable pairs of a road graph. Last line is JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--pairs", type=int, default=200)
        parser.add_argument("--osm", default=str(MONACO), help="the extract to load (default: the Monaco one)")
        parser.add_argument("--algorithm", choices=["astar", "dijkstra"], default=None, help="ROUTE_ALGORITHM")
        parser.add_argument("--seed", type=float, default=0.42, help="PostgreSQL setseed() for the pairs")

    def handle(self, *args: Any, **opts: Any) -> None:
        osm = Path(opts["osm"])
        if not osm.is_file():
            raise CommandError(f"no such file: {osm}")
        extra = {"RATE_LIMIT_ROUTES_PER_MIN": "0"}
        if opts["algorithm"]:
            extra["ROUTE_ALGORITHM"] = opts["algorithm"]
        with bench.scratch_database(prefix="fleet_bench_route") as url:
            info = bench.conninfo_for(url)
            self.stdout.write(bench.manage("load_osm", str(osm.resolve()), url=url).strip())
            bench.manage("shell", "-c", CREATE_READER, url=url)
            with psycopg.connect(**info) as conn:
                conn.execute("SELECT setseed(%s)", [opts["seed"]])
                pairs = conn.execute(PAIRS_SQL, {"points": 2 * opts["pairs"] + 20}).fetchall()[: opts["pairs"]]
            if len(pairs) < opts["pairs"]:
                raise CommandError(f"the graph gave {len(pairs)} pairs, not {opts['pairs']}")
            port = bench.free_port()
            base = f"http://127.0.0.1:{port}"
            with bench.role("gateway", "--no-wait", "--bind", f"127.0.0.1:{port}", url=url, **extra):
                bench.wait_http(base + "/health/gateway")
                session = requests.Session()
                token = session.post(base + "/api/auth/token", json={"username": "bench", "password": BENCH_PASSWORD})
                token.raise_for_status()
                session.headers["Authorization"] = "Bearer " + token.json()["access"]
                samples, failures, metres = self._time(session, base + "/api/routes", pairs)
            with psycopg.connect(**info) as conn:
                server = conn.execute(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),"
                    " percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), count(*), max(detail->>'algorithm')"
                    " FROM geo_route_requests WHERE id > (SELECT min(id) + %s FROM geo_route_requests)",
                    [WARM_UP - 1],
                ).fetchone()
        p50, p95 = bench.percentile(samples, 50), bench.percentile(samples, 95)
        self.stdout.write(
            f"{len(samples)} routes ({failures} refused), {sum(metres) / 1000:.1f} km in all: client p50 {p50:.1f} ms,"
            f" p95 {p95:.1f} ms; server (geo_route_requests) p50 {server[0]:.1f} ms, p95 {server[1]:.1f} ms;"
            f" algorithm {server[3]}"
        )
        self.stdout.write(
            json.dumps(
                {
                    "pairs": len(samples),
                    "p50_ms": round(p50, 1),
                    "p95_ms": round(p95, 1),
                    "server_p50_ms": round(server[0], 1),
                    "server_p95_ms": round(server[1], 1),
                    "refused": failures,
                    "algorithm": server[3],
                }
            )
        )

    @staticmethod
    def _time(
        session: requests.Session, url: str, pairs: list[tuple[Any, ...]]
    ) -> tuple[list[float], int, list[float]]:
        def body(pair: tuple[Any, ...]) -> dict[str, Any]:
            _, lat1, lng1, _, lat2, lng2 = pair
            return {"origin": {"lat": lat1, "lng": lng1}, "destination": {"lat": lat2, "lng": lng2}}

        for pair in pairs[:WARM_UP]:  # connections, caches, the first plans
            session.post(url, json=body(pair))
        samples, metres, failures = [], [], 0
        for pair in pairs:
            started = time.perf_counter()
            response = session.post(url, json=body(pair))
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code == 200:
                metres.append(response.json()["distance_m"])
            else:
                failures += 1
        return samples, failures, metres


WARM_UP = 5
