"""Times typed on the command line (reparse, replay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.management.base import CommandError

from events.cli import cli_time


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T06:30", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
        ("2026-11-01T06:30+03:00", datetime(2026, 11, 1, 6, 30, tzinfo=timezone(timedelta(hours=3)))),
        ("", None),
    ],
)
def test_it_reads_dates_and_times_as_utc_unless_zoned(typed, expected):
    assert cli_time(typed) == expected


def test_it_names_what_it_could_not_read():
    with pytest.raises(CommandError, match="not a date or time: 'yesterday'"):
        cli_time("yesterday")
