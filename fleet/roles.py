"""The three roles of the one image: gateway, worker, cron (docs/architecture.md). Start-up and supervision of the
procrastinate-based ones."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from procrastinate import BaseRetryStrategy, PsycopgConnector, RetryDecision
from procrastinate.contrib.django import app
from procrastinate.contrib.django.utils import connector_params
from procrastinate.job_context import JobContext, JobResult
from procrastinate.jobs import Job, Status
from procrastinate.worker import Worker

from events.poison import error_causes, error_is_transient

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


class TransientDatabaseRetry(BaseRetryStrategy):
    """Every job that fails because the database went away is retried (capped exponential back-off), as
    procrastinate's own retry model does; a job that fails for any other reason fails as before."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if not error_is_transient(exception) or job.attempts >= settings.ROLE_JOB_MAX_RETRIES:
            return None
        delay = min(settings.ROLE_RECONNECT_MIN_S * 2**job.attempts, settings.ROLE_RECONNECT_MAX_S)
        return RetryDecision(retry_in={"seconds": delay})


def _queueing_lock_taken(exc: BaseException) -> bool:
    return any(getattr(cause, "sqlstate", None) == "23505" for cause in error_causes(exc))


class FleetWorker(Worker):
    """procrastinate's worker with the wake-up flag above, and a job outcome that survives the database going
    away while the job ran: writing it is retried until the database is back (or the worker is told to stop),
    and a retry whose queueing lock another waiting job already holds gives way to that job."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        flag = _StickyWakeEvent()
        self._new_job_event = flag
        # The job manager outlives a worker (a role starts a new one after a database outage): wrap the
        # original fetch once per worker, never a previous worker's wrapper.
        manager = self.app.job_manager
        fetch_job = manager.__dict__.setdefault("_fleet_fetch_job", manager.fetch_job)

        async def fetch_job_marked(queues: Iterable[str] | None, worker_id: int) -> Job | None:
            flag.fetch_starting()
            job: Job | None = await fetch_job(queues=queues, worker_id=worker_id)
            return job

        self.app.job_manager.fetch_job = fetch_job_marked  # type: ignore[method-assign]  # this manager's, on purpose

    async def _persist_job_status(
        self,
        job: Job,
        status: Status,
        retry_decision: RetryDecision | None,
        context: JobContext,
        job_result: JobResult | None,
    ) -> None:
        delay = settings.ROLE_RECONNECT_MIN_S
        while True:
            try:
                await super()._persist_job_status(
                    job=job, status=status, retry_decision=retry_decision, context=context, job_result=job_result
                )
                return
            except Exception as exc:
                if retry_decision is not None and _queueing_lock_taken(exc):
                    # The same work already waits as another job (wake-ups share a queueing lock).
                    log.info("job.superseded", job_id=job.id, task=job.task_name)
                    assert job.id is not None
                    await self.app.job_manager.finish_job_by_id_async(job.id, status=status, delete_job=True)
                    return
                if not error_is_transient(exc) or self._stop_event.is_set():
                    raise
                log.warning("job.outcome_unsaved", job_id=job.id, retry_in_s=delay, error=str(exc).strip()[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.ROLE_RECONNECT_MAX_S)


class _StopRequest:
    """SIGTERM/SIGINT: stop for good (as opposed to the worker stopping because the database went away)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.worker: Worker | None = None

    def __call__(self, *args: Any) -> None:
        self.requested.set()
        if self.worker is not None:
            self.worker.stop()

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            if loop is None:
                signal.signal(sig, self)
            else:
                loop.add_signal_handler(sig, self)


def database_wait(*, role: str, stop: _StopRequest | None = None) -> bool:
    """Block until the database answers, with capped exponential back-off and one log line per attempt.
    False when a stop was requested meanwhile."""
    delay = settings.ROLE_RECONNECT_MIN_S
    while True:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except DatabaseError as exc:
            connections.close_all()
            log.warning("role.database_unavailable", role=role, retry_in_s=delay, error=str(exc).strip()[:200])
        if stop is None:
            time.sleep(delay)
        elif stop.requested.wait(delay):
            return False
        delay = min(delay * 2, settings.ROLE_RECONNECT_MAX_S)


