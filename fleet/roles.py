"""The three roles of the one image: gateway, worker, cron (§2.3). Start-up of the procrastinate-based ones."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from procrastinate import PsycopgConnector
from procrastinate.contrib.django import app
from procrastinate.contrib.django.utils import connector_params
from procrastinate.worker import Worker

log = structlog.get_logger(__name__)

ROLES = ("gateway", "worker", "cron")


def role_application_name(role: str) -> str:
    return f"fleet-{role}"


class _StickyWakeEvent(asyncio.Event):
    """The worker's "a job was inserted" flag, minus a lost wake-up.

    procrastinate 3.10 clears this flag after every fetch. A NOTIFY that lands while a fetch is in flight, and
    that fetch comes back empty (its snapshot predates the new job), is then forgotten until the next poll:
    seconds of latency for a push. Here a clear() that follows a fetch during which the flag was set is
    ignored, so the worker fetches once more at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sets = 0
        self._sets_at_fetch = 0

    def set(self) -> None:
        self._sets += 1
        super().set()

    def fetch_starting(self) -> None:
        self._sets_at_fetch = self._sets

    def clear(self) -> None:
        if self._sets != self._sets_at_fetch:
            self._sets_at_fetch = self._sets  # set during the fetch: keep it for one more fetch
            return
        super().clear()


class FleetWorker(Worker):
    """procrastinate's worker with the wake-up flag above."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        flag = _StickyWakeEvent()
        self._new_job_event = flag
        fetch_job = self.app.job_manager.fetch_job

        async def fetch_job_marked(**fetch_kwargs: Any) -> Any:
            flag.fetch_starting()
            return await fetch_job(**fetch_kwargs)

        self.app.job_manager.fetch_job = fetch_job_marked  # type: ignore[method-assign]


def run_procrastinate_worker(*, name: str, queues: list[str], concurrency: int) -> None:
    """Run a procrastinate worker on its own psycopg connection (LISTEN needs a direct one, not pgbouncer)."""
    log.info("role.start", role=name, queues=queues, concurrency=concurrency)
    # The application name lets /health/worker find this role's LISTEN connection in pg_stat_activity.
    connector = PsycopgConnector(kwargs={**connector_params(), "application_name": role_application_name(name)})

    async def main() -> None:
        async with app.open_async():
            app.perform_import_paths()
            worker = FleetWorker(
                app=app,
                queues=queues,
                name=name,
                concurrency=concurrency,
                wait=True,
                install_signal_handlers=True,
                # Wake-up jobs are many and carry nothing worth keeping once done.
                delete_jobs="successful",
            )
            await worker.run()

    with app.replace_connector(connector):
        asyncio.run(main())
    log.info("role.stop", role=name)
