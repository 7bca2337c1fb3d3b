"""`manage.py state_hash` digests what the state says, not how this database numbered it: the same pushes, received in
another order and at other times by a database whose devices, vehicles and parsed events got other ids, hash the
same; a history with one fix moved does not."""

from __future__ import annotations

import random
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from devtools.testing.history import TRACKERS, fleet_pushes, pipeline_run, pushes_write, trackers_register
from domain.models import Device

pytestmark = pytest.mark.django_db


def state_hash() -> str:
    out = StringIO()
    call_command("state_hash", stdout=out)
    return out.getvalue()


def numbering() -> tuple[dict[str, int], set[int]]:
    """Which id each IMEI got, and the ids of the parsed events."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM events_parsed")
        parsed = {row[0] for row in cursor.fetchall()}
    return dict(Device.objects.values_list("imei", "id")), parsed


def wipe() -> None:
    """As if a fresh database: no log, no state, no devices or vehicles. Sequences go on, so ids will differ."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE events_raw, events_raw_pending, events_parsed, state_projection_pending, geo_match_pending,"
            " state_position_history, state_live_positions, state_trips, state_parking_events, state_alarms,"
            " state_heartbeats, state_device_events, state_obd_readings, state_fuel_readings,"
            " state_temperature_readings, state_lbs_readings, state_odometer_readings, state_devices,"
            " events_push_sources, domain_devices, domain_vehicles CASCADE"
        )


def feed(pushes, account, *, chunks: int, delay: timedelta) -> None:
    size = -(-len(pushes) // chunks)
    for i in range(0, len(pushes), size):
        pushes_write(pushes[i : i + size], account, delay=delay)
        pipeline_run()


def test_it_hashes_the_same_history_alike_whatever_the_ids_and_the_arrival(account):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the commit-time work-list triggers, inside the test
    trackers_register(account)
    feed(fleet_pushes(), account, chunks=1, delay=timedelta(seconds=1))
    first = state_hash()
    first_ids, first_parsed = numbering()
    rows = {line.split()[0]: int(line.split()[1]) for line in first.splitlines()[:-1]}
    assert rows["state_trips"] >= 3
    assert (rows["state_alarms"], rows["state_fuel_readings"], rows["state_odometer_readings"]) == (3, 1, 0)
    assert len(first_ids) == 3  # the unregistered tracker was provisioned by the parser

    wipe()
    trackers_register(account, list(reversed(TRACKERS)))
    shuffled = fleet_pushes()
    random.Random(7).shuffle(shuffled)
    feed(shuffled, account, chunks=4, delay=timedelta(minutes=3))
    second_ids, second_parsed = numbering()
    assert set(second_ids) == set(first_ids)
    assert all(second_ids[imei] != first_ids[imei] for imei in first_ids)
    assert not second_parsed & first_parsed
    assert state_hash() == first

    wipe()
    trackers_register(account)
    feed(fleet_pushes(changed=True), account, chunks=1, delay=timedelta(seconds=1))
    changed = state_hash()
    assert changed != first
    assert changed.splitlines()[-1] != first.splitlines()[-1]
