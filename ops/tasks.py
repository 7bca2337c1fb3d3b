"""Jobs of the ops layer. Thin: each calls a service."""

from __future__ import annotations

from procrastinate.contrib.django import app

from ops.weekly_report import weekly_report_send


# Monday 03:00 UTC = 06:00 in Nairobi: last week's reports land before the week's first meeting.
@app.periodic(cron="0 3 * * 1", periodic_id="weekly-report")
@app.task(name="ops.weekly_report", queue="cron", queueing_lock="ops.weekly_report", pass_context=False)
def weekly_report(timestamp: int) -> None:
    weekly_report_send()
