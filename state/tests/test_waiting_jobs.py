"""One job drains a projector and one woken job at most waits to be next: another one, woken meanwhile, leaves the
work to them and frees its worker slot (for parsing) instead of queueing behind them; a sweep drains only when
nobody does."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from devtools import bench
from state.models import ProjectionPending
from state.projectors.groups import FOLDS
from state.projectors.runner import projector_drain
from state.tests.drives import T0, drive, insert, live_of

pytestmark = pytest.mark.django_db


def drain(*, woken: bool = True) -> int:
    return projector_drain(
        "positions", FOLDS["positions"], batch_size=1000, wake_task="state.project_positions", woken=woken
    )


def test_a_woken_job_leaves_the_work_to_the_job_already_waiting_for_the_projector(make_device, account):
    d = make_device().id
    fixes = drive(d, T0, seconds=120)
    insert(fixes, account_id=account.id)
    waiting = ProjectionPending.objects.filter(projector="positions").count()
    assert waiting == len(fixes)
    # Other sessions are the job draining the positions projector and the job waiting to be next.
    with psycopg.connect(**bench.conninfo_for(f"x/{connection.settings_dict['NAME']}")) as other:
        for lock in ("drainer", "waiter"):
            other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"fleet.projector-{lock}:positions"])
        assert drain(woken=False) == 0
        assert drain() == 0
        assert ProjectionPending.objects.filter(projector="positions").count() == waiting  # untouched: handed over
        other.execute("SELECT pg_advisory_unlock_all()")  # (a closed session's locks go a moment later)
    # They are done: this job drains, passes the barrier and drains again, as before.
    assert drain() == len(fixes)
    assert live_of(d)[1] == fixes[-1].at
    assert not ProjectionPending.objects.filter(projector="positions").exists()
