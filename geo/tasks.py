"""Jobs of the geo layer. Thin: each calls a service.

Map matching runs on the `geo` queue, which the cron role drains (niced: it gives way to parsing and projection).
Fixes wait on its work-list until their windows have closed (MAPMATCH_SETTLE), so no commit wakes it: the sweep,
every PROJECT_SWEEP_EVERY_S, drains what has settled, and is also the retry clock of fixes whose batch failed.
`geo.match_positions` is the same drain as a job, queued by a drain that ran out of time for its successor.
`geo.geocode` runs in the cron role every GEOCODE_EVERY_S seconds: the providers' answers take seconds, never the
projectors' time.

The road graph is reloaded from settings.OSM_EXTRACT_PATH on the 1st of every month (02:41 UTC, 05:41 EAT) in the
cron role; with the setting empty no periodic load is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from procrastinate.contrib.django import app

from events.tasks import sweep_every
from geo.geocoding import geocode_pending
from geo.matching.projector import match_fold
from geo.matching.worklist import WAKE_TASK, match_drain
from geo.services import road_graph_load

log = structlog.get_logger(__name__)


def monthly_when(configured: str, *, periodic_id: str) -> Callable[[Any], Any]:
    """The monthly schedule, or none at all while nothing is configured."""
    if not configured:
        return lambda task: task
    return app.periodic(cron="41 2 1 * *", periodic_id=periodic_id)


@monthly_when(settings.OSM_EXTRACT_PATH, periodic_id="geo-osm-load")
@app.task(name="geo.osm_load", queue="cron", queueing_lock="geo.osm_load", pass_context=False)
def osm_load(timestamp: int) -> None:
    """Load the configured OSM extract into the road graph (the same file again gives the same graph)."""
    if not settings.OSM_EXTRACT_PATH:
        return
    load = road_graph_load(Path(settings.OSM_EXTRACT_PATH)).load
    log.info(
        "road graph loaded", file=load.file_name, sha256=load.sha256, ways=load.ways, segments=load.segments,
        vertices=load.vertices, length_km=load.length_km, seconds=load.seconds,
    )  # fmt: skip


@app.task(name=WAKE_TASK, queue="geo", queueing_lock=WAKE_TASK, pass_context=False)
def match_positions() -> None:
    # A successor, not a wake-up (nothing wakes geo at commit): it backs off when another drain holds the lock
    # rather than take a second cron slot to wait in.
    match_drain(match_fold, batch_size=settings.PROJECT_BATCH_SIZE, woken=False)


@sweep_every(settings.PROJECT_SWEEP_EVERY_S, periodic_id="geo-match-sweep")
@app.task(name="geo.sweep_match", queue="geo", queueing_lock="geo.sweep_match", pass_context=False)
def sweep_match(timestamp: int) -> None:
    match_drain(match_fold, batch_size=settings.PROJECT_BATCH_SIZE, woken=False)


@sweep_every(settings.GEOCODE_EVERY_S, periodic_id="geo-geocode")
@app.task(name="geo.geocode", queue="cron", queueing_lock="geo.geocode", pass_context=False)
def geocode(timestamp: int) -> None:
    geocode_pending()
