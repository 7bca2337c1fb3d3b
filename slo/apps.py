"""Commitments: SLO targets, measurements and status."""

from __future__ import annotations

from django.apps import AppConfig


class SloConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "slo"
    verbose_name = "slo"
