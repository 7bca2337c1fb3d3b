"""Derived projections, rebuildable from the event log."""

from __future__ import annotations

from django.apps import AppConfig


class StateConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "state"
    verbose_name = "state"

    def ready(self) -> None:
        from state import metrics  # noqa: F401 - registers this layer's SLO metrics
