"""The road graph as the simulator reads it: the vertices of its largest strongly connected part (any two of them are
routable both ways, so every route the simulator asks for exists), depots, and routes as polylines with a speed per
piece and a cap at each bend and junction (geo_ways, docs/architecture.md "Roads")."""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Protocol

import structlog
from django.db import DatabaseError, connection

from state.geometry import haversine_m

log = structlog.get_logger("devtools.simulator")

EDGES_SQL = "SELECT id, source, target, cost, reverse_cost FROM geo_ways ORDER BY id"

_MAIN_PART = """
WITH parts AS (SELECT node, component FROM pgr_strongComponents(%(edges)s)),
main AS (SELECT component FROM parts GROUP BY component ORDER BY count(*) DESC, component LIMIT 1)
SELECT v.id, ST_Y(v.geom), ST_X(v.geom),
       EXISTS (SELECT 1 FROM geo_ways w WHERE (w.source = v.id OR w.target = v.id) AND w.highway = 'service')
  FROM parts JOIN main USING (component) JOIN geo_ways_vertices v ON v.id = parts.node
 ORDER BY v.id
"""

_DEGREES = (
    "SELECT v, count(*) FROM (SELECT source AS v FROM geo_ways UNION ALL SELECT target FROM geo_ways) e GROUP BY v"
)

# Each edge of the route with its points in the direction of travel (a two-way way driven target → source is
# reversed), the way's speed and class.
_ROUTE = """
SELECT d.node, w.speed_kmh, w.highway, pts.lats, pts.lngs
  FROM pgr_dijkstra(%(edges)s, %(source)s, %(target)s, directed => true) d
  JOIN geo_ways w ON w.id = d.edge
 CROSS JOIN LATERAL (
       SELECT array_agg(ST_Y(p.geom) ORDER BY p.path) AS lats, array_agg(ST_X(p.geom) ORDER BY p.path) AS lngs
         FROM ST_DumpPoints(CASE WHEN w.source = d.node THEN w.geom ELSE ST_Reverse(w.geom) END) p) pts
 ORDER BY d.seq
"""

_NEAREST = """
SELECT id FROM geo_ways_vertices ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 50
"""

# Speed caps at a bend of the polyline by its turn angle (degrees, km/h), sharpest first; a junction (a vertex
# three or more road pieces meet at) caps at JUNCTION_FACTOR of the slower of its two ways, whatever the angle.
TURN_CAPS_KMH = ((110.0, 12.0), (70.0, 18.0), (40.0, 26.0), (20.0, 38.0))
JUNCTION_FACTOR = 0.7
JUNCTION_MIN_KMH = 20.0


class NoRoadGraph(Exception):
    """No road graph is loaded (geo_ways is empty)."""


@dataclass(frozen=True)
class Vertex:
    id: int
    lat: float
    lng: float
    service: bool  # touches a service road (a yard, a car park): where depots go


@dataclass(frozen=True)
class Route:
    """A drive from one vertex to another as a polyline: `cum_m[i]` metres from the start to point i, the way's
    speed on the piece from point i to i + 1, the cap at point i (km/h; inf where the road runs straight on), and
    which points are junctions (where traffic lights and queues are)."""

    source: int
    target: int
    lats: tuple[float, ...]
    lngs: tuple[float, ...]
    cum_m: tuple[float, ...]
    speed_kmh: tuple[float, ...]
    highway: tuple[str, ...]
    cap_kmh: tuple[float, ...]
    junctions: tuple[int, ...]

    @property
    def length_m(self) -> float:
        return self.cum_m[-1]

    def piece(self, s: float) -> int:
        """The index of the piece (point i → i + 1) at `s` metres from the start."""
        return max(0, min(len(self.cum_m) - 2, bisect.bisect_right(self.cum_m, s) - 1))

    def at(self, s: float) -> tuple[float, float, float]:
        """(lat, lng, heading in degrees) `s` metres along the route."""
        i = self.piece(s)
        span = self.cum_m[i + 1] - self.cum_m[i]
        f = 0.0 if span <= 0 else min(1.0, max(0.0, (s - self.cum_m[i]) / span))
        lat = self.lats[i] + f * (self.lats[i + 1] - self.lats[i])
        lng = self.lngs[i] + f * (self.lngs[i + 1] - self.lngs[i])
        return lat, lng, bearing_deg(self.lats[i], self.lngs[i], self.lats[i + 1], self.lngs[i + 1])


class RoadGraph(Protocol):
    """What the generator needs of a road graph."""

    def vertices(self) -> list[Vertex]: ...

    def route(self, source: int, target: int) -> Route | None: ...

    def nearest_vertex(self, lat: float, lng: float, *, within_m: float) -> Vertex | None: ...


