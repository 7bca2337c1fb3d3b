"""Geometry, roads, routing and geocoding."""

from __future__ import annotations

from django.apps import AppConfig


class GeoConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "geo"
    verbose_name = "geo"

    def ready(self) -> None:
        from geo import metrics  # noqa: F401 - registers this layer's SLO metrics
