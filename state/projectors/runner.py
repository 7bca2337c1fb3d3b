"""The job side of every projector: claim from the work-list, fold, checkpoint — one transaction per batch.

A batch is: take the projector's lock (batches of one projector never overlap: two of them re-folding the same
device window would race), claim due work-list rows with SKIP LOCKED, hand them to the projector, bump its
checkpoint row, commit. The DELETE of the claimed rows commits with the projection, so a worker killed
mid-batch leaves the rows for the next one and nothing is folded twice or lost.

No event can kill the worker, and none can hold the others back. A batch that fails is split until each failing
event is alone (events/poison.py): the rest of the batch commits; the failing event goes back on the work-list
with a growing `not_before` (exponential back-off) and is retried alone; after PROJECT_MAX_ATTEMPTS it is
parked (`failed_at` set, the error kept) — the projector's dead letters, listed in the admin, where a clerk
re-queues them after a fix. An error that says the database went away is transient: the whole batch stays on
the work-list untouched, for the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from events.poison import error_is_transient, error_text, isolate
from events.services import wake_barrier, wake_requeue

log = structlog.get_logger(__name__)

ERROR_MAX_CHARS = 4000
# Back-off doubles per failed attempt, up to 2**BACKOFF_MAX_DOUBLINGS times PROJECT_RETRY_BACKOFF_S.
BACKOFF_MAX_DOUBLINGS = 8


@dataclass(frozen=True)
class Pending:
    """One claimed work-list row: this parsed event changed (inserted, updated or deleted)."""

    parsed_id: int
    occurred_at: datetime
    device_id: int | None
    kind: str
    attempts: int = 0


Fold = Callable[[Sequence[Pending]], None]


def _session_lock(name: str, *, wait: bool) -> bool:
    """A session-level advisory lock on this job's connection (released by _session_unlock, or with the session)."""
    func = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {func}(hashtextextended(%s, 0))::text", [name])
        locked: bool = cursor.fetchone()[0] in ("", "true")
        return locked


def _session_unlock(name: str) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [name])
    except DatabaseError:  # the session is gone, and its locks with it
        log.warning("project.unlock_failed", lock=name)


def projector_lock(projector: str, *, wait: bool = True) -> bool:
    """Serialise the batches (and replays) of one projector, for the current transaction. With wait=False, give
    up at once when another batch holds it (a sweep need not queue behind the woken job: that one drains)."""
    func = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {func}(hashtextextended('fleet.projector:' || %s, 0))::text", [projector])
        locked: bool = cursor.fetchone()[0] in ("", "true")
        return locked


