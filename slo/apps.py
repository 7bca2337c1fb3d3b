"""Commitments: SLO targets, measurements and status."""

from __future__ import annotations

from django.apps import AppConfig


class SloConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "slo"
    verbose_name = "slo"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        post_migrate.connect(_seed_targets, sender=self)


def _seed_targets(sender: AppConfig, **kwargs: object) -> None:
    """Default targets exist after every migrate, and after a test flush (which empties every table)."""
    from slo.models import SloTarget
    from slo.seed import slo_targets_seed

    slo_targets_seed(SloTarget)
