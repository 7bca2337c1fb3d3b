"""Jobs of the ops layer. Thin: each calls a service."""

from __future__ import annotations

from procrastinate.contrib.django import app

from ops.automations import alarm_tickets_sync, automations_run
from ops.weekly_report import weekly_report_send


# Monday 03:00 UTC = 06:00 in Nairobi: last week's reports land before the week's first meeting.
@app.periodic(cron="0 3 * * 1", periodic_id="weekly-report")
@app.task(name="ops.weekly_report", queue="cron", queueing_lock="ops.weekly_report", pass_context=False)
def weekly_report(timestamp: int) -> None:
    weekly_report_send()


ALARM_TICKETS_TASK = "ops.alarm_tickets"


# Every minute: the alarm, maintenance and device-check tickets (ops/automations.py). The safety net of the alarm
# job below, and the only clock of the other two.
@app.periodic(cron="* * * * *", periodic_id="ops-automations")
@app.task(name="ops.automations", queue="cron", queueing_lock="ops.automations", pass_context=False)
def automations(timestamp: int) -> None:
    automations_run()


# Queued by the readings projector's batch that folded alarms (state.signals.alarms_folded → ops/apps.py), so an SOS
# becomes a ticket within the cron role's wake-up, not the next minute.
@app.task(name=ALARM_TICKETS_TASK, queue="cron", queueing_lock=ALARM_TICKETS_TASK, pass_context=False)
def alarm_tickets() -> None:
    alarm_tickets_sync()