def projector_forget(projector: str, where: str, params: dict[str, Any]) -> int:
    """Replay: drop the work-list rows it covers (`where` on alias q: those committed before it started)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM state_projection_pending q WHERE q.projector = %(projector)s AND {where}",
            {**params, "projector": projector},
        )
        forgotten: int = cursor.rowcount
        return forgotten


def projector_claim(projector: str, *, limit: int) -> tuple[list[int], list[Pending]]:
    """Take due rows off the work-list for this transaction: fresh rows in a batch, else one retried row.
    Parked rows (`failed_at` set) are never claimed."""
    with connection.cursor() as cursor:
        for attempts_filter, n in (
            ("attempts = 0", limit),
            ("attempts > 0 AND not_before <= now() AND failed_at IS NULL", 1),
        ):
            cursor.execute(
                # = ANY(ARRAY(…)), not IN (…): the claimed ids first, then one index probe each. IN lets the planner
                # hash-join them against a sequential scan of the whole work-list, which a backlog makes slower per
                # claim the longer it grows (200 ms per claim at 170,000 rows).
                "DELETE FROM state_projection_pending WHERE id = ANY(ARRAY("
                " SELECT id FROM state_projection_pending"
                f"  WHERE projector = %s AND {attempts_filter} ORDER BY id FOR UPDATE SKIP LOCKED LIMIT %s"
                ")) RETURNING id, parsed_id, occurred_at, device_id, kind, attempts",
                [projector, n],
            )
            rows = cursor.fetchall()
            if rows:
                return [r[0] for r in rows], [Pending(r[1], r[2], r[3], r[4], r[5]) for r in rows]
    return [], []


def _checkpoint_done(projector: str, events: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO state_projector_checkpoints"
            " (projector, events_done, batches_done, last_run_at, last_error, failures)"
            " VALUES (%s, %s, 1, now(), '', 0)"
            " ON CONFLICT (projector) DO UPDATE SET events_done = state_projector_checkpoints.events_done + %s,"
            "   batches_done = state_projector_checkpoints.batches_done + 1, last_run_at = now()",
            [projector, events, events],
        )


def _poisoned_requeue(projector: str, poisoned: list[tuple[Pending, BaseException]]) -> None:
    """In the batch's transaction: put each poisoned event back, due after a back-off, or park it for good."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO state_projection_pending"
            " (parsed_id, occurred_at, device_id, kind, projector, attempts, not_before, failed_at, last_error)"
            " SELECT u.parsed_id, u.occurred_at, u.device_id, u.kind, %s, u.attempts + 1,"
            "        now() + make_interval(secs => %s * power(2, least(u.attempts, %s))),"
            "        CASE WHEN u.attempts + 1 >= %s THEN now() END, u.error"
            "   FROM unnest(%s::bigint[], %s::timestamptz[], %s::bigint[], %s::text[], %s::int[], %s::text[])"
            "        AS u(parsed_id, occurred_at, device_id, kind, attempts, error)",
            [
                projector,
                settings.PROJECT_RETRY_BACKOFF_S,
                BACKOFF_MAX_DOUBLINGS,
                settings.PROJECT_MAX_ATTEMPTS,
                [p.parsed_id for p, _ in poisoned],
                [p.occurred_at for p, _ in poisoned],
                [p.device_id for p, _ in poisoned],
                [p.kind for p, _ in poisoned],
                [p.attempts for p, _ in poisoned],
                [error_text(exc)[:ERROR_MAX_CHARS] for _, exc in poisoned],
            ],
        )
        cursor.execute(
            "INSERT INTO state_projector_checkpoints (projector, events_done, batches_done, last_run_at, last_error,"
            " last_error_at, failures) VALUES (%s, 0, 0, now(), %s, now(), %s)"
            " ON CONFLICT (projector) DO UPDATE SET last_error = EXCLUDED.last_error, last_error_at = now(),"
            "   last_run_at = now(), failures = state_projector_checkpoints.failures + EXCLUDED.failures",
            [projector, error_text(poisoned[-1][1])[:ERROR_MAX_CHARS], len(poisoned)],
        )


def projector_batch(projector: str, fold: Fold, *, limit: int, wait: bool = True) -> int:
    """Claim and fold one batch; returns how many work-list rows it consumed (0: nothing due or busy).

    Folding a part of a batch and then the rest gives the state folding all of it gives (projectors re-fold
    whole device windows from the tables), which is what lets a failing batch be bisected."""
    with transaction.atomic():
        if not projector_lock(projector, wait=wait):
            return 0
        claimed, pending = projector_claim(projector, limit=limit)
        if not pending:
            return 0
        started = time.perf_counter()
        try:
            poisoned = isolate(pending, fold)
        except Exception as exc:
            if error_is_transient(exc):  # the database went away: the batch stays claimed by nobody
                log.warning("project.interrupted", projector=projector, rows=len(claimed), error=str(exc))
            raise
        if poisoned:
            for event, error in poisoned:
                log.error("project.poisoned", projector=projector, parsed_id=event.parsed_id, error=error_text(error))
            _poisoned_requeue(projector, poisoned)
        _checkpoint_done(projector, len(pending) - len(poisoned))
    log.info(
        "project.batch",
        projector=projector,
        events=len(pending),
        poisoned=len(poisoned),
        ms=round((time.perf_counter() - started) * 1e3, 1),
    )
    return len(pending)


