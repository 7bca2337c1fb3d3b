"""Jobs of the events layer. Thin: each calls a service.

`events.parse_pending` is deferred by the database itself (the events_raw wake-up trigger, at commit); the
sweep is the safety net for a wake-up that never came (a worker down, a connection blip).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from procrastinate.contrib.django import app

from events.services import PARSE_TASK, log_partitions_ensure, raw_events_drain


@app.task(name=PARSE_TASK, queue="parse", queueing_lock=PARSE_TASK, pass_context=False)
def parse_pending() -> None:
    raw_events_drain(batch_size=settings.PARSE_BATCH_SIZE, wake_task=PARSE_TASK)


def sweep_every(seconds: int, *, periodic_id: str) -> Callable[[Any], Any]:
    """A sweep's schedule: every `seconds` (sixth cron field = seconds); 0 registers none — the wake-up tests
    run with the sweeps off, so they cannot pass by the safety net."""
    if seconds <= 0:
        return lambda task: task
    return app.periodic(cron=f"* * * * * */{seconds}", periodic_id=periodic_id)


@sweep_every(settings.PARSE_SWEEP_EVERY_S, periodic_id="parse-sweep")
@app.task(name="events.parse_sweep", queue="parse", queueing_lock="events.parse_sweep", pass_context=False)
def parse_sweep(timestamp: int) -> None:
    raw_events_drain(batch_size=settings.PARSE_BATCH_SIZE)


@app.periodic(cron="17 3 * * *", periodic_id="log-partitions")
@app.task(name="events.partitions_ensure", queue="cron", queueing_lock="events.partitions_ensure", pass_context=False)
def partitions_ensure(timestamp: int) -> None:
    log_partitions_ensure(months_ahead=settings.LOG_PARTITIONS_AHEAD_MONTHS)


@app.task(name="events.reparse_rows", queue="parse", pass_context=False)
def reparse_rows(raw_ids: list[int], received_at: list[str]) -> None:
    """Re-parse these raw rows (queued by the admin's "re-parse selected"); received_at as ISO 8601, one per id."""
    from events.reparse import raw_rows_reparse

    raw_rows_reparse(raw_ids=raw_ids, received_at=received_at)
