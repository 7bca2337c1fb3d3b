"""Quality verdicts: every fix is kept with a verdict and a reason; only ok fixes feed live positions and trips."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from state.tests.drives import T0, Ev, drive, feed, fix, live_of, trips_of

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def _verdicts(device_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT occurred_at, verdict, reason FROM state_position_history WHERE device_id = %s"
            " ORDER BY occurred_at, parsed_id",
            [device_id],
        )
        return cursor.fetchall()


@pytest.mark.parametrize(
    ("lat", "lng", "extra", "verdict"),
    [
        (0.0, 0.0, {}, "zero"),
        (95.0, 36.8, {}, "invalid"),
        (-1.29, 200.0, {}, "invalid"),
        (-1.29, 36.82, {"position_type": "lbs"}, "approximate"),
        (-1.29, 36.82, {"position_type": "wifi"}, "approximate"),
    ],
    ids=["zero", "lat-out-of-range", "lng-out-of-range", "lbs", "wifi"],
)
def test_it_gives_a_bad_fix_a_verdict_and_keeps_it(make_device, account, lat, lng, extra, verdict):
    d = make_device().id
    good = drive(d, T0, seconds=60)
    bad = fix(d, T0 + 65 * S, lat, lng, 30.0, **extra)
    feed([*good, bad], account_id=account.id)
    rows = _verdicts(d)
    assert len(rows) == len(good) + 1
    assert rows[-1][1:] != ("ok", "")
    assert rows[-1][1] == verdict
    assert live_of(d)[1] == T0 + 60 * S


def test_it_marks_a_fix_dated_in_the_future(make_device, account):
    d = make_device().id
    feed([fix(d, T0 + timedelta(hours=2), -1.29, 36.82, 0.0, received_at=T0)], account_id=account.id)
    [(_, verdict, reason)] = _verdicts(d)
    assert verdict == "future"
    assert "7200 s" in reason
    assert live_of(d) is None


def test_it_marks_the_later_of_two_fixes_at_the_same_device_time_a_duplicate(make_device, account):
    d = make_device().id
    first = fix(d, T0, -1.29, 36.82, 0.0)
    second = fix(d, T0, -1.2901, 36.82, 0.0)
    second.key = "another dedup key"
    ids = feed([first, second], account_id=account.id)
    assert [v for _, v, _ in _verdicts(d)] == ["ok", "duplicate"]
    assert live_of(d)[0] == ids[0]


def test_it_judges_a_jump_against_both_neighbours(make_device, account):
    d = make_device().id
    events = drive(d, T0, seconds=300)
    events[10].payload["lat"] += 0.3
    feed(events, account_id=account.id)
    verdicts = [v for _, v, _ in _verdicts(d)]
    assert verdicts[10] == "jump"
    assert verdicts.count("jump") == 1  # its neighbours, each one far from it, are not blamed


def test_it_does_not_call_a_real_relocation_a_jump(make_device, account):
    """A device moved to another vehicle 50 km away: the new fixes agree with each other, so they are ok."""
    d = make_device().id
    here = drive(d, T0, seconds=100)
    there = drive(d, T0 + 110 * S, seconds=100, origin=(-1.0, 37.2))
    feed(here + there, account_id=account.id)
    assert {v for _, v, _ in _verdicts(d)} == {"ok"}


def test_it_rejudges_the_last_fix_when_its_next_neighbour_arrives(make_device, account):
    d = make_device().id
    events = drive(d, T0, seconds=200)
    far = drive(d, T0 + 210 * S, seconds=20, origin=(-0.8, 36.82))
    feed([*events, far[0]], account_id=account.id)
    assert _verdicts(d)[-1][1] == "jump"  # alone out there, it disagrees with the two fixes before it
    feed(far[1:], account_id=account.id)
    assert {v for _, v, _ in _verdicts(d)} == {"ok"}
    assert live_of(d)[1] == far[-1].at


def test_it_follows_a_reparse_that_rewrites_or_drops_an_event(make_device, account):
    d = make_device().id
    events = drive(d, T0, seconds=900)
    ids = feed(events, account_id=account.id)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # The new parser puts fix 40 at (0, 0) and no longer produces the last 30 fixes.
        cursor.execute(
            'UPDATE events_parsed SET payload = payload || \'{"lat": 0, "lng": 0}\' WHERE id = %s', [ids[40]]
        )
        cursor.execute("DELETE FROM events_parsed WHERE id = ANY(%s)", [ids[-30:]])
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    feed([], account_id=account.id)
    verdicts = _verdicts(d)
    assert len(verdicts) == len(events) - 30
    assert verdicts[40][1] == "zero"
    assert live_of(d)[0] == ids[-31]
    assert trips_of(d)[0]["ended_at"] == events[-31].at


def test_it_projects_readings_by_parsed_id_and_summarises_the_device(make_device, account):
    d = make_device(plate="KCA 123A")
    ids = feed(
        [
            Ev("heartbeat", d.id, T0, {"power_level": 5, "gsm_signal": 3, "ignition": False}),
            Ev("heartbeat", d.id, T0 + 60 * S, {"power_level": 4, "gsm_signal": 4, "ignition": True}),
            Ev("alarm", d.id, T0, {"code": "1", "name": "SOS", "normalised_name": "sos", "severity": "critical",
                                   "lat": -1.29, "lng": 36.82, "cleared": False}),
            Ev("device_meta", d.id, T0, {"meta_type": "iccid", "value": "8925402"}),
            Ev("fuel", None, T0, {"source": "whatsapp", "plate": "kca-123a", "litres": 40.5, "external_id": "wa-1"}),
            Ev("obd", d.id, T0, {"record": "data", "rpm": 900, "lat": 0, "lng": 0}),
            Ev("temperature", d.id, T0, {"temperature_c": 4.5}),
            Ev("lbs", d.id, T0, {"mcc": 639, "mnc": 2, "cells": [{"lac": 1, "cell_id": 2, "rssi": -70}]}),
            Ev("device_event", d.id, T0, {"event": "login", "timezone": "GMT+03:00"}),
        ],
        account_id=account.id,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT vehicle_id, litres FROM state_fuel_readings")
        assert cursor.fetchall() == [(d.vehicle_id, 40.5)]
        cursor.execute("SELECT point IS NULL FROM state_obd_readings")
        assert cursor.fetchone() == (True,)  # 0,0 is no place
        cursor.execute(
            "SELECT last_heartbeat_at, power_level, ignition, iccid, heartbeats, alarms, readings FROM state_devices"
        )
        assert cursor.fetchall() == [(T0 + 60 * S, 4, True, "8925402", 2, 1, 3)]
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("DELETE FROM events_parsed WHERE id = %s", [ids[1]])
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    feed([], account_id=account.id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_heartbeat_at, heartbeats FROM state_devices")
        assert cursor.fetchall() == [(T0, 1)]
