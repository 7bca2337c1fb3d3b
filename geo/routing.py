"""Routing on the road graph: snap both ends to their nearest segment, split those segments at the snapped points,
and run pgRouting over the segments around the two ends with costs in seconds at the best speed we know.

The speed of a segment (docs/architecture.md, "Routing"):

1. observed: the mean map-matched speed of the segment in the departure's weekday and hour (local time,
   DISPLAY_TIME_ZONE; geo_segment_speed_band), when that band has at least `route_speed_min_samples` samples;
2. maxspeed: the segment's OSM maxspeed;
3. class_default: the class speed of its highway tag (ROAD_CLASS_SPEEDS_KMH).

geo_ways.speed_kmh already holds 2 or else 3 (the loader), so a band only has to override it. One-ways are respected
(reverse_cost -1). The ends are split properly: each snapped segment is replaced by its two pieces either side of
the point (three when both ends fall on the same segment), so a route along one street runs along it, never out to
a vertex and back.

Only routable segments take part (geo_ways.routable: the graph's largest strongly connected part, where every vertex
reaches every other; a fragment such as a parking aisle drawn without its entrance would leave an end with no route).

The search is Dijkstra, or A* with ROUTE_ALGORITHM=astar (the same routes; Dijkstra measured faster on Monaco,
where building pgRouting's graph dominates and A* needs one more query). For A*, x1..y2 are degrees and costs
seconds, so the heuristic — the Euclidean distance in degrees — is scaled by `factor` = (metres in a degree of
longitude at the highest latitude of the search area) / (the fastest speed of any segment there, in m/s). A degree
of latitude is longer than that metre figure, so the heuristic never overestimates the seconds left (it stays
admissible: the route is optimal).
The search area is the two ends' bounding box widened by ROUTE_SEARCH_MARGIN_M, or by ROUTE_SEARCH_MARGIN_FACTOR
times their distance when that is more; when no route lies inside it, the whole graph is searched once more.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection

from slo.thresholds import threshold
from state.geometry import haversine_m

Basis = Literal["observed", "maxspeed", "class_default"]
BASES: tuple[Basis, ...] = ("observed", "maxspeed", "class_default")

# The shortest a degree of longitude is at the equator's parallel, per degree of cos(latitude), is less than a
# degree of latitude anywhere (110,574 m at the equator): with it the A* heuristic never overestimates.
M_PER_DEGREE_MIN = 110_574.0
# Ids of the pieces of split segments and of the snapped points: negative, so no real id is ever taken; -1 is
# pgRouting's "end of path" edge, so the pieces start below it.
ORIGIN_VERTEX, DESTINATION_VERTEX = -101, -102
FIRST_PIECE_ID = -11


class RouteRefused(ValueError):
    """A route cannot be given for a reason the caller can act on (the API answers 422 with the message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Snap:
    """Where a point meets the graph: segment `way_id` at `fraction` of its geometry (source → target)."""

    way_id: int
    source: int
    target: int
    fraction: float
    distance_m: float
    lng: float
    lat: float


@dataclass
class Piece:
    """A routable edge: a whole segment, or the part of one between two fractions (from_f → to_f, source → target
    order), with the vertices at its ends."""

    id: int
    way_id: int
    source: int
    target: int
    from_f: float
    to_f: float
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class Route:
    eta_sec: float
    distance_m: float
    observed_basis: dict[str, float]
    features: list[dict[str, Any]] = field(default_factory=list)
    algorithm: str = ""
    edges_searched: int = 0


# The speed each segment is costed at, and why: the one definition routing uses (the search, the split pieces and
# the answer's properties all read it). %(dow)s / %(hour)s select the band; parameters are bound by psycopg here,
# and inlined as literals where pgRouting takes the query as text.
_SPEEDS = """
SELECT w.id, w.source, w.target, w.length_m, w.oneway, w.x1, w.y1, w.x2, w.y2,
       coalesce(b.mean_kmh, w.speed_kmh) AS kmh,
       CASE WHEN b.mean_kmh IS NOT NULL THEN 'observed'
            WHEN w.maxspeed_kmh IS NOT NULL THEN 'maxspeed' ELSE 'class_default' END AS basis
  FROM geo_ways w
  LEFT JOIN geo_segment_speed_band b
         ON b.segment_id = w.id AND b.dow = {dow} AND b.hour = {hour} AND b.samples >= {min_samples}
        AND b.mean_kmh > 0
 WHERE w.routable AND {where}
"""


def _speeds_sql(*, dow: int, hour: int, where: str) -> str:
    min_samples = int(threshold("route_speed_min_samples"))
    return _SPEEDS.format(dow=int(dow), hour=int(hour), min_samples=min_samples, where=where)


def _envelope(lng1: float, lat1: float, lng2: float, lat2: float, margin_m: float) -> tuple[float, ...]:
    lat_pad = margin_m / M_PER_DEGREE_MIN
    high = min(89.0, max(abs(lat1), abs(lat2)) + lat_pad)
    lng_pad = margin_m / (M_PER_DEGREE_MIN * math.cos(math.radians(high)))
    return min(lng1, lng2) - lng_pad, min(lat1, lat2) - lat_pad, max(lng1, lng2) + lng_pad, max(lat1, lat2) + lat_pad


def snap(lat: float, lng: float) -> Snap | None:
    """The nearest routable segment to a point (geodesic distance, among the nearest few by the index), or None
    when the graph is empty."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326) AS g)
            SELECT w.id, w.source, w.target, ST_LineLocatePoint(w.geom, p.g),
                   ST_Distance(w.geom::geography, p.g::geography)
              FROM p, LATERAL (SELECT id, source, target, geom FROM geo_ways WHERE routable
                                ORDER BY geom <-> p.g LIMIT 8) w
             ORDER BY 5, 1 LIMIT 1
            """,
            {"lat": lat, "lng": lng},
        )
        row = cursor.fetchone()
    if row is None:
        return None
    way_id, source, target, fraction, distance_m = row
    return Snap(way_id, source, target, float(fraction), float(distance_m), lng, lat)


