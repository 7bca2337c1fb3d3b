"""Writes of the geo layer: loading an OSM extract into the road graph (geo_ways, geo_ways_vertices), and routing
(geo/routing.py), each call of which is written to geo_route_requests (the route_p95_ms SLO reads it).

One load is one transaction: stage empty copies of the tables (geo/sql/graph.sql), COPY the split segments and
their vertices in, build lengths, costs and every index, move map matching's observations and speed bands to the
new segment ids (geo/sql/remap.sql), then swap the staged tables in under a short lock and record the load
(geo_graph_loads). A load that fails anywhere leaves the graph in use as it was. Loads are
serialised by an advisory lock; loading the same file twice gives the same graph, ids included.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from geo.matching.worklist import PROJECTOR as MATCH_PROJECTOR
from geo.models import GraphLoad, RouteRequest
from geo.osm import RoadGraph, linestring_ewkt, point_ewkt, read_road_graph
from geo.routing import Route, RouteRefused, route_between
from state.projectors.runner import projector_lock

log = structlog.get_logger(__name__)

# pg_advisory_xact_lock key of a road-graph load: hashtext('geo.road_graph_load'), spelled out.
LOAD_LOCK_KEY = "geo.road_graph_load"
# SQLSTATEs of a swap that lost to a reader: lock_not_available (lock_timeout), deadlock_detected.
SWAP_RETRY_SQLSTATES = frozenset({"55P03", "40P01"})

# progress(step, n): "read", n more highway ways read from the file; "total", the n rows to write; "load", n more
# rows written.
Progress = Callable[[str, int], None]


class NoRoads(ValueError):
    """The file has no drivable road: the graph in use is left as it was."""


@dataclass(frozen=True)
class LoadedGraph:
    load: GraphLoad
    missing_locations: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def road_graph_load(path: Path, *, progress: Progress = lambda step, n: None) -> LoadedGraph:
    """Replace the road graph with the drivable roads of the extract at `path` (.osm.pbf, .osm, .osm.gz)."""
    started = time.monotonic()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    sha256 = file_sha256(path)
    graph = read_road_graph(path, zones=settings.ROAD_ZONE_SPEEDS_KMH, progress=lambda n: progress("read", n))
    if not graph.segments:
        raise NoRoads(f"{path.name} has no drivable road: the road graph was left as it was")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [LOAD_LOCK_KEY])
        cursor.execute("SELECT geo_graph_stage()")
        progress("total", len(graph.vertices) + len(graph.segments))
        vertex_ids = _copy_vertices(graph, progress)
        _copy_segments(graph, vertex_ids, progress)
        cursor.execute("SELECT geo_graph_build()")
        # What map matching learned follows its segments to their new ids (geo/sql/remap.sql); no batch of the
        # matcher runs meanwhile.
        projector_lock(MATCH_PROJECTOR)
        cursor.execute("SELECT * FROM geo_graph_remap()")
        kept, dropped = cursor.fetchone()
        if dropped:
            log.info("road graph reload dropped observations of segments it no longer has", kept=kept, dropped=dropped)
        _swap()
        cursor.execute("SELECT count(*), coalesce(sum(length_m), 0) / 1000.0 FROM geo_ways")
        segments, length_km = cursor.fetchone()
        load = GraphLoad.objects.create(
            file_name=path.name,
            sha256=sha256,
            file_bytes=path.stat().st_size,
            loaded_at=timezone.now(),
            ways=graph.ways,
            segments=segments,
            vertices=len(vertex_ids),
            length_km=round(float(length_km), 3),
            seconds=round(time.monotonic() - started, 3),
        )
    return LoadedGraph(load=load, missing_locations=graph.missing_locations)


def _copy_vertices(graph: RoadGraph, progress: Progress) -> dict[int, int]:
    """COPY the vertices, numbered 1… in OSM node id order (the same file gives the same ids)."""
    vertex_ids = {node: number for number, node in enumerate(sorted(graph.vertices), start=1)}
    with (
        connection.cursor() as cursor,
        cursor.copy("COPY geo_staging.geo_ways_vertices (id, osm_node_id, geom) FROM STDIN") as copy,
    ):
        for node, number in vertex_ids.items():
            copy.write_row((number, node, point_ewkt(*graph.vertices[node])))
            if number % 1000 == 0:
                progress("load", 1000)
    progress("load", len(vertex_ids) % 1000)
    return vertex_ids


def _copy_segments(graph: RoadGraph, vertex_ids: dict[int, int], progress: Progress) -> None:
    """COPY the segments into the staging input, numbered 1… in (OSM way id, place in the way) order."""
    speeds = settings.ROAD_CLASS_SPEEDS_KMH
    columns = "id, osm_id, source, target, geom, highway, maxspeed_kmh, speed_kmh, oneway, name"
    with connection.cursor() as cursor, cursor.copy(f"COPY pg_temp.geo_ways_input ({columns}) FROM STDIN") as copy:
        for number, s in enumerate(sorted(graph.segments, key=lambda s: (s.osm_id, s.seq)), start=1):
            speed = s.maxspeed_kmh or speeds[s.highway]
            copy.write_row((
                number, s.osm_id, vertex_ids[s.nodes[0]], vertex_ids[s.nodes[-1]], linestring_ewkt(s.coords),
                s.highway, s.maxspeed_kmh, speed, s.oneway, s.name,
            ))  # fmt: skip
            if number % 1000 == 0:
                progress("load", 1000)
    progress("load", len(graph.segments) % 1000)


def _swap() -> None:
    """geo_graph_swap() with a bounded wait for the readers' locks, tried again when a reader wins."""
    attempts = settings.ROAD_GRAPH_SWAP_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
                    [f"{round(settings.ROAD_GRAPH_SWAP_LOCK_TIMEOUT_S * 1000)}ms"],
                )
                (before, _) = cursor.fetchone()
                cursor.execute("SELECT geo_graph_swap()")
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])
            return
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in SWAP_RETRY_SQLSTATES or attempt == attempts:
                raise
            log.warning("road graph swap waited too long for readers, trying again", attempt=attempt, sqlstate=sqlstate)


def route_find(
    origin: tuple[float, float], destination: tuple[float, float], *, depart_at: datetime | None = None
) -> Route:
    """The route from origin to destination ((lat, lng)) leaving at depart_at (default now); every call, found or
    refused, is written to geo_route_requests with its duration. Raises RouteRefused."""
    started = time.perf_counter()
    requested_at = timezone.now()
    detail: dict[str, Any] = {"origin": list(origin), "destination": list(destination)}
    ok = False
    try:
        found = route_between(origin, destination, depart_at=depart_at or requested_at)
        ok = True
        detail |= {"distance_m": found.distance_m, "eta_sec": found.eta_sec, "algorithm": found.algorithm}
        return found
    except RouteRefused as exc:
        detail["refused"] = exc.reason
        raise
    finally:
        RouteRequest.objects.create(
            requested_at=requested_at,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            ok=ok,
            detail=detail,
        )
