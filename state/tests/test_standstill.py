"""Standstill jitter is not distance: a tracker wandering a few metres while the vehicle waits adds nothing to a
trip, real slow movement still counts. Drives go through the real pipeline (parsed events → projectors)."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from django.db import connection

from state.geometry import haversine_m
from state.tests.drives import M_PER_DEG, T0, Ev, drive, end_of, feed, fix, geodesic_m, trips_of

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def jitter(device_id: int, start, *, seconds: int, at: tuple[float, float], radius_m: float = 6.0,
           every: int = 1, seed: int = 7, ignition: bool = True) -> list[Ev]:  # fmt: skip
    """A stationary tracker: a fix every `every` s, speed 0, wandering up to `radius_m` around `at`."""
    rng = random.Random(seed)
    out = []
    for k in range(1, seconds // every + 1):
        r, bearing = radius_m * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        dlat = r * math.cos(bearing) / M_PER_DEG
        dlng = r * math.sin(bearing) / (M_PER_DEG * math.cos(math.radians(at[0])))
        out.append(fix(device_id, start + k * every * S, at[0] + dlat, at[1] + dlng, 0.0, ignition=ignition))
    return out


def path_length(events: list[Ev]) -> float:
    return geodesic_m([(e.payload["lat"], e.payload["lng"]) for e in sorted(events, key=lambda e: e.at)])


def test_it_uses_the_same_great_circle_as_the_database():
    pairs = [(-1.2921, 36.8219, -1.3, 36.83), (43.7384, 7.4246, 43.7311, 7.4197), (0.0, 0.0, 0.0, 1.0)]
    with connection.cursor() as cursor:
        for pair in pairs:
            cursor.execute("SELECT state_haversine_m(%s, %s, %s, %s)", list(pair))
            assert haversine_m(*pair) == pytest.approx(cursor.fetchone()[0], abs=1e-6)


def test_it_adds_no_distance_for_an_idle_in_a_queue(make_device, account):
    d = make_device().id
    first = drive(d, T0, seconds=300, every=1, speed=36)
    idle = jitter(d, T0 + 300 * S, seconds=120, at=end_of(first))  # two minutes in a queue, ignition on
    second = drive(d, T0 + 421 * S, seconds=300, every=1, speed=36, origin=end_of(first))
    feed([*first, *idle, *second], account_id=account.id)
    (trip,) = trips_of(d)
    driven = path_length(first) + path_length(second)
    assert trip["distance_m"] == pytest.approx(driven, rel=0.005)  # without the rule: about 0.5 km more


def test_it_counts_a_walking_pace_manoeuvre_in_a_yard(make_device, account):
    d = make_device().id
    first = drive(d, T0, seconds=300, every=1, speed=36)
    wait = jitter(d, T0 + 300 * S, seconds=60, at=end_of(first), radius_m=3)
    lat, lng = end_of(first)
    # 30 m east at 4 km/h (below the moving threshold), a fix a second, then the drive goes on from there.
    yard = [fix(d, T0 + (361 + k) * S, lat, lng + k * 1.11 / (M_PER_DEG * math.cos(math.radians(lat))), 4.0,
                ignition=True) for k in range(28)]  # fmt: skip
    second = drive(d, T0 + 390 * S, seconds=300, every=1, speed=36, origin=end_of(yard))
    feed([*first, *wait, *yard, *second], account_id=account.id)
    (trip,) = trips_of(d)
    moved = path_length(first) + geodesic_m([end_of(first), end_of(yard)]) + path_length(second)
    radius = 10.0  # standstill_radius_m's default: at most one radius of a slow manoeuvre is lost
    assert moved - radius <= trip["distance_m"] <= moved + 1.0


def test_it_keeps_every_jittering_fix_with_its_verdict(make_device, account):
    d = make_device().id
    first = drive(d, T0, seconds=120, every=1, speed=36)
    idle = jitter(d, T0 + 120 * S, seconds=60, at=end_of(first))
    feed([*first, *idle], account_id=account.id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM state_position_history WHERE device_id = %s AND verdict = 'ok'", [d])
        assert cursor.fetchone()[0] == len(first) + len(idle)  # the rule changes what is summed, nothing else


def test_it_ignores_one_wild_fix_at_a_standstill(make_device, account):
    d = make_device().id
    first = drive(d, T0, seconds=300, every=1, speed=36)
    lat, lng = end_of(first)
    idle = jitter(d, T0 + 300 * S, seconds=120, at=(lat, lng))
    idle[50].payload["lat"] += 25 / M_PER_DEG  # one fix 25 m off, back the next second (multipath)
    second = drive(d, T0 + 421 * S, seconds=300, every=1, speed=36, origin=(lat, lng))
    feed([*first, *idle, *second], account_id=account.id)
    (trip,) = trips_of(d)
    assert trip["distance_m"] == pytest.approx(path_length(first) + path_length(second), rel=0.005)
