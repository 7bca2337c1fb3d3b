"""Business identity: accounts, vehicles, devices and their lifecycle, drivers, cost centres, cities."""

from __future__ import annotations

from django.apps import AppConfig


class DomainConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "domain"
    verbose_name = "domain"
