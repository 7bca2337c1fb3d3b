"""The SLO metric whose data the geo layer owns: routing latency."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

from slo.registry import Measurement, register_metric


@register_metric("route_p95_ms")
def route_p95_ms(*, now: datetime, window: timedelta) -> Measurement:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), count(*) FROM geo_route_requests"
            " WHERE requested_at > %s AND requested_at <= %s",
            [now - window, now],
        )
        p95, count = cursor.fetchone()
    return Measurement(value=None if p95 is None else round(float(p95), 1), sample_size=count)
