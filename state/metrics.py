"""The SLO metrics whose data the state layer owns: fix freshness and trip lag."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

from domain.models import Lifecycle
from slo.registry import Measurement, register_metric
from slo.thresholds import threshold


@register_metric("fix_freshness_pct_60s")
def fix_freshness_pct(*, now: datetime, window: timedelta) -> Measurement:
    """Share of active devices whose latest ok fix is at most fresh_fix_max_age_s old, now."""
    fresh_s = threshold("fresh_fix_max_age_s")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE l.occurred_at >= %s - make_interval(secs => %s)"
            "                                   AND l.occurred_at <= %s)"
            "  FROM domain_devices d LEFT JOIN state_live_positions l ON l.device_id = d.id"
            " WHERE d.lifecycle = %s",
            [now, fresh_s, now, Lifecycle.ACTIVE],
        )
        active, fresh = cursor.fetchone()
    if not active:
        return Measurement(value=None)
    return Measurement(
        value=round(100.0 * fresh / active, 2), sample_size=active, detail={"fresh": fresh, "behind": active - fresh}
    )


@register_metric("trip_lag_p95_sec")
def trip_lag_p95(*, now: datetime, window: timedelta) -> Measurement:
    """p95 of trip end (device time) → the closed trip's row in state_trips, over trips that ended in the window."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM recorded_at - ended_at)),"
            "       count(*)"
            "  FROM state_trips WHERE source = 'derived' AND closed AND ended_at > %s AND ended_at <= %s",
            [now - window, now],
        )
        p95, count = cursor.fetchone()
    return Measurement(value=None if p95 is None else round(max(0.0, float(p95)), 1), sample_size=count)
