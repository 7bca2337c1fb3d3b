"""Reads of the slo layer: the current status of every SLO, the block every dashboard payload carries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from slo.models import Comparison, SloMeasurement, SloTarget, TargetKind


def _since(metric: str, met: bool | None, latest_at: datetime) -> datetime:
    """When the current state began: the first measurement after the last one in another state."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(measured_at) FROM slo_measurements WHERE metric = %s AND measured_at > coalesce("
            " (SELECT max(measured_at) FROM slo_measurements WHERE metric = %s AND met IS DISTINCT FROM %s),"
            " '-infinity')",
            [metric, metric, met],
        )
        return cursor.fetchone()[0] or latest_at


def _burn_rate(target: SloTarget, now: datetime) -> float | None:
    """How fast the window's error budget burns: 1.0 spends exactly the budget over the window.

    A percentage objective ("≥ 95 % fresh") allows (100 - target) % bad; its burn is the window's average
    shortfall over that allowance. Any other objective allows SLO_ERROR_BUDGET_FRACTION of its minutes to be
    breached; its burn is the breached share of the window's minutes over that allowance.
    """
    window = target.window or settings.SLO_DEFAULT_WINDOW
    rows = SloMeasurement.objects.filter(
        metric=target.metric, measured_at__gt=now - window, measured_at__lte=now, met__isnull=False
    ).values_list("value", "met")
    rows = list(rows)
    if not rows:
        return None
    if target.unit == "%" and target.comparison == Comparison.GTE and target.threshold < 100:
        shortfall = sum(max(0.0, 100.0 - value) for value, _ in rows) / len(rows)
        return round(shortfall / (100.0 - target.threshold), 3)
    breached = sum(1 for _, met in rows if not met)
    return round(breached / len(rows) / settings.SLO_ERROR_BUDGET_FRACTION, 3)


def _metric_status(target: SloTarget, now: datetime) -> dict[str, Any]:
    latest = SloMeasurement.objects.filter(metric=target.metric, measured_at__lte=now).order_by("-measured_at").first()
    status: dict[str, Any] = {
        "metric": target.metric,
        "description": target.description,
        "comparison": target.comparison,
        "threshold": target.threshold,
        "unit": target.unit,
        "window_s": int((target.window or settings.SLO_DEFAULT_WINDOW).total_seconds()),
        "business_hours_only": target.business_hours_only,
        "value": None,
        "measured_at": None,
        "state": "not_measured",
        "since": None,
        "burn_rate": None,
    }
    if latest is None:
        return status
    # The current threshold decides (an UPDATE of slo_targets flips the status at once, not next minute).
    met = None if latest.value is None or latest.met is None else target.is_met(latest.value)
    status.update(
        value=latest.value,
        measured_at=latest.measured_at,
        state={True: "met", False: "breached", None: "no_data"}[met],
        since=_since(target.metric, latest.met, latest.measured_at),
        burn_rate=_burn_rate(target, now),
    )
    return status


def slo_status(*, now: datetime | None = None) -> dict[str, Any]:
    """{generated_at, ok, breached[], metrics[]}: what /api/slo/status returns and dashboards carry."""
    now = now or timezone.now()
    metrics = [_metric_status(t, now) for t in SloTarget.objects.filter(kind=TargetKind.SLO).order_by("metric")]
    breached = [m["metric"] for m in metrics if m["state"] == "breached"]
    return {"generated_at": now, "ok": not breached, "breached": breached, "metrics": metrics}
