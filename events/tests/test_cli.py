"""Times typed on the command line (reparse, replay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.management import call_command
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


@pytest.mark.parametrize("typed", ["2026-02-30", "2026-02-30T06:00", "2026-11-01T24:30"])
def test_it_refuses_an_impossible_date_naming_it_and_the_accepted_formats(typed):
    with pytest.raises(CommandError) as refused:
        cli_time(typed)
    assert repr(typed) in str(refused.value)
    assert "YYYY-MM-DD" in str(refused.value)


@pytest.mark.parametrize("command", ["reparse", "replay"])
@pytest.mark.parametrize("option", ["--since", "--until"])
def test_it_tells_the_person_at_the_command_line_which_time_it_could_not_read(command, option):
    with pytest.raises(CommandError, match=r"not a valid date or time: '2026-02-30'.*accepted: YYYY-MM-DD"):
        call_command(command, option, "2026-02-30", verbosity=0)
