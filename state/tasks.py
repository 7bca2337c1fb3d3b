"""Jobs of the state layer. Thin: each drains one projector's work-list.

`state.project_<projector>` is deferred by the database itself (the events_parsed trigger, at commit); the sweep
is the safety net for a wake-up that never came, and the retry clock for events whose batch failed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from procrastinate.contrib.django import app

from events.tasks import sweep_every
from state.models import Projector
from state.projectors.groups import FOLDS
from state.projectors.history import history_partitions_cover
from state.projectors.runner import projector_drain


def project_task_name(projector: str) -> str:
    return f"state.project_{projector}"


def _drain(projector: str, *, woken: bool) -> None:
    projector_drain(
        projector,
        FOLDS[projector],
        batch_size=settings.PROJECT_BATCH_SIZE,
        wake_task=project_task_name(projector),
        woken=woken,
    )


@app.task(name="state.project_positions", queue="project", queueing_lock="state.project_positions", pass_context=False)
def project_positions() -> None:
    _drain(Projector.POSITIONS, woken=True)


@app.task(name="state.project_readings", queue="project", queueing_lock="state.project_readings", pass_context=False)
def project_readings() -> None:
    _drain(Projector.READINGS, woken=True)


@app.task(name="state.project_drivers", queue="project", queueing_lock="state.project_drivers", pass_context=False)
def project_drivers() -> None:
    _drain(Projector.DRIVERS, woken=True)


@app.task(name="state.project_trips", queue="project", queueing_lock="state.project_trips", pass_context=False)
def project_trips() -> None:
    _drain(Projector.TRIPS, woken=True)


@sweep_every(settings.PROJECT_SWEEP_EVERY_S, periodic_id="project-positions-sweep")
@app.task(name="state.sweep_positions", queue="project", queueing_lock="state.sweep_positions", pass_context=False)
def sweep_positions(timestamp: int) -> None:
    _drain(Projector.POSITIONS, woken=False)


@sweep_every(settings.PROJECT_SWEEP_EVERY_S, periodic_id="project-readings-sweep")
@app.task(name="state.sweep_readings", queue="project", queueing_lock="state.sweep_readings", pass_context=False)
def sweep_readings(timestamp: int) -> None:
    _drain(Projector.READINGS, woken=False)


@sweep_every(settings.PROJECT_SWEEP_EVERY_S, periodic_id="project-drivers-sweep")
@app.task(name="state.sweep_drivers", queue="project", queueing_lock="state.sweep_drivers", pass_context=False)
def sweep_drivers(timestamp: int) -> None:
    _drain(Projector.DRIVERS, woken=False)


@sweep_every(settings.PROJECT_SWEEP_EVERY_S, periodic_id="project-trips-sweep")
@app.task(name="state.sweep_trips", queue="project", queueing_lock="state.sweep_trips", pass_context=False)
def sweep_trips(timestamp: int) -> None:
    _drain(Projector.TRIPS, woken=False)


@app.periodic(cron="23 3 * * *", periodic_id="state-partitions")
@app.task(name="state.partitions_ensure", queue="cron", queueing_lock="state.partitions_ensure", pass_context=False)
def partitions_ensure(timestamp: int) -> None:
    now = datetime.now(UTC)
    history_partitions_cover(lo=now, hi=now + timedelta(days=31 * settings.LOG_PARTITIONS_AHEAD_MONTHS))
