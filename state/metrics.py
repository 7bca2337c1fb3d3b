"""The SLO metrics whose data the state layer owns: fix freshness and trip lag."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from slo.registry import Measurement, register_metric
from slo.thresholds import threshold
from state.selectors import FRESHNESS_POPULATION

# Per device, the time in the window during which it was fresh: each ok fix makes its device fresh from the moment
# it arrived (received_at, or its own time if that is later) until it is fresh_fix_max_age_s old; the union of those
# intervals (a multirange), cut to the window, summed over the population, divided by devices times the window.
_FRESH_TIME = """
WITH population AS (
    SELECT id FROM domain_devices WHERE lifecycle = ANY(%(population)s)
), fresh AS (
    SELECT h.device_id,
           range_agg(tstzrange(greatest(h.received_at, h.occurred_at), h.occurred_at + %(fresh)s, '[)'))
             * tstzmultirange(tstzrange(%(lo)s, %(hi)s, '[)')) AS spans
      FROM state_position_history h JOIN population p ON p.id = h.device_id
     WHERE h.verdict = 'ok' AND h.occurred_at > %(lo)s - %(fresh)s AND h.occurred_at <= %(hi)s
       AND greatest(h.received_at, h.occurred_at) < h.occurred_at + %(fresh)s
     GROUP BY h.device_id
)
SELECT (SELECT count(*) FROM population),
       coalesce((SELECT sum(extract(epoch FROM upper(r) - lower(r))) FROM fresh, unnest(fresh.spans) AS r), 0),
       (SELECT count(*) FROM fresh WHERE NOT isempty(spans))
"""


@register_metric("fix_freshness_pct_60s")
def fix_freshness_pct(*, now: datetime, window: timedelta) -> Measurement:
    """Share of the window's device-time during which the population's devices (state.selectors: the active ones)
    had a fresh fix, over the window the target names (not an instant)."""
    fresh = timedelta(seconds=threshold("fresh_fix_max_age_s"))
    # A timedelta is a parameter psycopg adapts (interval), which django-stubs' parameter type leaves out.
    params: dict[str, Any] = {"population": list(FRESHNESS_POPULATION), "fresh": fresh, "lo": now - window, "hi": now}
    with connection.cursor() as cursor:
        cursor.execute(_FRESH_TIME, params)
        devices, fresh_s, ever_fresh = cursor.fetchone()
    if not devices:
        return Measurement(value=None)
    share = 100.0 * float(fresh_s) / (devices * window.total_seconds())
    return Measurement(
        value=round(share, 2),
        sample_size=devices,
        detail={"devices": devices, "fresh_at_some_point": ever_fresh, "window_s": window.total_seconds()},
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
