"""Distance on drives of known length along real roads (the Monaco extract's road graph): a clean drive, the same
drive with a queue and a parking inserted (jittering fixes), at one fix every 1, 10 and 30 s — through the real
pipeline. The table this prints (`-s`) is the one docs/numbers.md and the README quote."""

from __future__ import annotations

import itertools
import math
import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from state.geometry import haversine_m
from state.tests.drives import M_PER_DEG, T0, Ev, feed, fix, geodesic_m, stops_of, trips_of

pytestmark = pytest.mark.django_db

MONACO = Path(__file__).resolve().parents[2] / "geo" / "data" / "monaco.osm.pbf"
S = timedelta(seconds=1)
SPEED_KMH = 30.0
# Fontvieille (west) to Larvotto (east): a drive across the whole principality.
FROM, TO = (43.7289, 7.4148), (43.7470, 7.4366)

# The vertex nearest a point among those of the graph's largest strongly connected part (any two of them are
# routable both ways: a dead end of a clipped extract is not).
_NEAREST_VERTEX = """
WITH parts AS (
    SELECT node, component FROM pgr_strongComponents('SELECT id, source, target, cost, reverse_cost FROM geo_ways')
), main AS (SELECT component FROM parts GROUP BY component ORDER BY count(*) DESC LIMIT 1)
SELECT v.id FROM geo_ways_vertices v JOIN parts ON parts.node = v.id JOIN main USING (component)
 ORDER BY v.geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1
"""
_ROUTE = """
SELECT ST_X(pt.geom), ST_Y(pt.geom)
  FROM (SELECT ST_MakeLine(CASE WHEN w.source = d.node THEN w.geom ELSE ST_Reverse(w.geom) END ORDER BY d.seq) AS line
          FROM pgr_dijkstra('SELECT id, source, target, cost, reverse_cost FROM geo_ways', %s, %s, true) d
          JOIN geo_ways w ON w.id = d.edge) r,
       ST_DumpPoints(r.line) AS pt
 ORDER BY pt.path
"""


def road_route() -> list[tuple[float, float]]:
    """(lat, lng) vertices of the shortest drive from FROM to TO on the loaded road graph."""
    with connection.cursor() as cursor:
        ends = []
        for lat, lng in (FROM, TO):
            cursor.execute(_NEAREST_VERTEX, [lng, lat])
            ends.append(cursor.fetchone()[0])
        cursor.execute(_ROUTE, ends)
        points = [(lat, lng) for lng, lat in cursor.fetchall()]
    return [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]


def along(route: list[tuple[float, float]], every_m: float) -> list[tuple[float, float]]:
    """Points on the route every `every_m` metres (and its end): where a tracker at constant speed reports."""
    out, carry = [route[0]], 0.0
    for (a_lat, a_lng), (b_lat, b_lng) in itertools.pairwise(route):
        seg = haversine_m(a_lat, a_lng, b_lat, b_lng)
        pos = every_m - carry
        while pos <= seg:
            f = pos / seg
            out.append((a_lat + f * (b_lat - a_lat), a_lng + f * (b_lng - a_lng)))
            pos += every_m
        carry = (carry + seg) % every_m
    if out[-1] != route[-1]:
        out.append(route[-1])
    return out


def wander(device_id: int, start, *, seconds: int, every: int, at: tuple[float, float], ignition: bool,
           seed: int) -> list[Ev]:  # fmt: skip
    """A waiting vehicle: speed 0, the fix wandering up to 6 m around where it stands."""
    rng = random.Random(seed)
    out = []
    for k in range(1, seconds // every + 1):
        r, bearing = 6.0 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        lat = at[0] + r * math.cos(bearing) / M_PER_DEG
        lng = at[1] + r * math.sin(bearing) / (M_PER_DEG * math.cos(math.radians(at[0])))
        out.append(fix(device_id, start + k * every * S, lat, lng, 0.0, ignition=ignition))
    return out


def drive_events(device_id: int, points: list[tuple[float, float]], every: int, *, waits: bool) -> list[Ev]:
    """Fixes along `points` (one every `every` s); with `waits`, a 2-minute queue (ignition on) a quarter of the way
    and a 10-minute parking (ignition off) half way, both jittering, reported at the same rate."""
    events, t = [], T0
    for i, (lat, lng) in enumerate(points):
        events.append(fix(device_id, t, lat, lng, SPEED_KMH, ignition=True))
        t += every * S
        if waits and i in (len(points) // 4, len(points) // 2):
            parked = i == len(points) // 2
            seconds = 600 if parked else 120
            events += wander(device_id, t - every * S, seconds=seconds, every=every, at=(lat, lng),
                             ignition=not parked, seed=i)  # fmt: skip
            t += seconds * S
    return events


@pytest.fixture
def roads(db):
    call_command("load_osm", str(MONACO), verbosity=0)


def test_it_measures_drives_of_known_length_without_standstill_jitter(roads, make_device, account):
    route = road_route()
    true_m = geodesic_m(route)
    assert true_m > 2500, "the route must cross Monaco"
    table = []
    for every in (1, 10, 30):
        points = along(route, SPEED_KMH / 3.6 * every)
        clean, waited = make_device().id, make_device().id
        feed(drive_events(clean, points, every, waits=False), account_id=account.id)
        feed(drive_events(waited, points, every, waits=True), account_id=account.id)
        clean_m = sum(t["distance_m"] for t in trips_of(clean))
        waited_m = sum(t["distance_m"] for t in trips_of(waited))
        table.append((every, true_m, clean_m, waited_m))
        assert len(trips_of(clean)) == 1
        assert len(trips_of(waited)) == 2  # the parking splits the drive; the queue does not
        assert [s["mode"] for s in stops_of(waited) if s["closed"]] == ["parking"]
        assert waited_m == pytest.approx(clean_m, rel=0.005)  # the waits add nothing
        if every == 1:
            assert clean_m == pytest.approx(true_m, rel=0.005)
    print("\nfix every | true length m | clean drive m (error) | with queue + parking m (error)")
    for every, true, clean_m, waited_m in table:
        print(f"{every:>5} s | {true:>12.1f} | {clean_m:>9.1f} ({(clean_m - true) / true:+.2%})"
              f" | {waited_m:>9.1f} ({(waited_m - true) / true:+.2%})")  # fmt: skip
