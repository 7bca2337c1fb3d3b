"""What the log's commands share: reading a time a person typed."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import CommandError
from django.utils import dateparse, timezone

ACCEPTED_FORMATS = "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC) or YYYY-MM-DDTHH:MM[:SS]+HH:MM"


def cli_time(value: str | None) -> datetime | None:
    """`2026-11-01`, `2026-11-01T06:00`, `2026-11-01T06:00+03:00` → an aware datetime; no zone means UTC.

    Anything else, including a well-formed but impossible date (`2026-02-30`), is a CommandError that names the
    value and the formats accepted."""
    if not value:
        return None
    try:
        parsed = dateparse.parse_datetime(value)
        if parsed is None:
            day = dateparse.parse_date(value)
            if day is None:
                raise CommandError(f"not a date or time: {value!r} (accepted: {ACCEPTED_FORMATS})")
            parsed = datetime(day.year, day.month, day.day)
    except ValueError as exc:
        raise CommandError(f"not a valid date or time: {value!r}: {exc} (accepted: {ACCEPTED_FORMATS})") from exc
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
