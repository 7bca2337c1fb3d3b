"""Freshness and trip lag measured on constructed state with a known answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.gis.geos import Point
from django.db import connection

from domain.models import Device, Lifecycle
from slo.registry import measure
from state.models import PositionHistory
from state.projectors.history import history_partitions_cover

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=1)


FIVE_MIN = timedelta(minutes=5)
_ids = iter(range(1, 10**6))


def _fix(device, *, age_s: float, late_s: float = 0, verdict: str = "ok") -> None:
    at = NOW - timedelta(seconds=age_s)
    PositionHistory.objects.create(parsed_id=next(_ids), device_id=device.id, occurred_at=at,
                                   received_at=at + timedelta(seconds=late_s), lat=-1.3, lng=36.8,
                                   point=Point(36.8, -1.3), verdict=verdict)  # fmt: skip


def test_it_measures_freshness_over_the_window_the_target_names(db, make_device):
    history_partitions_cover(lo=NOW - WINDOW, hi=NOW)
    steady, brief, late, _silent, jumpy, provisioned = (make_device() for _ in range(6))
    Device.objects.exclude(id=provisioned.id).update(lifecycle=Lifecycle.ACTIVE)
    for age in range(0, 400, 10):
        _fix(steady, age_s=age)  # fresh the whole window: 300 s
        _fix(provisioned, age_s=age)  # not expected to report: not in the population
    _fix(brief, age_s=120)  # fresh from 120 s ago for 60 s
    _fix(late, age_s=200, late_s=30)  # arrived 170 s ago, 30 s old already: fresh for 30 s
    _fix(jumpy, age_s=30, verdict="jump")  # not an ok fix; `_silent` never reported at all
    measured = measure("fix_freshness_pct_60s", now=NOW, window=FIVE_MIN)
    # (300 + 60 + 30) s of 5 devices x 300 s. An instant at NOW would have said 1 of 5, 20 %.
    assert (measured.value, measured.sample_size) == (26.0, 5)
    assert measured.detail == {"devices": 5, "fresh_at_some_point": 3, "window_s": 300.0}


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
