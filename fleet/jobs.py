"""procrastinate wiring: the app is procrastinate's Django contrib app; periodic tasks live in each app's tasks.py."""

from __future__ import annotations

from typing import Any


def on_app_ready(app: Any) -> None:
    """Hook for procrastinate's Django app (settings.PROCRASTINATE_ON_APP_READY). Nothing to add yet."""
