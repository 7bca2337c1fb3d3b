"""Shared start-up of the procrastinate-based roles (worker, cron)."""

from __future__ import annotations

import structlog
from procrastinate.contrib.django import app

log = structlog.get_logger(__name__)


def run_procrastinate_worker(*, name: str, queues: list[str], concurrency: int) -> None:
    """Run a procrastinate worker on its own psycopg connection (LISTEN needs a direct one, not pgbouncer)."""
    log.info("role.start", role=name, queues=queues, concurrency=concurrency)
    with app.replace_connector(app.connector.get_worker_connector()):  # type: ignore[attr-defined]
        app.run_worker(
            queues=queues,
            name=name,
            concurrency=concurrency,
            wait=True,
            install_signal_handlers=True,
        )
    log.info("role.stop", role=name)