# Jobs left `doing` by a worker that is gone (its heartbeat stale, or the one this process ran before the
# database went away): retried through procrastinate's own function, or dropped when a job with the same
# queueing lock already waits (it does the same work).
_STALLED_JOBS = """
SELECT j.id, j.task_name FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
 WHERE j.status = 'doing' AND j.queue_name = ANY(%s)
   AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => %s) OR j.worker_id = ANY(%s))
"""


def jobs_heal(*, queues: Sequence[str], gone_worker_ids: Sequence[int] = ()) -> int:
    """Put the jobs of workers that are gone back in the queue; returns how many."""
    healed = 0
    with connection.cursor() as cursor:
        cursor.execute(_STALLED_JOBS, [list(queues), settings.ROLE_HEARTBEAT_MAX_AGE_S, list(gone_worker_ids)])
        for job_id, task in cursor.fetchall():
            try:
                with transaction.atomic():
                    cursor.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", [job_id])
                log.info("job.healed", job_id=job_id, task=task, how="retried")
            except IntegrityError:
                cursor.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', true)", [job_id])
                log.info("job.healed", job_id=job_id, task=task, how="superseded by a waiting job")
            healed += 1
        if gone_worker_ids:
            cursor.execute("DELETE FROM procrastinate_workers WHERE id = ANY(%s)", [list(gone_worker_ids)])
    return healed


def _retry_transient_failures() -> None:
    for task in app.tasks.values():
        if task.retry_strategy is None:
            task.retry_strategy = TransientDatabaseRetry()


def run_procrastinate_worker(*, name: str, queues: list[str], concurrency: int) -> None:
    """Run a procrastinate worker on its own psycopg connection (LISTEN needs a direct one, not pgbouncer), for
    as long as the role is not told to stop. When the database goes away the worker stops; this loop waits for
    the database with capped back-off, heals the jobs the outage interrupted and starts a new worker (a new
    LISTEN), so a restart of PostgreSQL never ends the role."""
    log.info("role.start", role=name, queues=queues, concurrency=concurrency)
    _retry_transient_failures()
    stop = _StopRequest()
    gone: list[int] = []
    while not stop.requested.is_set():
        stop.install()
        if not database_wait(role=name, stop=stop):
            break
        stop.worker = None
        try:
            jobs_heal(queues=queues, gone_worker_ids=gone)
            gone = []
            worker_id = asyncio.run(_worker_run(name=name, queues=queues, concurrency=concurrency, stop=stop))
        except Exception as exc:
            if not error_is_transient(exc):
                raise
            worker_id = stop.worker.worker_id if stop.worker else None
            log.warning("role.database_lost", role=name, error=str(exc).strip()[:200])
        finally:
            connections.close_all()
        if worker_id is not None:
            gone.append(worker_id)
        if not stop.requested.is_set():
            log.warning("role.restarting", role=name)
    log.info("role.stop", role=name)


async def _worker_run(*, name: str, queues: list[str], concurrency: int, stop: _StopRequest) -> int | None:
    """One worker's life; returns its id when it did not unregister (the database went away under it)."""
    # The application name lets /health/worker find this role's LISTEN connection in pg_stat_activity.
    connector = PsycopgConnector(kwargs={**connector_params(), "application_name": role_application_name(name)})
    with app.replace_connector(connector):
        async with app.open_async():
            app.perform_import_paths()
            # Typed as procrastinate's Worker: its run() is one of the methods procrastinate leaves unannotated.
            worker: Worker = FleetWorker(
                app=app,
                queues=queues,
                name=name,
                concurrency=concurrency,
                wait=True,
                install_signal_handlers=False,
                # Wake-up jobs are many and carry nothing worth keeping once done.
                delete_jobs="successful",
            )
            stop.worker = worker
            stop.install(asyncio.get_running_loop())
            await worker.run()
            return worker.worker_id
