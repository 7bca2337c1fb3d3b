"""The project app: role entrypoints, role heartbeats, health, the API root."""

from __future__ import annotations

from django.apps import AppConfig


class FleetConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fleet"
    verbose_name = "Fleet Platform"

    def ready(self) -> None:
        # The push gateway (events) cannot import fleet: fleet hands it the push rate limit (fleet/ratelimit.py).
        from events import gateway
        from fleet import auth  # noqa: F401  (connects the login-failure counter to user_login_failed)
        from fleet.ratelimit import push_limiter

        gateway.push_rate_limit = push_limiter.check
