"""Replay reproduces the state exactly, and the order events arrive in changes nothing."""

from __future__ import annotations

import random
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from state.models import ProjectorCheckpoint
from state.tests.drives import (
    T0,
    Ev,
    digest,
    drive,
    end_of,
    feed,
    fix,
    insert,
    live_of,
    project,
    replay_all,
    stay,
    stops_of,
    trips_of,
)

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def scenario(d: int) -> list[Ev]:
    """Two days of one vehicle: traffic, a light with the engine off, parking, a jump, a gap, an idle, a report,
    a late buffered burst (gpsMode=1, hours late), readings."""
    ev = drive(d, T0, seconds=900)
    ev += stay(d, T0 + 900 * S, seconds=90, at=end_of(ev), ignition=False)  # a light, engine off
    ev += drive(d, T0 + 1000 * S, seconds=600, origin=end_of(ev))[1:]
    ev += stay(d, T0 + 1600 * S, seconds=1800, at=end_of(ev))  # parked
    ev += drive(d, T0 + 3400 * S, seconds=1200, origin=end_of(ev), north=False)[1:]
    ev[-60].payload["lat"] += 0.4  # a GPS jump
    ev += stay(d, T0 + 4600 * S, seconds=900, at=end_of(ev), ignition=True)  # idling
    ev += drive(d, T0 + 9000 * S, seconds=600, origin=end_of(ev))  # after a 70-minute gap
    ev += drive(d, T0 + timedelta(days=2), seconds=900, origin=end_of(ev))  # two days later
    ev += stay(d, T0 + timedelta(days=2, seconds=900), seconds=600, at=end_of(ev))
    for e in ev:
        if T0 + 3500 * S <= e.at < T0 + 4200 * S:
            e.payload["retransmitted"] = True
            e.received_at = e.at + timedelta(hours=3)
    ev.append(fix(d, T0 + 505 * S, 0.0, 0.0, 0.0))
    ev.append(
        Ev(
            "trip_report",
            d,
            T0 + 3400 * S,
            {"start_time": (T0 + 3400 * S).isoformat(), "end_time": (T0 + 4600 * S).isoformat(), "distance": 12.0},
        )
    )
    ev.append(Ev("heartbeat", d, T0 + 5000 * S, {"power_level": 5, "ignition": True}))
    ev.append(Ev("alarm", d, T0 + 200 * S, {"code": "2", "normalised_name": "power_cut", "severity": "warning"}))
    return ev  # fmt: skip


def _normalised(d: int) -> tuple:
    return trips_of(d), trips_of(d, "jimi"), stops_of(d), live_of(d)[1]


def test_it_gives_identical_trips_distances_and_live_positions_in_any_arrival_order(make_device, account):
    reference = make_device().id
    feed(scenario(reference), account_id=account.id)
    expected = _normalised(reference)
    assert len(expected[0]) >= 4
    for seed in (1, 2, 3):
        d = make_device().id
        events = scenario(d)
        rng = random.Random(seed)
        rng.shuffle(events)
        # Late bursts arrive last, in arrival order, like a device emptying its buffer hours later.
        events.sort(key=lambda e: e.payload.get("retransmitted", False))
        while events:
            n = rng.randint(1, 60)
            feed(events[:n], account_id=account.id, batch_size=rng.randint(1, 200))
            events = events[n:]
        assert _normalised(d) == expected, f"seed {seed}"
    incremental = digest()
    replay_all()
    assert digest() == incremental


def test_it_rebuilds_the_same_state_after_truncating_live_positions(make_device, account):
    feed(scenario(make_device().id), account_id=account.id)
    before = digest()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE state_live_positions")
    assert digest() != before
    call_command("replay", "--projector", "positions", verbosity=0)
    assert digest() == before
    call_command("replay", verbosity=0)
    assert digest() == before


def test_it_prints_the_same_state_hash_after_a_full_rebuild(make_device, account):
    feed(scenario(make_device().id), account_id=account.id)
    before, after = StringIO(), StringIO()
    call_command("state_hash", stdout=before)
    call_command("replay", "--reparse", verbosity=0)  # an empty raw log: nothing to re-parse, all to replay
    call_command("state_hash", stdout=after)
    assert before.getvalue() == after.getvalue()
    lines = before.getvalue().splitlines()
    assert lines[-1].startswith("total")
    assert any(line.startswith("state_trips") and line.split()[1] != "0" for line in lines)


