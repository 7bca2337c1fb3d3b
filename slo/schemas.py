"""Contracts of the slo layer's API."""

from __future__ import annotations

from datetime import datetime

from ninja import Schema


class SloMetricOut(Schema):
    metric: str
    description: str
    comparison: str
    threshold: float
    unit: str
    window_s: int
    business_hours_only: bool
    value: float | None
    measured_at: datetime | None
    state: str  # met | breached | no_data | not_measured
    since: datetime | None
    burn_rate: float | None


class SloStatusOut(Schema):
    generated_at: datetime
    ok: bool
    breached: list[str]
    metrics: list[SloMetricOut]
