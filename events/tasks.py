"""Jobs of the events layer. Thin: each calls a service.

`events.parse_pending` is deferred by the database itself (the events_raw wake-up trigger, at commit); the
sweep is the safety net for a wake-up that never came (a worker down, a connection blip).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from procrastinate.contrib.django import app

from events.services import PARSE_TASK, log_partitions_ensure, raw_events_drain

log = structlog.get_logger(__name__)


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


# --- Jimi Open API polls and the contract check (events/jimi/services.py), in the cron role ------------------------


def every_seconds(seconds: int, *, periodic_id: str, offset_minutes: int = 0) -> Callable[[Any], Any]:
    """A poll's schedule from its interval setting: under a minute, a divisor of 60 s (sixth cron field = seconds);
    else whole minutes dividing an hour, or whole hours dividing a day. `offset_minutes` staggers polls of the same
    interval so they do not all queue behind each other in the cron role. 0 registers none."""
    from django.core.exceptions import ImproperlyConfigured

    if seconds <= 0:
        return lambda task: task
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 60 and 60 % seconds == 0:
        cron = f"* * * * * */{seconds}"
    elif seconds % 60 == 0 and 60 % minutes == 0:
        cron = f"{offset_minutes % minutes}-59/{minutes} * * * *" if minutes > 1 else "* * * * *"
    elif seconds % 3600 == 0 and 24 % hours == 0:
        cron = f"{offset_minutes % 60} */{hours} * * *"
    else:
        raise ImproperlyConfigured(f"{periodic_id}: {seconds} s is no divisor of a minute, an hour or a day")
    return app.periodic(cron=cron, periodic_id=periodic_id)


@every_seconds(settings.JIMI_POLL_LOCATIONS_EVERY_S, periodic_id="jimi-locations")
@app.task(name="events.jimi_locations", queue="cron", queueing_lock="events.jimi_locations", pass_context=False)
def jimi_locations(timestamp: int) -> None:
    from events.jimi.services import jimi_poll

    jimi_poll("locations")


@every_seconds(settings.JIMI_POLL_DEVICES_EVERY_S, periodic_id="jimi-devices", offset_minutes=1)
@app.task(name="events.jimi_devices", queue="cron", queueing_lock="events.jimi_devices", pass_context=False)
def jimi_devices(timestamp: int) -> None:
    from events.jimi.services import jimi_poll

    jimi_poll("devices")


@every_seconds(settings.JIMI_POLL_REPORTS_EVERY_S, periodic_id="jimi-reports", offset_minutes=2)
@app.task(name="events.jimi_reports", queue="cron", queueing_lock="events.jimi_reports", pass_context=False)
def jimi_reports(timestamp: int) -> None:
    from events.jimi.services import jimi_poll

    jimi_poll("reports")


@every_seconds(settings.JIMI_POLL_BACKFILL_EVERY_S, periodic_id="jimi-backfill", offset_minutes=4)
@app.task(name="events.jimi_backfill", queue="cron", queueing_lock="events.jimi_backfill", pass_context=False)
def jimi_backfill(timestamp: int) -> None:
    from events.jimi.services import jimi_poll

    jimi_poll("backfill")


@app.periodic(cron="41 4 * * *", periodic_id="jimi-contract")
@app.task(
    name="events.jimi_contract_check", queue="cron", queueing_lock="events.jimi_contract_check", pass_context=False
)
def jimi_contract_check(timestamp: int) -> None:
    """Daily: Jimi's answers against the pinned models. No contract account configured: nothing to check."""
    from events.jimi.services import ContractAccountMissing, contract_check_run

    try:
        contract_check_run()
    except ContractAccountMissing as exc:
        log.info("jimi.contract_not_checked", reason=str(exc))
