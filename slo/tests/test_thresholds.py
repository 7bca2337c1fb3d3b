"""Thresholds are rows: one UPDATE changes what the code reads, without a restart."""

from __future__ import annotations

import pytest
from django.db import connection

from slo.models import SloTarget
from slo.thresholds import UnknownThreshold, threshold, thresholds_forget


def test_it_seeds_the_five_slos_and_the_trip_parameters(db):
    slos = set(SloTarget.objects.filter(kind="slo").values_list("metric", flat=True))
    assert slos == {
        "fix_freshness_pct_60s", "trip_lag_p95_sec", "route_p95_ms", "parser_lag_p95_sec", "contract_drift_days",
    }  # fmt: skip
    assert threshold("trip_min_distance_m") == 200
    assert threshold("trip_stop_gap_s") == 3600


def test_it_applies_an_update_within_the_cache_period(db, settings):
    settings.SLO_TARGET_CACHE_S = 0
    assert threshold("moving_speed_kmh") == 5
    with connection.cursor() as cursor:
        cursor.execute("UPDATE slo_targets SET threshold = 8 WHERE metric = 'moving_speed_kmh'")
    assert threshold("moving_speed_kmh") == 8


def test_it_names_a_missing_threshold(db):
    thresholds_forget()
    with pytest.raises(UnknownThreshold, match="no_such_metric"):
        threshold("no_such_metric")


def test_it_says_whether_a_value_meets_its_target(db):
    freshness = SloTarget.objects.get(metric="fix_freshness_pct_60s")
    assert freshness.is_met(96.0)
    assert not freshness.is_met(94.9)
    assert SloTarget.objects.get(metric="parser_lag_p95_sec").is_met(12.0)
