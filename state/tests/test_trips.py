"""Trips and parking folded from constructed drives (Traccar's defaults: 200 m, 180 s, gap 3600 s, park 300 s)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from state.tests.drives import T0, drive, end_of, feed, fix, live_of, stay, stops_of, trips_of

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def _chain(device_id, *legs):
    """Legs ("drive"|"stop", seconds, kwargs) one after another, each starting where the last ended."""
    events, at = [], T0
    here: Any = None  # where the last leg ended, (lat, lng); passed on only once there is one
    for kind, seconds, kw in legs:
        if kind == "drive":
            leg = drive(device_id, at, seconds=seconds, **({"origin": here} if here else {}), **kw)
            leg = leg[1:] if here else leg
        else:
            leg = stay(device_id, at, seconds=seconds, **({"at": here} if here else {}), **kw)
        events += leg
        here = end_of(events)
        at = max(e.at for e in events)
    return events


def test_it_keeps_stop_and_go_traffic_in_one_trip_and_counts_the_idling(make_device, account):
    d = make_device().id
    feed(
        _chain(
            d,
            ("drive", 120, {}),
            ("stop", 60, {"ignition": True}),
            ("drive", 120, {}),
            ("stop", 90, {"ignition": True}),
            ("drive", 120, {}),
            ("stop", 900, {"ignition": False}),
        ),
        account_id=account.id,
    )
    [trip] = trips_of(d)
    assert trip["closed"]
    assert 100 <= trip["idle_s"] <= 150  # the two stops (60 s + 90 s), measured between fixes
    assert 3500 < trip["distance_m"] < 3700  # 360 s at 36 km/h
    [parking] = stops_of(d)
    assert parking["mode"] == "parking"
    assert parking["started_at"] == trip["ended_at"]


def test_it_does_not_end_a_trip_for_ignition_off_at_a_light(make_device, account):
    d = make_device().id
    feed(
        _chain(
            d,
            ("drive", 600, {}),
            ("stop", 120, {"ignition": False}),
            ("drive", 600, {}),
            ("stop", 1200, {"ignition": False}),
        ),
        account_id=account.id,
    )
    assert len(trips_of(d)) == 1


def test_it_ends_a_trip_at_real_parking(make_device, account):
    d = make_device().id
    feed(_chain(d, ("drive", 600, {}), ("stop", 900, {"ignition": False}), ("drive", 600, {})), account_id=account.id)
    first, second = trips_of(d)
    assert first["closed"]
    assert not second["closed"]
    [parking] = stops_of(d)
    assert (parking["mode"], parking["started_at"]) == ("parking", first["ended_at"])
    assert parking["duration_s"] >= 840  # from the first stopped fix to the departure fix


def test_it_calls_a_stop_with_the_engine_running_idling(make_device, account):
    d = make_device().id
    feed(_chain(d, ("drive", 600, {}), ("stop", 900, {"ignition": True}), ("drive", 600, {})), account_id=account.id)
    assert len(trips_of(d)) == 2
    assert [s["mode"] for s in stops_of(d)] == ["idling"]


def test_it_closes_a_trip_at_its_last_fix_before_a_data_gap(make_device, account):
    d = make_device().id
    before = drive(d, T0, seconds=600)
    after = drive(d, T0 + timedelta(hours=2, seconds=600), seconds=600, origin=end_of(before))
    feed(before + after, account_id=account.id)
    first, second = trips_of(d)
    assert first["ended_at"] == T0 + 600 * S
    assert first["closed"]
    assert second["started_at"] == T0 + timedelta(hours=2, seconds=600)


def test_it_does_not_let_a_gps_jump_add_distance(make_device, account):
    clean, jumpy = make_device().id, make_device().id
    feed(drive(clean, T0, seconds=900), account_id=account.id)
    events = drive(jumpy, T0, seconds=900)
    events[45].payload["lat"] += 0.5  # 55 km off for one fix
    feed(events, account_id=account.id)
    assert trips_of(jumpy)[0]["distance_m"] == trips_of(clean)[0]["distance_m"]


def test_it_ignores_a_bad_first_fix_for_distance(make_device, account):
    clean, bad_start = make_device().id, make_device().id
    feed(drive(clean, T0, seconds=900), account_id=account.id)
    events = drive(bad_start, T0, seconds=900)
    events[0].payload["lat"] += 1.0
    feed(events, account_id=account.id)
    [trip] = trips_of(bad_start)
    assert abs(trip["distance_m"] - trips_of(clean)[0]["distance_m"]) < 120  # one 10 s segment less, not 111 km


def test_it_refolds_a_buffered_burst_arriving_hours_late(make_device, account):
    in_order, late = make_device().id, make_device().id
    legs: tuple[tuple[str, int, dict[str, Any]], ...] = (
        ("drive", 900, {}),
        ("stop", 900, {"ignition": False}),
        ("drive", 900, {}),
        ("stop", 600, {}),
    )
    feed(_chain(in_order, *legs), account_id=account.id)
    events = _chain(late, *legs)
    burst = [e for e in events if T0 + 300 * S <= e.at < T0 + 1500 * S]
    for e in burst:
        e.payload["retransmitted"] = True
        e.received_at = e.at + timedelta(hours=3)
    live_first = [e for e in events if e not in burst]
    feed(live_first, account_id=account.id)
    live_before = live_of(late)[1]
    feed(burst, account_id=account.id)
    assert live_of(late)[1] == live_before  # the late fixes never move the live position backwards
    strip = lambda rows: [{k: v for k, v in r.items() if k != "matched"} for r in rows]  # noqa: E731
    assert strip(trips_of(late)) == strip(trips_of(in_order))
    assert stops_of(late) == stops_of(in_order)


def test_it_survives_two_days_of_silence(make_device, account):
    d = make_device().id
    monday = _chain(d, ("drive", 900, {}), ("stop", 600, {"ignition": False}))
    wednesday = drive(d, T0 + timedelta(days=2), seconds=900, origin=end_of(monday))
    wednesday += stay(d, T0 + timedelta(days=2, seconds=900), seconds=600, at=end_of(wednesday))
    feed(monday, account_id=account.id)
    feed(wednesday, account_id=account.id)
    first, second = trips_of(d)
    assert first["closed"]
    assert second["closed"]
    assert first["ended_at"] < T0 + timedelta(hours=1)
    assert second["started_at"] >= T0 + timedelta(days=2)
    silence = [s for s in stops_of(d) if s["duration_s"] > 86400]
    assert len(silence) == 1
    assert silence[0]["closed"]


def test_it_drops_movements_shorter_than_the_minimum_trip(make_device, account):
    d = make_device().id
    feed(_chain(d, ("stop", 600, {}), ("drive", 60, {"speed": 10.0}), ("stop", 600, {})), account_id=account.id)
    assert trips_of(d) == []
    assert len(stops_of(d)) == 1


def test_it_links_a_jimi_trip_report_to_the_derived_trip_and_counts_it_once(make_device, account):
    from state.tests.drives import Ev

    d = make_device().id
    events = _chain(d, ("drive", 900, {}), ("stop", 900, {"ignition": False}))
    report = Ev(
        "trip_report",
        d,
        T0 + 20 * S,
        {
            "start_time": (T0 + 20 * S).isoformat(),
            "end_time": (T0 + 880 * S).isoformat(),
            "distance": 8.6,
            "max_speed_kmh": 40,
        },
    )
    feed([*events, report], account_id=account.id)
    [derived] = trips_of(d)
    [reported] = trips_of(d, "jimi")
    assert reported["matched"] == derived["started_at"]
    from state.selectors import trip_totals

    assert trip_totals(device_id=d)["trips"] == 1


def test_it_moves_the_live_position_only_forward_in_device_time(make_device, account):
    d = make_device().id
    ids = feed(drive(d, T0, seconds=300), account_id=account.id)
    feed([fix(d, T0 - timedelta(hours=5), -1.3, 36.8, 20.0, retransmitted=True)], account_id=account.id)
    assert live_of(d) == (ids[-1], T0 + 300 * S)


def test_it_splits_a_drive_that_never_stops_and_refolds_it_piece_by_piece(make_device, account):
    from slo.models import SloTarget
    from slo.thresholds import thresholds_forget
    from state.tests.drives import digest, replay_all

    SloTarget.objects.filter(metric="trip_max_duration_s").update(threshold=1800)
    thresholds_forget()
    d = make_device().id
    events = drive(d, T0, seconds=3 * 3600 + 600, every=30)
    for k in range(0, len(events), 7):  # live, a few fixes at a time
        feed(events[k : k + 7], account_id=account.id)
    trips = trips_of(d)
    assert len(trips) == 7
    assert [t["closed"] for t in trips] == [True] * 6 + [False]
    assert all(trips[k]["ended_at"] == trips[k + 1]["started_at"] for k in range(6))
    incremental = digest()
    replay_all()
    assert digest() == incremental


def test_it_keeps_when_a_trip_was_first_recorded_while_later_fixes_refold_it(make_device, account):
    from state.models import Trip

    d = make_device().id
    first = _chain(d, ("drive", 600, {}), ("stop", 900, {"ignition": False}))
    feed(first, account_id=account.id)
    recorded = Trip.objects.get(device_id=d).recorded_at
    assert recorded is not None
    later = drive(d, T0 + 1600 * S, seconds=600, origin=end_of(first))
    feed(later, account_id=account.id)  # within the re-fold margin: the first trip is rewritten, unchanged
    assert Trip.objects.filter(device_id=d).count() == 2
    assert Trip.objects.get(device_id=d, started_at=T0).recorded_at == recorded