def bearing_deg(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    y = math.sin(math.radians(lng2 - lng1)) * math.cos(math.radians(lat2))
    x = math.cos(math.radians(lat1)) * math.sin(math.radians(lat2)) - math.sin(math.radians(lat1)) * math.cos(
        math.radians(lat2)
    ) * math.cos(math.radians(lng2 - lng1))
    return math.degrees(math.atan2(y, x)) % 360.0


def turn_deg(a: float, b: float) -> float:
    """The angle between two headings, 0 to 180 degrees."""
    d = abs(a - b) % 360.0
    return 360.0 - d if d > 180.0 else d


def turn_cap_kmh(angle: float) -> float:
    for sharper_than, cap in TURN_CAPS_KMH:
        if angle > sharper_than:
            return cap
    return math.inf


def build_route(
    source: int, target: int, edges: list[tuple[int, float, str, list[float], list[float]]], degrees: dict[int, int]
) -> Route | None:
    """A Route from pgr_dijkstra's edges in order: (vertex the edge is entered at, speed, class, lats, lngs)."""
    lats: list[float] = []
    lngs: list[float] = []
    speeds: list[float] = []
    classes: list[str] = []
    junction_points: list[int] = []
    for node, speed, highway, e_lats, e_lngs in edges:
        if lats:
            if degrees.get(node, 0) >= 3:
                junction_points.append(len(lats) - 1)
            e_lats, e_lngs = e_lats[1:], e_lngs[1:]  # its first point is the previous edge's last
        for lat, lng in zip(e_lats, e_lngs, strict=True):
            if lats and lat == lats[-1] and lng == lngs[-1]:
                continue
            if lats:
                speeds.append(speed)
                classes.append(highway)
            lats.append(lat)
            lngs.append(lng)
    if len(lats) < 2:
        return None
    cum = [0.0]
    for i in range(1, len(lats)):
        cum.append(cum[-1] + haversine_m(lats[i - 1], lngs[i - 1], lats[i], lngs[i]))
    caps = [math.inf] * len(lats)
    for i in range(1, len(lats) - 1):
        angle = turn_deg(
            bearing_deg(lats[i - 1], lngs[i - 1], lats[i], lngs[i]),
            bearing_deg(lats[i], lngs[i], lats[i + 1], lngs[i + 1]),
        )
        caps[i] = turn_cap_kmh(angle)
    for i in junction_points:
        if not 0 < i < len(lats) - 1:
            continue
        caps[i] = min(caps[i], max(JUNCTION_MIN_KMH, JUNCTION_FACTOR * min(speeds[i - 1], speeds[i])))
    caps[-1] = 0.0  # the destination: the vehicle stops there
    return Route(
        source=source,
        target=target,
        lats=tuple(lats),
        lngs=tuple(lngs),
        cum_m=tuple(cum),
        speed_kmh=tuple(speeds),
        highway=tuple(classes),
        cap_kmh=tuple(caps),
        junctions=tuple(junction_points),
    )


class PgRoadGraph:
    """The loaded graph (geo_ways), read through the default database connection."""

    def __init__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM geo_ways)")
            row = cursor.fetchone()
            if not row or not row[0]:
                raise NoRoadGraph(
                    "no road graph is loaded: run `manage.py load_osm geo/data/monaco.osm.pbf` (or any .osm.pbf"
                    " extract) first"
                )
            cursor.execute(_MAIN_PART, {"edges": EDGES_SQL})
            self._vertices = [Vertex(int(r[0]), float(r[1]), float(r[2]), bool(r[3])) for r in cursor.fetchall()]
            cursor.execute(_DEGREES)
            self._degrees = {int(v): int(n) for v, n in cursor.fetchall()}
        self._main = {v.id: v for v in self._vertices}

    def vertices(self) -> list[Vertex]:
        return self._vertices

    def route(self, source: int, target: int) -> Route | None:
        if source == target:
            return None
        try:
            with connection.cursor() as cursor:
                cursor.execute(_ROUTE, {"edges": EDGES_SQL, "source": source, "target": target})
                edges = [(int(n), float(s), str(h), list(la), list(ln)) for n, s, h, la, ln in cursor.fetchall()]
        except DatabaseError as exc:  # the database restarting: no route this time, a new connection next time
            log.warning("simulator.no_route", source=source, target=target, error=str(exc).strip()[:200])
            connection.close()
            return None
        return build_route(source, target, edges, self._degrees)

    def nearest_vertex(self, lat: float, lng: float, *, within_m: float) -> Vertex | None:
        """The nearest vertex of the main part to a point, when one lies within `within_m`."""
        with connection.cursor() as cursor:
            cursor.execute(_NEAREST, [lng, lat])
            ids = [int(r[0]) for r in cursor.fetchall()]
        for vertex_id in ids:
            vertex = self._main.get(vertex_id)
            if vertex is not None:
                return vertex if haversine_m(lat, lng, vertex.lat, vertex.lng) <= within_m else None
        return None


def pick_depots(vertices: list[Vertex], n: int, rng: random.Random) -> list[Vertex]:
    """`n` depots spread over the graph: on service roads where there are any, the first at random, then each the
    candidate farthest from those chosen."""
    candidates = [v for v in vertices if v.service] or vertices
    chosen = [rng.choice(candidates)]
    while len(chosen) < min(n, len(candidates)):
        far = max(candidates, key=lambda v: min(haversine_m(v.lat, v.lng, c.lat, c.lng) for c in chosen))
        chosen.append(far)
    return chosen