def test_it_replays_one_device_or_one_window_to_the_same_state(make_device, account):
    d = make_device(imei="861210600000001").id
    other = make_device().id
    feed(scenario(d) + scenario(other), account_id=account.id)
    before = digest()
    call_command("replay", "--device", "861210600000001", verbosity=0)
    assert digest() == before
    call_command("replay", "--since", (T0 + 1200 * S).isoformat(), "--until", (T0 + 5000 * S).isoformat(), verbosity=0)
    assert digest() == before


def test_it_applies_a_changed_threshold_by_replay(make_device, account):
    from slo.models import SloTarget
    from slo.thresholds import thresholds_forget

    d = make_device().id
    feed(scenario(d), account_id=account.id)
    trips = len(trips_of(d))
    SloTarget.objects.filter(metric="parking_min_duration_s").update(threshold=60)
    thresholds_forget()
    try:
        call_command("replay", verbosity=0)
        assert len(trips_of(d)) > trips  # the light (90 s, engine off) now ends a trip
    finally:
        thresholds_forget()


def test_it_survives_a_poisoned_event_and_projects_the_rest(make_device, account, settings):
    settings.PROJECT_RETRY_BACKOFF_S = 0
    d = make_device().id
    good = drive(d, T0, seconds=120)
    poison = fix(d, T0 + 130 * S, -1.29, 36.82, 10.0)
    poison.payload["lat"] = "not a number"
    insert([*good, poison], account_id=account.id)
    for _ in range(len(good) + 3):
        project()
    assert live_of(d)[1] == good[-1].at
    checkpoint = ProjectorCheckpoint.objects.get(projector="positions")
    assert "invalid input syntax" in checkpoint.last_error
    assert checkpoint.failures >= 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT kind, attempts > 0 FROM state_projection_pending")
        assert cursor.fetchall() == [("position_fix", True)]  # kept for a retry, after a back-off


def test_it_empties_the_projections_of_events_that_are_gone(make_device, account):
    d = make_device(imei="861210600000002").id
    feed(scenario(d), account_id=account.id)
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # drop the events behind the projector's back
        cursor.execute("DELETE FROM events_parsed WHERE device_id = %s", [d])
        cursor.execute("SET session_replication_role = DEFAULT")
    call_command("replay", "--device", "861210600000002", verbosity=0)
    assert (trips_of(d), live_of(d)) == ([], None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM state_position_history WHERE device_id = %s", [d])
        assert cursor.fetchone() == (0,)


def _reported() -> list[tuple]:
    """Every Jimi-reported trip and stop, with its row id and the derived row it is linked to."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'trip', id, device_id, started_at, matched_started_at FROM state_trips WHERE source = 'jimi'"
            " UNION ALL SELECT 'stop', id, device_id, started_at, matched_started_at FROM state_parking_events"
            " WHERE source = 'jimi' ORDER BY 1, 3, 4"
        )
        return cursor.fetchall()


def _drive_park_and_reports(d: int) -> list[Ev]:
    """A 15-minute drive, then 15 minutes parked, and Jimi's own report of each."""
    events = drive(d, T0, seconds=900)
    events += stay(d, T0 + 900 * S, seconds=900, at=end_of(events))
    trip = {"start_time": (T0 + 10 * S).isoformat(), "end_time": (T0 + 880 * S).isoformat(), "distance": 8.9}
    park = {"mode": "parking", "end_time": (T0 + 1800 * S).isoformat(), "lat": end_of(events)[0]}
    park["lng"] = end_of(events)[1]
    return [*events, Ev("trip_report", d, T0 + 10 * S, trip), Ev("parking_report", d, T0 + 910 * S, park)]


def test_it_leaves_every_report_linked_when_a_replayed_window_holds_no_fixes(make_device, account):
    devices = [make_device().id, make_device().id]
    feed(_drive_park_and_reports(devices[0]) + _drive_park_and_reports(devices[1]), account_id=account.id)
    before, state = _reported(), digest()
    assert len(before) == 4
    assert all(row[4] is not None for row in before)  # each report linked to the derived trip / stop
    since, until = T0 - timedelta(days=10), T0 - timedelta(days=9)  # nothing happened then
    call_command("replay", "--since", since.isoformat(), "--until", until.isoformat(), verbosity=0)
    assert _reported() == before
    assert digest() == state


def test_it_rebuilds_no_device_s_reports_for_an_empty_list_of_devices(make_device, account):
    from state.projectors.trips import reports_rebuild

    d = make_device().id
    feed(_drive_park_and_reports(d), account_id=account.id)
    before = _reported()
    reports_rebuild(device_ids=[])
    assert _reported() == before
    reports_rebuild(device_ids=[d])  # a device named: its reports are rewritten (and left for the caller to link)
    assert [(r[0], r[2], r[3], r[4]) for r in _reported()] == [(r[0], r[2], r[3], None) for r in before]
