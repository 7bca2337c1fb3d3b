"""Operations workflow: tickets, dispatch, service log."""

from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ops"
    verbose_name = "ops"
