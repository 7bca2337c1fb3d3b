"""Benchmark-only jobs: the two hops of bench_freshness's floor (devtools/management/commands/bench_freshness.py).

Each hop is a real path with its work taken out: a deferred row trigger puts a work-list row down and wakes a job
through fleet_wake_once (events/sql/wake.sql), the job claims its work-list with SKIP LOCKED and writes one row per
claimed row, and drains as the parse and projector jobs do (empty → barrier → once more). The tables and triggers
exist only in a benchmark's scratch database (bench_freshness creates them); anywhere else nothing queues these jobs.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection, transaction
from procrastinate.contrib.django import app

from events.services import wake_barrier, wake_requeue

HOP_1 = "devtools.bench_hop_1"
HOP_2 = "devtools.bench_hop_2"
BATCH = 500

# Hop 1 writes the row whose trigger wakes hop 2; hop 2 writes the row the benchmark times (clock_timestamp()).
_WRITES = {
    HOP_1: "INSERT INTO bench_hop_mid (id) SELECT id FROM claimed",  # written_at: clock_timestamp() by default
    HOP_2: "INSERT INTO bench_hop_out (id, written_at) SELECT id, clock_timestamp() FROM claimed",
}
_WORK_LISTS = {HOP_1: "bench_hop_pending_1", HOP_2: "bench_hop_pending_2"}
_QUEUES = {HOP_1: "parse", HOP_2: "project"}


def _batch(task: str) -> int:
    work_list = _WORK_LISTS[task]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"WITH claimed AS (DELETE FROM {work_list} WHERE id = ANY(ARRAY("
            f"  SELECT id FROM {work_list} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)) RETURNING id)"
            f" {_WRITES[task]}",
            [BATCH],
        )
        done: int = cursor.rowcount
        return done


def _drain_once(task: str, deadline: float) -> tuple[int, bool]:
    done = 0
    while time.monotonic() < deadline:
        n = _batch(task)
        if not n:
            return done, True
        done += n
    return done, False


def hop_drain(task: str) -> None:
    """The woken job's protocol of the real drains (events.services.raw_events_drain, the projector runner)."""
    deadline = time.monotonic() + settings.JOB_TIME_BUDGET_S
    while True:
        _, empty = _drain_once(task, deadline)
        if not empty:
            wake_requeue(queue=_QUEUES[task], task=task)
            return
        wake_barrier(task=task)
        more, empty = _drain_once(task, deadline)
        if not empty:
            wake_requeue(queue=_QUEUES[task], task=task)
            return
        if not more:
            return


@app.task(name=HOP_1, queue="parse", queueing_lock=HOP_1, pass_context=False)
def bench_hop_1() -> None:
    hop_drain(HOP_1)


@app.task(name=HOP_2, queue="project", queueing_lock=HOP_2, pass_context=False)
def bench_hop_2() -> None:
    hop_drain(HOP_2)
