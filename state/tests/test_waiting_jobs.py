"""At most one woken job waits for a projector: another one, woken meanwhile, leaves the work to it and frees its
worker slot (for parsing) instead of queueing behind it."""

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


def drain_woken() -> int:
    return projector_drain(
        "positions", FOLDS["positions"], batch_size=1000, wake_task="state.project_positions", woken=True
    )


def test_a_woken_job_leaves_the_work_to_the_job_already_waiting_for_the_projector(make_device, account):
    d = make_device().id
    fixes = drive(d, T0, seconds=120)
    insert(fixes, account_id=account.id)
    waiting = ProjectionPending.objects.filter(projector="positions").count()
    assert waiting == len(fixes)
    # Another session is the job waiting for the positions projector (it holds the waiting place).
    with psycopg.connect(**bench.conninfo_for(f"x/{connection.settings_dict['NAME']}")) as other:
        other.autocommit = False
        other.execute("SELECT pg_advisory_xact_lock(hashtextextended('fleet.projector-waiter:' || 'positions', 0))")
        assert drain_woken() == 0
        assert ProjectionPending.objects.filter(projector="positions").count() == waiting  # untouched: handed over
        other.rollback()
    # The place is free: this job waits, folds and passes the barrier as before.
    assert drain_woken() == len(fixes)
    assert live_of(d)[1] == fixes[-1].at
    assert not ProjectionPending.objects.filter(projector="positions").exists()
