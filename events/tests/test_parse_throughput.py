"""What the parse path's fast paths must never change, and how a backlog is shared out between worker slots."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from events.models import ParsedEvent, RawEvent
from events.parsers.base import KINDS, dedup_key
from events.services import PARSE_TASK, raw_events_drain
from events.tests.conftest import IOTHUB_SECRET


def reference_key(kind: str, imei: str | None, device_time: datetime | None) -> str:
    """The key as stored since the first parser: sha256 of the json.dumps text (never to change)."""
    import hashlib

    material = [kind, imei, device_time.astimezone(UTC).isoformat() if device_time else None]
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def test_a_fix_keeps_the_key_it_was_stored_under():
    # Deduplication against every event already stored rests on the key's exact bytes.
    at = datetime(2026, 1, 13, 2, 24, 37, tzinfo=UTC)
    assert dedup_key("position_fix", "868120246598152", at) == (
        "692108e5cac5f7378fc0c9b5f7365c85c971a7fe661fcc916a1d8c7dcca97735"
    )


@settings(max_examples=500, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    imei=st.one_of(st.none(), st.from_regex(r"\A\d{14,17}\Z"), st.text(max_size=20)),
    device_time=st.one_of(
        st.none(),
        st.datetimes(
            min_value=datetime(1971, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-7, minutes=-30))]),
        ),
    ),
)
def test_the_fast_key_is_the_key_json_dumps_gives(kind, imei, device_time):
    assert dedup_key(kind, imei, device_time) == reference_key(kind, imei, device_time)


def _store(source_id: int, n: int) -> None:
    with connection.cursor() as cursor:
        for i in range(n):
            fix = {"deviceImei": "868120246598152", "gpsTime": f"2026-01-13 02:00:{i:02d}", "lat": -1.29, "lng": 36.82}
            body = urlencode({"token": IOTHUB_SECRET, "data_list": json.dumps([fix])}).encode()
            cursor.execute(
                "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body)"
                " VALUES (%s, 'jimi-iothub', 'pushgps', 'application/x-www-form-urlencoded', %s)",
                [source_id, body],
            )
        # The worker has taken the job these rows queued: it is running (this drain), no longer waiting.
        cursor.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE task_name = %s", [PARSE_TASK])


def _waiting_parse_jobs() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s AND status = 'todo'", [PARSE_TASK])
        waiting: int = cursor.fetchone()[0]
        return waiting


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("rows", "helpers"), [(12, 1), (4, 0)])
def test_a_parse_job_that_finds_a_backlog_asks_another_slot_to_help(iothub_source, rows, helpers):
    _store(iothub_source.id, rows)
    outcome = raw_events_drain(batch_size=5, wake_task=PARSE_TASK, budget_s=60)
    assert outcome.rows == rows
    # More than a batch waited: one more parse job waits for a free worker slot (which would drain beside this
    # one); less than a batch leaves nothing behind.
    assert _waiting_parse_jobs() == helpers


@pytest.mark.django_db
def test_an_integer_beyond_64_bits_is_stored_exactly(iothub_source):
    # orjson refuses it; the batch takes the json module's path and the number survives digit for digit.
    big = 123456789012345678901234567890
    _store_one = {"deviceImei": "868120246598152", "gpsTime": "2026-01-13 02:00:00", "lat": 1, "lng": 2, "odo": big}
    body = urlencode({"token": IOTHUB_SECRET, "data_list": json.dumps([_store_one])}).encode()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body)"
            " VALUES (%s, 'jimi-iothub', 'pushgps', 'application/x-www-form-urlencoded', %s)",
            [iothub_source.id, body],
        )
    raw_events_drain(batch_size=10, budget_s=60)
    assert RawEvent.objects.get().status == "parsed"
    assert ParsedEvent.objects.get().payload["extra"]["odo"] == big
