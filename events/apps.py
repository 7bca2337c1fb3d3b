"""The immutable log: gateway, raw and parsed events, parsers."""

from __future__ import annotations

from django.apps import AppConfig


class EventsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "events"
    verbose_name = "events"

    def ready(self) -> None:
        from events import metrics  # noqa: F401 - registers this layer's SLO metrics