def _split(snaps: list[tuple[int, Snap]], way: dict[str, Any], next_id: int) -> list[Piece]:
    """The pieces of one segment cut at the snapped points on it (vertex ids of the points: the snap's key)."""
    cuts = sorted(snaps, key=lambda s: (s[1].fraction, s[0]))
    pieces = []
    prev_vertex, prev_f, prev_xy = way["source"], 0.0, (way["x1"], way["y1"])
    for vertex, s in cuts:
        pieces.append(Piece(next_id, way["id"], prev_vertex, vertex, prev_f, s.fraction, *prev_xy, s.lng, s.lat))
        next_id -= 1
        prev_vertex, prev_f, prev_xy = vertex, s.fraction, (s.lng, s.lat)
    pieces.append(Piece(next_id, way["id"], prev_vertex, way["target"], prev_f, 1.0, *prev_xy, way["x2"], way["y2"]))
    return pieces


def local_band(moment: datetime) -> tuple[int, int]:
    """(ISO weekday, hour) of a moment in DISPLAY_TIME_ZONE: the key of the speed bands."""
    local = moment.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE))
    return local.isoweekday(), local.hour


def _literal(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value}")
    return repr(float(value))


def route_between(
    origin: tuple[float, float], destination: tuple[float, float], *, depart_at: datetime, algorithm: str | None = None
) -> Route:
    """The fastest route from origin to destination ((lat, lng) each) leaving at depart_at. Raises RouteRefused."""
    algorithm = algorithm or settings.ROUTE_ALGORITHM
    max_snap_m = threshold("route_snap_max_m")
    ends = []
    for name, vertex, (lat, lng) in (
        ("origin", ORIGIN_VERTEX, origin),
        ("destination", DESTINATION_VERTEX, destination),
    ):
        s = snap(lat, lng)
        if s is None:
            raise RouteRefused("no_graph", "no road graph is loaded: load one with manage.py load_osm")
        if s.distance_m > max_snap_m:
            raise RouteRefused(
                "off_graph",
                f"the {name} ({lat:.6f}, {lng:.6f}) is {s.distance_m:,.0f} m from the nearest road of the graph;"
                f" points farther than {max_snap_m:,.0f} m are off the graph",
            )
        ends.append((vertex, s))
    dow, hour = local_band(depart_at)
    gc = haversine_m(*origin, *destination)
    margin = max(settings.ROUTE_SEARCH_MARGIN_M, settings.ROUTE_SEARCH_MARGIN_FACTOR * gc)
    (_, o), (_, d) = ends
    box = _envelope(o.lng, o.lat, d.lng, d.lat, margin)
    where = "w.geom && ST_MakeEnvelope({}, {}, {}, {}, 4326)".format(*map(_literal, box))
    found = _search(ends, dow=dow, hour=hour, where=where, high_lat=max(abs(box[1]), abs(box[3])), algorithm=algorithm)
    if found is None:  # nothing inside the area: the whole graph, once
        found = _search(ends, dow=dow, hour=hour, where="true", high_lat=89.0, algorithm=algorithm)
    if found is None:
        raise RouteRefused("no_route", "no route on the road graph connects the origin to the destination")
    return found


