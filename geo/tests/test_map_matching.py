"""Map matching on the Monaco graph: drives along known routes, with GPS noise, written into events_parsed as the
parser would (geo's trigger fills its work-list), matched by the real projector; the observations it writes, the
speed bands it keeps, and routing reading them."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

from devtools.testing.auth import PASSWORD, make_api_user
from geo.matching.hmm import Candidate, Fix, Graph, Params, Segment, match, thin, traversals
from geo.matching.projector import match_fold, match_rebuild_window
from geo.matching.worklist import match_batch, match_drain
from geo.models import MatchPending, SegmentObservation, SegmentSpeedBand, Way
from geo.routing import local_band, route_between
from slo.thresholds import threshold
from state.geometry import haversine_m
from state.tests.drives import M_PER_DEG, Ev, fix, insert

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # Monday 08:00 in Nairobi
FONTVIEILLE = (43.7289, 7.4148)
LARVOTTO = (43.7470, 7.4366)
BOULEVARD_A = (43.73295, 7.42215)  # Boulevard Albert 1er, one-way northwards: A south, B north
BOULEVARD_B = (43.73640, 7.42140)


def route_points(origin: tuple[float, float], destination: tuple[float, float]) -> tuple[list[tuple[float, float]],
                                                                                       list[int]]:  # fmt: skip
    """(lat, lng) of the fastest route's line, and the OSM ways it takes (in order, each once)."""
    found = route_between(origin, destination, depart_at=T0)
    points: list[tuple[float, float]] = []
    ways: list[int] = []
    for feature in found.features:
        for lng, lat in feature["geometry"]["coordinates"]:
            if not points or points[-1] != (lat, lng):
                points.append((lat, lng))
        if not ways or ways[-1] != feature["properties"]["osm_id"]:
            ways.append(feature["properties"]["osm_id"])
    return points, ways


def along(points: list[tuple[float, float]], every_m: float) -> list[tuple[float, float]]:
    out, carry = [points[0]], 0.0
    for (a_lat, a_lng), (b_lat, b_lng) in itertools.pairwise(points):
        seg = haversine_m(a_lat, a_lng, b_lat, b_lng)
        pos = every_m - carry
        while pos <= seg:
            f = pos / seg
            out.append((a_lat + f * (b_lat - a_lat), a_lng + f * (b_lng - a_lng)))
            pos += every_m
        carry = (carry + seg) % every_m
    return out


def drive(device_id: int, points: list[tuple[float, float]], *, start: datetime = T0, every_s: int = 5,
          speed_kmh: float = 30.0, noise_m: float = 4.0, seed: int = 1) -> list[Ev]:  # fmt: skip
    """Fixes every `every_s` along the points at a constant speed, each off by Gaussian noise (seeded)."""
    rng = random.Random(seed)
    events = []
    for k, (lat, lng) in enumerate(along(points, speed_kmh / 3.6 * every_s)):
        dn, de = rng.gauss(0, noise_m), rng.gauss(0, noise_m)
        lat2, lng2 = lat + dn / M_PER_DEG, lng + de / (M_PER_DEG * math.cos(math.radians(lat)))
        events.append(fix(device_id, start + timedelta(seconds=k * every_s), lat2, lng2, speed_kmh))
    return events


def match_all() -> None:
    match_drain(match_fold, batch_size=1000, woken=False, budget_s=3600)


def observed_ways(device_id: int) -> list[int]:
    rows = SegmentObservation.objects.filter(device_id=device_id).order_by("observed_at")
    ways: list[int] = []
    for osm_id in rows.values_list("osm_id", flat=True):
        if not ways or ways[-1] != osm_id:
            ways.append(osm_id)
    return ways


def observations(device_id: int) -> list[tuple[Any, ...]]:
    return list(
        SegmentObservation.objects.filter(device_id=device_id)
        .order_by("observed_at", "segment_id")
        .values_list("segment_id", "direction", "observed_at", "length_m", "speed_kmh", "complete", "in_band")
    )


