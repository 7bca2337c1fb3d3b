"""The project app: role entrypoints, role heartbeats, health, the API root."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class FleetConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fleet"
    verbose_name = "Fleet Platform"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from domain.access import scope_check_register
        from fleet import auth  # (also connects the login-failure counter to user_login_failed)

        # The admins below the project ask for a scope the way the API does (domain.access).
        scope_check_register(lambda user, scope: scope in auth.user_scopes(user))
        post_migrate.connect(_groups_ensure, sender=self)


def _groups_ensure(sender: AppConfig, **kwargs: Any) -> None:
    """The groups are complete after every migrate (a model a migration added reaches its groups) and after a test
    flush, which empties every table. fleet is the last app migrated, so every app's permissions exist by now."""
    from django.apps import apps

    from fleet.groups import groups_ensure

    groups_ensure(apps=apps, strict=True)
