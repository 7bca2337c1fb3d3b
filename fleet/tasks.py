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


@app.periodic(cron="33 3 * * *", periodic_id="auth-prune")
@app.task(name="fleet.auth_prune", queue="cron", queueing_lock="fleet.auth_prune", pass_context=False)
def auth_prune(timestamp: int) -> None:
    """Expired refresh tokens, old revocations and old rate-limit counters (each login adds rows)."""
    from fleet.auth import auth_tables_prune

    auth_tables_prune()


@app.periodic(cron="* * * * *", periodic_id="jobs-heal")
@app.task(name="fleet.jobs_heal", queue="cron", queueing_lock="fleet.jobs_heal", pass_context=False)
def jobs_heal_stalled(timestamp: int) -> None:
    """Jobs left `doing` by a worker process that died (kill -9, a lost machine) go back in their queue; a role
    that merely lost the database heals its own at once when it reconnects (fleet.roles)."""
    from fleet.roles import jobs_heal

    jobs_heal(queues=[*settings.WORKER_QUEUES, *settings.CRON_QUEUES])
