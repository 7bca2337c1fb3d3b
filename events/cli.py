"""What the log's commands share: reading a time a person typed."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import CommandError
from django.utils import dateparse, timezone


def cli_time(value: str | None) -> datetime | None:
    """`2026-11-01`, `2026-11-01T06:00`, `2026-11-01T06:00+03:00` → an aware datetime; no zone means UTC."""
    if not value:
        return None
    parsed = dateparse.parse_datetime(value)
    if parsed is None:
        day = dateparse.parse_date(value)
        if day is None:
            raise CommandError(f"not a date or time: {value!r}")
        parsed = datetime(day.year, day.month, day.day)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
