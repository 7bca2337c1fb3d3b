"""Geometry, roads, routing and geocoding."""

from __future__ import annotations

from django.apps import AppConfig


class GeoConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "geo"
    verbose_name = "geo"

    def ready(self) -> None:
        from geo import metrics  # noqa: F401 - registers this layer's SLO metrics
        from geo.enrich import ADDRESS_CHANGES
        from state.dashboards.sync import register_change_source

        # An address geocoded after a live answer is news for that answer's validators and deltas.
        register_change_source(ADDRESS_CHANGES)