def bands() -> dict[tuple[int, int, int], tuple[int, float]]:
    return {
        (b.segment_id, b.dow, b.hour): (b.samples, round(b.mean_kmh or 0, 6))
        for b in SegmentSpeedBand.objects.filter(samples__gt=0)
    }


def bands_from_observations() -> dict[tuple[int, int, int], tuple[int, float]]:
    """What the bands must hold: the in-band observations, grouped by segment and local weekday and hour."""
    sums: dict[tuple[int, int, int], list[float]] = {}
    for o in SegmentObservation.objects.filter(in_band=True):
        key = (o.segment_id, *local_band(o.observed_at))
        assert o.speed_kmh is not None  # in band: it has a speed
        sums.setdefault(key, []).append(o.speed_kmh)
    return {key: (len(v), round(sum(v) / len(v), 6)) for key, v in sums.items()}


def test_it_matches_a_noisy_drive_across_monaco_to_the_roads_it_took(monaco, make_device, account):
    points, truth = route_points(FONTVIEILLE, LARVOTTO)
    device = make_device()
    insert(drive(device.id, points, every_s=5), account_id=account.id)
    assert MatchPending.objects.count() > 50  # geo's own trigger filled its work-list
    match_all()
    assert not MatchPending.objects.exists()
    matched = observed_ways(device.id)
    recall = len(set(truth) & set(matched)) / len(set(truth))
    precision = len(set(truth) & set(matched)) / len(set(matched))
    assert recall >= 0.9, (recall, sorted(set(truth) - set(matched)))
    assert precision >= 0.9, (precision, sorted(set(matched) - set(truth)))
    rows = SegmentObservation.objects.filter(device_id=device.id)
    assert all(0 <= o.confidence <= 1 for o in rows)
    # Speeds of whole segments are the drive's speed, give or take the noise and the 5-s sampling.
    whole = [o.speed_kmh for o in rows if o.complete and o.length_m > 50 and o.speed_kmh is not None]
    assert whole
    assert sorted(whole)[len(whole) // 2] == pytest.approx(30.0, rel=0.15)


def test_it_follows_boulevard_albert_1er_the_way_it_runs(monaco, make_device, account):
    points, truth = route_points(BOULEVARD_A, BOULEVARD_B)
    device = make_device()
    insert(drive(device.id, points, every_s=2, noise_m=3.0), account_id=account.id)
    match_all()
    rows = SegmentObservation.objects.filter(device_id=device.id)
    assert set(rows.values_list("osm_id", flat=True)) <= set(truth)
    assert set(rows.values_list("direction", flat=True)) == {"forward"}  # one-way segments run source → target


def test_it_gives_the_same_observations_and_bands_whatever_the_arrival_order(monaco, make_device, account):
    points, _ = route_points(FONTVIEILLE, LARVOTTO)
    in_order, shuffled = make_device(), make_device()
    events = drive(in_order.id, points, every_s=3)
    insert(events, account_id=account.id)
    match_all()
    # The same fixes for another device, in a random order, in four batches matched one after the other.
    other = drive(shuffled.id, points, every_s=3)
    random.Random(7).shuffle(other)
    for batch in (other[0::4], other[1::4], other[2::4], other[3::4]):
        insert(batch, account_id=account.id)
        match_all()
    assert observations(in_order.id)
    assert observations(shuffled.id) == observations(in_order.id)
    assert bands() == bands_from_observations()
    # Matching a window again (a re-parse, a replay) replaces its observations and counts nothing twice.
    match_rebuild_window(in_order.id, T0 - timedelta(hours=1), T0 + timedelta(hours=2))
    assert observations(shuffled.id) == observations(in_order.id)
    assert bands() == bands_from_observations()


def test_it_takes_a_deleted_fix_out_of_the_match(monaco, make_device, account):
    points, _ = route_points(BOULEVARD_A, LARVOTTO)
    device = make_device()
    ids = insert(drive(device.id, points, every_s=3), account_id=account.id)
    match_all()
    before = observations(device.id)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("DELETE FROM events_parsed WHERE id = ANY(%s)", [ids[len(ids) // 2 :]])
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    assert MatchPending.objects.count() == len(ids) - len(ids) // 2  # the trigger follows deletes too
    match_all()
    after = observations(device.id)
    assert 0 < len(after) < len(before)
    assert bands() == bands_from_observations()


@override_settings(MAPMATCH_WINDOW_S=120, MAPMATCH_WINDOW_MARGIN_S=30)
def test_it_cuts_the_match_where_the_fixes_stop_for_longer_than_the_gap(monaco, make_device, account):
    points, _ = route_points(FONTVIEILLE, LARVOTTO)
    half = len(points) // 2
    device = make_device()
    gap = timedelta(seconds=threshold("mapmatch_max_gap_s") + 60)
    first = drive(device.id, points[:half], every_s=3)
    second = drive(device.id, points[half:], start=first[-1].at + gap, every_s=3, seed=2)
    insert(first + second, account_id=account.id)
    match_all()
    rows = SegmentObservation.objects.filter(device_id=device.id)
    assert rows.exists()
    # No traversal is timed across the silence.
    assert not rows.filter(entered_at__lt=first[-1].at, left_at__gt=second[0].at).exists()


def test_it_routes_at_the_speeds_it_observed(monaco, make_device, account, reader, api_client):
    """Ten drives up the boulevard at 12 km/h on Monday mornings fill its bands; a route leaving on a Monday
    morning is then costed at the observed speed."""
    points, _ = route_points(BOULEVARD_A, BOULEVARD_B)
    device = make_device()
    slow = []
    for week in range(int(threshold("route_speed_min_samples"))):
        slow += drive(device.id, points, start=T0 + timedelta(weeks=week), every_s=2, speed_kmh=12.0, seed=week)
    insert(slow, account_id=account.id)
    match_all()
    assert bands() == bands_from_observations()
    found = route_between(BOULEVARD_A, BOULEVARD_B, depart_at=T0 + timedelta(weeks=20, minutes=1))
    assert found.observed_basis["observed"] > 0.5
    observed = [f["properties"] for f in found.features if f["properties"]["basis"] == "observed"]
    assert all(p["speed_kmh"] == pytest.approx(12.0, rel=0.25) for p in observed)
    # Another hour: no band, the tags' speeds.
    other = route_between(BOULEVARD_A, BOULEVARD_B, depart_at=T0 + timedelta(hours=5))
    assert other.observed_basis["observed"] == 0


def test_the_work_list_sql_adds_fixes_and_wakes_no_job(make_device, account):
    """Fixes wait for their windows to close: geo's sweep drains them, no commit queues a job."""

    def geo_jobs() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'geo' AND status = 'todo'")
            return int(cursor.fetchone()[0])

    jobs_before = geo_jobs()
    device = make_device()
    insert([fix(device.id, T0, 43.73, 7.42, 20.0), fix(device.id, T0 + timedelta(seconds=5), 43.731, 7.42, 20.0)],
           account_id=account.id)  # fmt: skip
    insert([Ev("heartbeat", device.id, T0, {"ignition": True})], account_id=account.id)
    assert MatchPending.objects.count() == 2  # position fixes only
    assert geo_jobs() == jobs_before
    with connection.cursor() as cursor:
        cursor.execute("SELECT geo_match_pending_add(%s, %s, %s)", [999, T0, device.id])
    assert MatchPending.objects.filter(parsed_id=999).exists()


def test_it_retries_a_fix_whose_window_fails_and_matches_the_rest(make_device, account):
    good, bad = make_device(), make_device()
    insert([fix(good.id, T0, 43.73, 7.42, 20.0), fix(bad.id, T0, 43.73, 7.42, 20.0)], account_id=account.id)

    def fold(changed):
        if any(c.device_id == bad.id for c in changed):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
        match_fold(changed)

    assert match_batch(fold, limit=10) == 2
    (left,) = MatchPending.objects.all()
    assert (left.device_id, left.attempts) == (bad.id, 1)
    assert "division by zero" in left.last_error


# --- the matcher alone ---------------------------------------------------------------------------------------------


def line_graph() -> Graph:
    """Three 100-m segments in a row, west to east along the equator: 1 → 2 → 3 → 4; the middle one one-way east."""
    return Graph.of([Segment(10, 110, 1, 2, 100.0, False), Segment(20, 120, 2, 3, 100.0, True),
                     Segment(30, 130, 3, 4, 100.0, False)])  # fmt: skip


PARAMS = Params(sigma_m=5.0, beta_m=3.0, max_gap_s=180.0, max_speed_ms=70.0, search_radius_m=50.0)
M_PER_DEG_EQUATOR = 111_195.0


def at_m(x_m: float, t: float) -> Fix:
    return Fix(t, 0.0, x_m / M_PER_DEG_EQUATOR)


def test_the_matcher_keeps_to_the_line_and_times_each_segment():
    graph = line_graph()
    fixes = [at_m(x, t) for t, x in enumerate(range(10, 300, 20))]
    cands = [[Candidate(10 * (1 + int(f.lng * M_PER_DEG_EQUATOR) // 100), (f.lng * M_PER_DEG_EQUATOR) % 100, 0.0)]
             for f in fixes]  # fmt: skip
    (chain,) = match(fixes, cands, graph, PARAMS)
    found = traversals(chain, graph, PARAMS.sigma_m)
    assert [(t.segment, t.forward, t.complete) for t in found] == [
        (10, True, False),
        (20, True, True),
        (30, True, False),
    ]
    middle = found[1]
    assert middle.speed_kmh == pytest.approx(20 * 3.6)  # 20 m per second
    assert middle.confidence == pytest.approx(1.0)


def test_the_matcher_never_drives_a_one_way_backwards():
    """Fixes going west over the one-way middle segment: no route exists, so the chain breaks instead."""
    graph = line_graph()
    fixes = [at_m(250, 0), at_m(150, 5), at_m(50, 10)]
    cands = [[Candidate(30, 50.0, 0.0)], [Candidate(20, 50.0, 0.0)], [Candidate(10, 50.0, 0.0)]]
    chains = match(fixes, cands, graph, PARAMS)
    assert len(chains) == 3  # each fix alone: no chain drives west along segment 20
    assert all(not traversals(c, graph, PARAMS.sigma_m) for c in chains)


def test_thinning_drops_fixes_within_two_sigma():
    fixes = [at_m(0, 0), at_m(3, 1), at_m(6, 2), at_m(12, 3), at_m(40, 4)]
    assert [f.t for f in thin(fixes, 5.0)] == [0, 3, 4]


def test_the_matcher_prefers_the_road_the_fixes_follow_over_a_nearer_side_road():
    # Two parallel two-way roads 12 m apart; the fixes run along A but one fix strays nearer to B.
    graph = Graph.of([Segment(1, 1, 1, 2, 500.0, False), Segment(2, 2, 3, 4, 500.0, False)])
    fixes = [at_m(x, t) for t, x in enumerate(range(0, 200, 20))]
    cands = []
    for k, f in enumerate(fixes):
        x = f.lng * M_PER_DEG_EQUATOR
        near_b = k == 5
        cands.append([Candidate(1, x, 7.0 if near_b else 1.0), Candidate(2, x, 5.0 if near_b else 11.0)])
    (chain,) = match(fixes, cands, graph, PARAMS)
    assert Counter(c.segment for c in chain.chosen) == {1: len(fixes)}


def test_the_admin_lists_parked_fixes_and_requeues_them(make_device, account):
    device = make_device()
    insert([fix(device.id, T0, 43.73, 7.42, 20.0)], account_id=account.id)
    MatchPending.objects.update(attempts=5, failed_at=T0, last_error="ZeroDivisionError: division by zero")
    make_api_user("geo-admin", superuser=True)
    client = Client()
    client.login(username="geo-admin", password=PASSWORD)
    listing = client.get("/admin/geo/matchpending/?state=parked")
    assert listing.status_code == 200
    assert b"geo/matchpending/" in listing.content
    (row,) = MatchPending.objects.all()
    response = client.post("/admin/geo/matchpending/", {"action": "requeue", "_selected_action": [row.id]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.attempts, row.failed_at) == (0, None)


# --- a reload of the road graph -----------------------------------------------------------------------------------

T_JUNCTION = Path(__file__).resolve().parent / "t_junction.osm"


def test_a_reload_moves_observations_and_bands_to_the_new_segment_ids(tmp_path, make_device, account):
    call_command("load_osm", str(T_JUNCTION), verbosity=0)
    main = Way.objects.filter(osm_id=100).order_by("id").first()  # Main Street, 1 → 2
    side = Way.objects.get(osm_id=101)
    device = make_device()
    at = T0
    for way in (main, side):
        SegmentObservation.objects.create(
            segment_id=way.id, osm_id=way.osm_id, device_id=device.id, observed_at=at, entered_at=at, left_at=at,
            direction="forward", length_m=way.length_m, speed_kmh=20.0, confidence=1.0, complete=True, in_band=True,
        )  # fmt: skip
        SegmentSpeedBand.objects.create(segment_id=way.id, dow=1, hour=8, speed_sum=20.0, samples=1, mean_kmh=20.0)
    # The same network with a new way first in the file and Side Street redrawn: every id shifts by one, and Side
    # Street's segment is no longer the same road.
    text = T_JUNCTION.read_text()
    text = text.replace(
        '<way id="100"',
        '<node id="90" version="1" lat="-1.3100000" lon="36.8100000"/>'
        '<node id="91" version="1" lat="-1.3110000" lon="36.8100000"/>'
        '<way id="50" version="1"><nd ref="90"/><nd ref="91"/><tag k="highway" v="residential"/></way>'
        '<way id="100"',
    )
    text = text.replace('<nd ref="2"/><nd ref="4"/><nd ref="5"/>', '<nd ref="2"/><nd ref="4"/><nd ref="6"/>')
    changed = tmp_path / "t_junction_v2.osm"
    changed.write_text(text)
    call_command("load_osm", str(changed), verbosity=0)
    moved = Way.objects.filter(osm_id=100).order_by("id").first()
    assert moved.id == main.id + 1  # way 50 is numbered first now
    (kept,) = SegmentObservation.objects.all()
    assert (kept.segment_id, kept.osm_id) == (moved.id, 100)
    (band,) = SegmentSpeedBand.objects.all()
    assert (band.segment_id, band.samples, band.mean_kmh) == (moved.id, 1, 20.0)


def test_a_window_is_matched_once_it_has_closed_not_while_it_fills(monaco, make_device, account):
    """A fix waits until the last window it belongs to has closed (and the grace after it); a late fix whose windows
    closed long ago is matched at once; with MAPMATCH_SETTLE off every fix is matched as it comes."""
    from django.conf import settings

    width, margin, grace = (
        settings.MAPMATCH_WINDOW_S,
        settings.MAPMATCH_WINDOW_MARGIN_S,
        settings.MAPMATCH_SETTLE_GRACE_S,
    )
    points, _ = route_points(FONTVIEILLE, LARVOTTO)
    fresh, late = make_device(), make_device()
    now = datetime.now(UTC)
    # The newest fix of the fresh drive: inside the window that is filling now.
    newest = now - timedelta(seconds=1)
    fresh_drive = [e for e in drive(fresh.id, points, start=newest - timedelta(seconds=60)) if e.at <= newest]
    insert(fresh_drive, account_id=account.id)
    insert(drive(late.id, points, start=now - timedelta(hours=3)), account_id=account.id)
    match_all()
    # Every fix of the fresh drive is within m + W + m + grace of now, so at least its last one is still waiting.
    waiting = MatchPending.objects.filter(device_id=fresh.id)
    assert waiting.exists()
    last_window_closes = (math.floor((newest.timestamp() + margin) / width) + 1) * width + margin + grace
    assert last_window_closes > now.timestamp()
    assert not MatchPending.objects.filter(device_id=late.id).exists()
    assert observed_ways(late.id)
    with override_settings(MAPMATCH_SETTLE=False):
        match_all()
    assert not MatchPending.objects.exists()
    assert observed_ways(fresh.id)
