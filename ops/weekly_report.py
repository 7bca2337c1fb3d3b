"""The weekly e-mailed report: last week's utilisation by cost centre and daily mileage, as XLSX attachments."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from ops.reports import REPORTS, ReportFilters, report_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WEEKLY_REPORTS = ("utilisation", "daily_mileage", "alarms")


def last_week(now: datetime) -> tuple[datetime, datetime]:
    """Monday 00:00 to Monday 00:00 of the week before `now`, in DISPLAY_TIME_ZONE."""
    local = now.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE))
    this_monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return this_monday - timedelta(days=7), this_monday


def weekly_report_send(*, now: datetime | None = None) -> EmailMessage | None:
    if not settings.REPORT_EMAILS:
        return None
    since, until = last_week(now or timezone.now())
    filters = ReportFilters(since=since, until=until)
    message = EmailMessage(
        subject=f"Fleet weekly report {since:%Y-%m-%d} to {until - timedelta(days=1):%Y-%m-%d}",
        body=(
            f"Attached: {', '.join(REPORTS[n].title for n in WEEKLY_REPORTS)} for the week from {since:%A %d %B %Y}"
            f" ({settings.DISPLAY_TIME_ZONE})."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=settings.REPORT_EMAILS,
    )
    for name in WEEKLY_REPORTS:
        with report_xlsx(REPORTS[name], filters) as xlsx:
            message.attach(f"{name}-{since:%Y-%m-%d}.xlsx", xlsx.read(), XLSX)
    message.send()
    return message
