"""The project app: role entrypoints, role heartbeats, health, the API root."""

from __future__ import annotations

from django.apps import AppConfig


class FleetConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fleet"
    verbose_name = "Fleet Platform"

    def ready(self) -> None:
        from fleet import auth  # noqa: F401  (connects the login-failure counter to user_login_failed)
