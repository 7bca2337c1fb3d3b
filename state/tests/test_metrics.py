"""Freshness and trip lag measured on constructed state with a known answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.gis.geos import Point
from django.db import connection

from domain.models import Device, Lifecycle
from slo.registry import measure
from state.models import LivePosition

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=1)


def _live(device, age_s):
    at = NOW - timedelta(seconds=age_s)
    LivePosition.objects.create(device_id=device.id, parsed_id=device.id, occurred_at=at, received_at=at,
                                point=Point(36.8, -1.3), updated_at=at)  # fmt: skip


def test_it_measures_the_share_of_active_devices_with_a_fresh_fix(db, make_device):
    devices = [make_device() for _ in range(5)]
    Device.objects.filter(id__in=[d.id for d in devices[:4]]).update(lifecycle=Lifecycle.ACTIVE)
    for device, age in zip(devices, (10, 59, 61, 3600, 5), strict=True):
        _live(device, age)
    measured = measure("fix_freshness_pct_60s", now=NOW, window=WINDOW)
    # Four active devices (the fifth is only provisioned): two fresh, one just stale, one an hour old.
    assert (measured.value, measured.sample_size, measured.detail) == (50.0, 4, {"fresh": 2, "behind": 2})


def test_it_has_no_freshness_without_active_devices(db):
    assert measure("fix_freshness_pct_60s", now=NOW, window=WINDOW).value is None


def test_it_measures_trip_lag_from_end_to_row(db, make_device):
    device = make_device()
    with connection.cursor() as cursor:
        for minutes, lag_s in ((10, 30), (20, 60), (30, 600), (200, 5)):  # the last ended outside the window
            ended = NOW - timedelta(minutes=minutes)
            cursor.execute(
                "INSERT INTO state_trips (device_id, source, started_at, ended_at, closed, end_reason, recorded_at)"
                " VALUES (%s, 'derived', %s, %s, true, 'stop', %s)",
                [device.id, ended - timedelta(minutes=5), ended, ended + timedelta(seconds=lag_s)],
            )
    measured = measure("trip_lag_p95_sec", now=NOW, window=WINDOW)
    assert measured.sample_size == 3
    assert measured.value == pytest.approx(546.0)  # percentile_cont(0.95) of 30, 60, 600