def projector_enqueue(projector: str, items: Sequence[Pending], *, wake_task: str) -> None:
    """In the current transaction: put work on another projector's list (a projector handing on what it changed),
    and make sure one job for it waits — the same commit-time wake-up as the log's trigger (events/sql/wake.sql)."""
    if not items:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO state_projection_pending (parsed_id, occurred_at, device_id, kind, projector, attempts)"
            " SELECT u.parsed_id, u.occurred_at, u.device_id, u.kind, %s, 0"
            "   FROM unnest(%s::bigint[], %s::timestamptz[], %s::bigint[], %s::text[])"
            "        AS u(parsed_id, occurred_at, device_id, kind)",
            [
                projector,
                [p.parsed_id for p in items],
                [p.occurred_at for p in items],
                [p.device_id for p in items],
                [p.kind for p in items],
            ],
        )
    wake_requeue(queue="project", task=wake_task)


def projection_failures_requeue(*, ids: list[int]) -> int:
    """Put parked events (the admin's dead letters) back on the work-list, due now, with a fresh count."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE state_projection_pending SET attempts = 0, not_before = NULL, failed_at = NULL"
            " WHERE id = ANY(%s) AND failed_at IS NOT NULL",
            [ids],
        )
        requeued: int = cursor.rowcount
        return requeued


def _drain_once(projector: str, fold: Fold, batch_size: int, deadline: float, *, wait: bool = True) -> tuple[int, bool]:
    """Fold batches until nothing is due (True) or the job's time is up (False)."""
    done = 0
    while time.monotonic() < deadline:
        n = projector_batch(projector, fold, limit=batch_size, wait=wait)
        if not n:
            return done, True
        done += n
    return done, False


def projector_drain(
    projector: str, fold: Fold, *, batch_size: int, wake_task: str, woken: bool, budget_s: float | None = None
) -> int:
    """Fold batches until nothing is due. As the woken job, look once more after the barrier: rows committed by
    writers that counted on this job are visible by then (events/sql/wake.sql). A job stops after `budget_s`
    (JOB_TIME_BUDGET_S) and queues a successor, so a worker asked to stop never waits long for it.

    One job drains a projector at a time (the drainer lock, held for the whole drain), and one woken job at most
    waits to be next (the waiter lock): a woken job that finds both taken leaves — the waiter drains, passes the
    barrier and drains again after the drainer is done, which covers every writer this job was woken for. So a
    projector holds two worker slots at most however many wake-ups its batches outlast, and parsing keeps the rest.
    A sweep only drains when nobody does."""
    drainer, waiter = f"fleet.projector-drainer:{projector}", f"fleet.projector-waiter:{projector}"
    if not _session_lock(drainer, wait=False):
        if not woken or not _session_lock(waiter, wait=False):
            return 0
        try:
            _session_lock(drainer, wait=True)
        finally:
            _session_unlock(waiter)
    try:
        return _drain(projector, fold, batch_size=batch_size, wake_task=wake_task, woken=woken, budget_s=budget_s)
    finally:
        _session_unlock(drainer)


def _drain(projector: str, fold: Fold, *, batch_size: int, wake_task: str, woken: bool, budget_s: float | None) -> int:
    deadline = time.monotonic() + (budget_s if budget_s is not None else settings.JOB_TIME_BUDGET_S)
    done = 0
    while True:
        # Only the woken job, which passes the barrier, must queue for the lock; a sweep backs off.
        n, empty = _drain_once(projector, fold, batch_size, deadline, wait=woken)
        done += n
        if not empty:
            wake_requeue(queue="project", task=wake_task)
            return done
        if not woken:
            return done
        wake_barrier(task=wake_task)
        more, empty = _drain_once(projector, fold, batch_size, deadline)
        done += more
        if not empty:
            wake_requeue(queue="project", task=wake_task)
            return done
        if not more:
            return done
