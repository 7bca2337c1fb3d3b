"""The cron role's SLO jobs: measure every minute, keep the measurement partitions ready."""

from __future__ import annotations

from django.conf import settings
from procrastinate.contrib.django import app

from slo.services import slo_measure_all, slo_partitions_ensure


@app.periodic(cron="* * * * *", periodic_id="slo-measure")
@app.task(name="slo.measure_minute", queue="cron", queueing_lock="slo.measure_minute", pass_context=False)
def measure_minute(timestamp: int) -> None:
    slo_measure_all()


@app.periodic(cron="23 3 * * *", periodic_id="slo-partitions")
@app.task(name="slo.partitions_ensure", queue="cron", queueing_lock="slo.partitions_ensure", pass_context=False)
def partitions_ensure(timestamp: int) -> None:
    slo_partitions_ensure(months_ahead=settings.LOG_PARTITIONS_AHEAD_MONTHS)
