"""Role heartbeats, run as jobs on each role's own queue so a fresh beat proves the role takes jobs."""

from __future__ import annotations

from django.conf import settings
from procrastinate.contrib.django import app

from fleet.services import role_heartbeat_record

# Sixth cron field = seconds. The queueing lock keeps at most one beat waiting when a role is down, so a
# stopped worker does not come back to a pile of stale heartbeat jobs.
HEARTBEAT_CRON = f"* * * * * */{settings.ROLE_HEARTBEAT_EVERY_S}"


@app.periodic(cron=HEARTBEAT_CRON, periodic_id="worker")
@app.task(queue="worker", queueing_lock="heartbeat-worker", pass_context=False)
def worker_heartbeat(timestamp: int) -> None:
    role_heartbeat_record(role="worker")


@app.periodic(cron=HEARTBEAT_CRON, periodic_id="cron")
@app.task(queue="cron", queueing_lock="heartbeat-cron", pass_context=False)
def cron_tick(timestamp: int) -> None:
    role_heartbeat_record(role="cron")
