"""Reads of the slo layer: the current status of every SLO, the block every dashboard payload carries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from slo.models import Comparison, SloTarget, TargetKind

# One statement for every target: its latest measurement, when the current state began, and the window's
# measurements for the burn rate (each lateral is an index lookup on slo_measurements_metric_time).
_STATUS = """
SELECT t.metric, t.description, t.comparison, t.threshold, t.unit, t.window, t.business_hours_only,
       latest.value, latest.met, latest.measured_at,
       coalesce((SELECT min(m.measured_at) FROM slo_measurements m
                  WHERE m.metric = t.metric AND m.measured_at <= %(now)s
                    AND m.measured_at > coalesce((SELECT max(o.measured_at) FROM slo_measurements o
                                                   WHERE o.metric = t.metric AND o.measured_at <= %(now)s
                                                     AND o.met IS DISTINCT FROM latest.met), '-infinity')),
                latest.measured_at) AS since,
       win.measured, win.breached, win.shortfall
  FROM slo_targets t
  LEFT JOIN LATERAL (SELECT m.value, m.met, m.measured_at FROM slo_measurements m
                      WHERE m.metric = t.metric AND m.measured_at <= %(now)s
                      ORDER BY m.measured_at DESC LIMIT 1) latest ON true
  LEFT JOIN LATERAL (SELECT count(*) AS measured, count(*) FILTER (WHERE NOT m.met) AS breached,
                            avg(greatest(0, 100 - m.value)) AS shortfall
                       FROM slo_measurements m
                      WHERE m.metric = t.metric AND m.met IS NOT NULL AND m.measured_at <= %(now)s
                        AND m.measured_at > %(now)s - coalesce(t.window, %(default_window)s)) win ON true
 WHERE t.kind = %(kind)s
 ORDER BY t.metric
"""


def _burn_rate(target: SloTarget, measured: int, breached: int, shortfall: float | None) -> float | None:
    """How fast the window's error budget burns: 1.0 spends exactly the budget over the window.

    A percentage objective ("≥ 95 % fresh") allows (100 - target) % bad; its burn is the window's average
    shortfall over that allowance. Any other objective allows SLO_ERROR_BUDGET_FRACTION of its minutes to be
    breached; its burn is the breached share of the window's minutes over that allowance.
    """
    if not measured:
        return None
    if target.unit == "%" and target.comparison == Comparison.GTE and target.threshold < 100:
        return round(float(shortfall or 0) / (100.0 - target.threshold), 3)
    allowance: float = settings.SLO_ERROR_BUDGET_FRACTION
    return round(breached / measured / allowance, 3)


def _metric_status(row: tuple[Any, ...]) -> dict[str, Any]:
    metric, description, comparison, threshold, unit, window, business, value, met, measured_at, since = row[:11]
    measured, breached, shortfall = row[11:]
    target = SloTarget(metric=metric, comparison=comparison, threshold=threshold, unit=unit, window=window)
    # The current threshold decides (an UPDATE of slo_targets flips the status at once, not next minute).
    state = "not_measured" if measured_at is None else "no_data"
    if value is not None and met is not None:
        state = "met" if target.is_met(value) else "breached"
    return {
        "metric": metric,
        "description": description,
        "comparison": comparison,
        "threshold": threshold,
        "unit": unit,
        "window_s": int((window or settings.SLO_DEFAULT_WINDOW).total_seconds()),
        "business_hours_only": business,
        "value": value,
        "measured_at": measured_at,
        "state": state,
        "since": since,
        "burn_rate": _burn_rate(target, measured or 0, breached or 0, shortfall),
    }


def slo_status(*, now: datetime | None = None) -> dict[str, Any]:
    """{generated_at, ok, breached[], metrics[]}: what /api/slo/status returns and dashboards carry."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        # A timedelta is a parameter psycopg adapts (interval), which django-stubs' parameter type leaves out.
        params: dict[str, Any] = {"now": now, "default_window": settings.SLO_DEFAULT_WINDOW, "kind": TargetKind.SLO}
        cursor.execute(_STATUS, params)
        metrics = [_metric_status(row) for row in cursor.fetchall()]
    breached = [m["metric"] for m in metrics if m["state"] == "breached"]
    return {"generated_at": now, "ok": not breached, "breached": breached, "metrics": metrics}
