"""The three roles of the one image: gateway, worker, cron (§2.3). Start-up of the procrastinate-based ones."""

from __future__ import annotations

import structlog
from procrastinate import PsycopgConnector
from procrastinate.contrib.django import app
from procrastinate.contrib.django.utils import connector_params

log = structlog.get_logger(__name__)

ROLES = ("gateway", "worker", "cron")


def role_application_name(role: str) -> str:
    return f"fleet-{role}"


def run_procrastinate_worker(*, name: str, queues: list[str], concurrency: int) -> None:
    """Run a procrastinate worker on its own psycopg connection (LISTEN needs a direct one, not pgbouncer)."""
    log.info("role.start", role=name, queues=queues, concurrency=concurrency)
    # The application name lets /health/worker find this role's LISTEN connection in pg_stat_activity.
    connector = PsycopgConnector(kwargs={**connector_params(), "application_name": role_application_name(name)})
    with app.replace_connector(connector):
        app.run_worker(
            queues=queues,
            name=name,
            concurrency=concurrency,
            wait=True,
            install_signal_handlers=True,
        )
    log.info("role.stop", role=name)
