"""The map-matching projector's work-list (geo_match_pending): claim, fold, retry — one transaction per batch.

The same design as state's projectors (state/projectors/runner.py, docs/architecture.md "Wake-up and work-lists"
and "Poison isolation"), over geo's own table: the projector lock (shared with that module: one advisory lock per
projector name), a claim with SKIP LOCKED whose DELETE commits with the matched rows, a failing batch bisected
until the failing fix is alone (events/poison.py), the failing fix back on the work-list with an exponential
back-off and parked after PROJECT_MAX_ATTEMPTS, a transient error leaving the whole batch for the next run, and a
drain that passes the wake-up barrier before it stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.conf import settings
from django.db import connection, transaction

from events.poison import error_is_transient, error_text, isolate
from events.services import wake_barrier, wake_requeue
from state.projectors.runner import projector_lock

log = structlog.get_logger(__name__)

PROJECTOR = "geo"
WAKE_TASK = "geo.match_positions"
ERROR_MAX_CHARS = 4000
BACKOFF_MAX_DOUBLINGS = 8


@dataclass(frozen=True)
class Changed:
    """One claimed work-list row: this position fix changed."""

    parsed_id: int
    occurred_at: datetime
    device_id: int | None
    attempts: int = 0


Fold = Callable[[Sequence[Changed]], None]


# The device time before which every window a fix belongs to has closed. A fix at t belongs to windows
# floor((t - m) / W) … floor((t + m) / W); the last of them closes (its widened range ends) at
# (floor((t + m) / W) + 1)·W + m, and is settled `grace` seconds later. That moment has passed exactly when
# t + m < floor((now - m - grace) / W)·W, which is one bound on occurred_at for every row: an index range.
_SETTLED_BEFORE = "to_timestamp(floor((extract(epoch FROM now()) - %(m)s - %(grace)s) / %(w)s) * %(w)s - %(m)s)"


def match_claim(*, limit: int) -> list[Changed]:
    """Take due rows off the work-list for this transaction: fresh rows of settled windows (MAPMATCH_SETTLE) in
    device-time order, a window's fixes together, in a batch; else one retried row."""
    settled = f"occurred_at < {_SETTLED_BEFORE}" if settings.MAPMATCH_SETTLE else "true"
    params = {"m": settings.MAPMATCH_WINDOW_MARGIN_S, "w": settings.MAPMATCH_WINDOW_S,
              "grace": settings.MAPMATCH_SETTLE_GRACE_S}  # fmt: skip
    with connection.cursor() as cursor:
        for attempts_filter, order, n in (
            (f"attempts = 0 AND {settled}", "occurred_at, id", limit),
            ("attempts > 0 AND not_before <= now() AND failed_at IS NULL", "id", 1),
        ):
            cursor.execute(
                "DELETE FROM geo_match_pending WHERE id = ANY(ARRAY("
                f" SELECT id FROM geo_match_pending WHERE {attempts_filter} ORDER BY {order} FOR UPDATE SKIP LOCKED"
                " LIMIT %(n)s)) RETURNING parsed_id, occurred_at, device_id, attempts",
                {**params, "n": n},
            )
            rows = cursor.fetchall()
            if rows:
                return [Changed(*r) for r in rows]
    return []


def _requeue(poisoned: list[tuple[Changed, BaseException]]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO geo_match_pending (parsed_id, occurred_at, device_id, attempts, not_before, failed_at,"
            " last_error)"
            " SELECT u.parsed_id, u.occurred_at, u.device_id, u.attempts + 1,"
            "        now() + make_interval(secs => %s * power(2, least(u.attempts, %s))),"
            "        CASE WHEN u.attempts + 1 >= %s THEN now() END, u.error"
            "   FROM unnest(%s::bigint[], %s::timestamptz[], %s::bigint[], %s::int[], %s::text[])"
            "        AS u(parsed_id, occurred_at, device_id, attempts, error)",
            [
                settings.PROJECT_RETRY_BACKOFF_S,
                BACKOFF_MAX_DOUBLINGS,
                settings.PROJECT_MAX_ATTEMPTS,
                [c.parsed_id for c, _ in poisoned],
                [c.occurred_at for c, _ in poisoned],
                [c.device_id for c, _ in poisoned],
                [c.attempts for c, _ in poisoned],
                [error_text(exc)[:ERROR_MAX_CHARS] for _, exc in poisoned],
            ],
        )


def match_batch(fold: Fold, *, limit: int, wait: bool = True) -> int:
    """Claim and fold one batch; returns how many rows it consumed (0: nothing due, or busy)."""
    with transaction.atomic():
        if not projector_lock(PROJECTOR, wait=wait):
            return 0
        claimed = match_claim(limit=limit)
        if not claimed:
            return 0
        started = time.perf_counter()
        try:
            poisoned = isolate(claimed, fold)
        except Exception as exc:
            if error_is_transient(exc):
                log.warning("match.interrupted", rows=len(claimed), error=str(exc))
            raise
        for changed, error in poisoned:
            log.error("match.poisoned", parsed_id=changed.parsed_id, error=error_text(error))
        if poisoned:
            _requeue(poisoned)
    log.info("match.batch", fixes=len(claimed), poisoned=len(poisoned), ms=round((time.perf_counter() - started) * 1e3))
    return len(claimed)


def match_requeue_parked(*, ids: list[int]) -> int:
    """Put parked rows back on the work-list, due now, with a fresh count."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE geo_match_pending SET attempts = 0, not_before = NULL, failed_at = NULL"
            " WHERE id = ANY(%s) AND failed_at IS NOT NULL",
            [ids],
        )
        return int(cursor.rowcount)


def _drain_once(fold: Fold, batch_size: int, deadline: float, *, wait: bool = True) -> tuple[int, bool]:
    done = 0
    while time.monotonic() < deadline:
        n = match_batch(fold, limit=batch_size, wait=wait)
        if not n:
            return done, True
        done += n
    return done, False


def match_drain(fold: Fold, *, batch_size: int, woken: bool, budget_s: float | None = None) -> int:
    """Fold batches until nothing is due; the woken job looks once more after the barrier (events/sql/wake.sql),
    and a job out of time (JOB_TIME_BUDGET_S) queues a successor."""
    deadline = time.monotonic() + (budget_s if budget_s is not None else settings.JOB_TIME_BUDGET_S)
    done = 0
    while True:
        n, empty = _drain_once(fold, batch_size, deadline, wait=woken)
        done += n
        if not empty:
            wake_requeue(queue="geo", task=WAKE_TASK)
            return done
        if not woken:
            return done
        wake_barrier(task=WAKE_TASK)
        more, empty = _drain_once(fold, batch_size, deadline)
        done += more
        if not empty:
            wake_requeue(queue="geo", task=WAKE_TASK)
            return done
        if not more:
            return done
