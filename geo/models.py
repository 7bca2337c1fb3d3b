"""Geometry, roads, routing and geocoding. For now: the routing request log the route-latency SLO reads."""

from __future__ import annotations

from django.db import models


class RouteRequest(models.Model):
    """One call of the routing endpoint: when, how long, whether a route was found (the route_p95_ms SLO)."""

    requested_at = models.DateTimeField()
    duration_ms = models.FloatField()
    ok = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "geo_route_requests"
        indexes = [models.Index(fields=["requested_at"], name="geo_route_requests_time")]

    def __str__(self) -> str:
        return f"route {self.duration_ms:.0f} ms @ {self.requested_at:%Y-%m-%d %H:%M:%S}"