def _search(
    ends: list[tuple[int, Snap]], *, dow: int, hour: int, where: str, high_lat: float, algorithm: str
) -> Route | None:
    speeds = _speeds_sql(dow=dow, hour=hour, where=where)
    snapped = {s.way_id for _, s in ends}
    with connection.cursor() as cursor:
        cursor.execute(
            _speeds_sql(dow=dow, hour=hour, where="w.id = ANY(%(ids)s)"),
            {"ids": list(snapped)},
        )
        columns = [c.name for c in cursor.description]
        ways = {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
        pieces: list[Piece] = []
        next_id = FIRST_PIECE_ID
        for way_id in sorted(snapped):
            cut = _split([(v, s) for v, s in ends if s.way_id == way_id], ways[way_id], next_id)
            next_id -= len(cut)
            pieces += cut
        by_id = {p.id: p for p in pieces}
        values = ", ".join(
            "({}, {}, {}, {}, {}, {}, {}, {}, {})".format(
                p.id, p.source, p.target,
                _literal(ways[p.way_id]["length_m"] * (p.to_f - p.from_f) * 3.6 / ways[p.way_id]["kmh"]),
                "-1" if ways[p.way_id]["oneway"] else
                _literal(ways[p.way_id]["length_m"] * (p.to_f - p.from_f) * 3.6 / ways[p.way_id]["kmh"]),
                *map(_literal, (p.x1, p.y1, p.x2, p.y2)),
            )
            for p in pieces
        )  # fmt: skip
        excluded = ", ".join(str(int(w)) for w in sorted(snapped))
        edges = (
            f"SELECT id, source, target, length_m * 3.6 / kmh AS cost,"
            f" CASE WHEN oneway THEN -1 ELSE length_m * 3.6 / kmh END AS reverse_cost, x1, y1, x2, y2"
            f" FROM ({speeds}) s WHERE id NOT IN ({excluded})"
            f" UNION ALL SELECT * FROM (VALUES {values}) v(id, source, target, cost, reverse_cost, x1, y1, x2, y2)"
        )
        (o_vertex, _), (d_vertex, _) = ends
        if algorithm == "astar":
            cursor.execute(f"SELECT max(kmh), count(*) FROM ({speeds}) s")
            vmax_kmh, searched = cursor.fetchone()
            vmax_kmh = max(float(vmax_kmh or 0.0), max(w["kmh"] for w in ways.values()))
            factor = M_PER_DEGREE_MIN * math.cos(math.radians(min(89.0, high_lat))) / (vmax_kmh / 3.6)
            cursor.execute(
                "SELECT edge, node FROM pgr_aStar(%s, %s, %s, directed => true, heuristic => 4, factor => %s)"
                " ORDER BY seq",
                [edges, o_vertex, d_vertex, factor],
            )
        else:
            searched = 0
            cursor.execute(
                "SELECT edge, node FROM pgr_dijkstra(%s, %s, %s, directed => true) ORDER BY seq",
                [edges, o_vertex, d_vertex],
            )
        path = [(edge, node) for edge, node in cursor.fetchall() if edge != -1]
        if not path:
            return None
        # Each step as (way, from fraction, to fraction) along the way's geometry; a whole segment's direction is
        # decided in SQL from the vertex the path enters it by (None here).
        steps: list[tuple[int, float | None, float | None, int]] = []
        for edge, node in path:
            piece = by_id.get(edge)
            if piece is None:
                steps.append((edge, None, None, node))
            elif node == piece.source:
                steps.append((piece.way_id, piece.from_f, piece.to_f, node))
            else:
                steps.append((piece.way_id, piece.to_f, piece.from_f, node))
        return _route_of(cursor, steps, dow=dow, hour=hour, algorithm=algorithm, searched=int(searched or 0))


def _route_of(
    cursor: Any,
    steps: list[tuple[int, float | None, float | None, int]],
    *,
    dow: int,
    hour: int,
    algorithm: str,
    searched: int,
) -> Route:
    """The answer: one GeoJSON feature per step (its part of the way, in driving direction), ETA and basis.
    A zero-length piece (an end exactly on a vertex) is left out."""
    cursor.execute(
        f"""
        WITH given AS (
            SELECT * FROM unnest(%(ways)s::bigint[], %(froms)s::float8[], %(tos)s::float8[], %(nodes)s::bigint[])
                   WITH ORDINALITY AS u(way_id, from_f, to_f, node, n)
        ), step AS (
            SELECT g.n, g.way_id,
                   coalesce(g.from_f, CASE WHEN g.node = w.source THEN 0.0 ELSE 1.0 END) AS from_f,
                   coalesce(g.to_f, CASE WHEN g.node = w.source THEN 1.0 ELSE 0.0 END) AS to_f
              FROM given g JOIN geo_ways w ON w.id = g.way_id
        ), speeds AS ({_speeds_sql(dow=dow, hour=hour, where="w.id = ANY(%(ways)s)")})
        SELECT step.n, w.id, w.osm_id, w.name, w.highway, s.basis, s.kmh,
               w.length_m * abs(step.to_f - step.from_f),
               ST_AsGeoJSON(CASE WHEN step.from_f <= step.to_f
                                 THEN ST_LineSubstring(w.geom, step.from_f, step.to_f)
                                 ELSE ST_Reverse(ST_LineSubstring(w.geom, step.to_f, step.from_f)) END, 6)
          FROM step JOIN geo_ways w ON w.id = step.way_id JOIN speeds s ON s.id = w.id
         WHERE step.from_f <> step.to_f
         ORDER BY step.n
        """,
        {
            "ways": [s[0] for s in steps],
            "froms": [s[1] for s in steps],
            "tos": [s[2] for s in steps],
            "nodes": [s[3] for s in steps],
        },
    )
    features: list[dict[str, Any]] = []
    seconds, lengths = 0.0, dict.fromkeys(BASES, 0.0)
    for _n, way_id, osm_id, name, highway, basis, kmh, length_m, geometry in cursor.fetchall():
        step_s = length_m * 3.6 / kmh
        seconds += step_s
        lengths[basis] += length_m
        features.append(
            {
                "type": "Feature",
                "geometry": json.loads(geometry),
                "properties": {
                    "seq": len(features) + 1,
                    "way_id": way_id,
                    "osm_id": osm_id,
                    "name": name,
                    "highway": highway,
                    "basis": basis,
                    "speed_kmh": round(kmh, 1),
                    "length_m": round(length_m, 1),
                    "duration_s": round(step_s, 1),
                },
            }
        )
    total = sum(lengths.values())
    basis_share: dict[str, float] = {b: (round(lengths[b] / total, 4) if total else 0.0) for b in BASES}
    return Route(
        eta_sec=round(seconds, 1),
        distance_m=round(total, 1),
        observed_basis=basis_share,
        features=features,
        algorithm=algorithm,
        edges_searched=searched,
    )
