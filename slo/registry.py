"""Who measures what. slo knows no other app: the app that owns a metric's data registers its function here
(in its AppConfig.ready), and the minute task calls every registered function for the SLO targets.

    @register_metric("parser_lag_p95_sec")
    def parser_lag(*, now: datetime, window: timedelta) -> Measurement: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Measurement:
    value: float | None  # None: nothing to measure in the window (no data is not a breach)
    sample_size: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


MetricFunction = Callable[..., Measurement]

_metrics: dict[str, MetricFunction] = {}


def register_metric(metric: str) -> Callable[[MetricFunction], MetricFunction]:
    def register(function: MetricFunction) -> MetricFunction:
        _metrics[metric] = function
        return function

    return register


def metric_function(metric: str) -> MetricFunction | None:
    return _metrics.get(metric)


def registered_metrics() -> list[str]:
    return sorted(_metrics)


def measure(metric: str, *, now: datetime, window: timedelta) -> Measurement | None:
    function = _metrics.get(metric)
    return None if function is None else function(now=now, window=window)
