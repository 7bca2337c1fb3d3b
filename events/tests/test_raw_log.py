"""events_raw is append-only in the database itself: bodies are read-only, rows can't be deleted or truncated."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from events.models import RawEvent, SourceKind


@pytest.fixture
def raw(db):
    return RawEvent.objects.create(source_kind=SourceKind.CSV, push_kind="positions", body=b"imei,time\n")


def _run_guarded(sql: str, params: list | None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL fleet.allow_truncate = 'off'")  # as in production (tests allow it for flush)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # fire the commit-time wake-up trigger of the fixture row
        cursor.execute(sql, params or [])


def _refused(sql: str, params: list | None = None) -> str:
    with pytest.raises(DatabaseError) as refused:
        _run_guarded(sql, params)
    return str(refused.value)


def test_it_refuses_to_update_a_raw_body(raw):
    assert "Cannot update" in _refused("UPDATE events_raw SET body = 'x' WHERE id = %s", [raw.id])
    assert bytes(RawEvent.objects.get(id=raw.id).body) == b"imei,time\n"


def test_it_refuses_to_move_a_raw_row_in_time(raw):
    assert "Cannot update" in _refused("UPDATE events_raw SET received_at = now() - interval '1 year'")


def test_it_lets_the_parser_update_the_status_columns(raw):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE events_raw SET status = 'failed', error = 'boom', parsed_at = now() WHERE id = %s", [raw.id]
        )
    assert RawEvent.objects.get(id=raw.id).status == "failed"


def test_it_refuses_to_delete_raw_rows(raw):
    assert "Cannot delete" in _refused("DELETE FROM events_raw")
    assert RawEvent.objects.filter(id=raw.id).exists()


def test_it_refuses_to_truncate_the_log_or_any_partition(raw):
    assert "append-only" in _refused("TRUNCATE events_raw")
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM events_raw WHERE id = %s", [raw.id])
        partition = cursor.fetchone()[0]
    assert partition.startswith("events_raw_y")
    assert "append-only" in _refused(f'TRUNCATE "{partition}"')
    assert "append-only" in _refused("TRUNCATE events_raw_default")
    assert RawEvent.objects.filter(id=raw.id).exists()


def test_it_guards_partitions_created_later(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT fleet_partition_month('events_raw', 'received_at', '2031-05-01', true)")
        assert cursor.fetchone()[0] == "events_raw_y2031m05"
    assert "append-only" in _refused('TRUNCATE "events_raw_y2031m05"')


def test_it_skips_a_month_whose_rows_already_sit_in_the_default_partition(db):
    RawEvent.objects.create(source_kind="csv", push_kind="positions", body=b"", received_at="2019-03-04T00:00:00Z")
    with connection.cursor() as cursor:
        cursor.execute("SELECT fleet_partition_month('events_raw', 'received_at', '2019-03-01', true)")
        assert cursor.fetchone()[0] is None
        cursor.execute("SELECT fleet_partition_month('events_raw', 'received_at', '2019-04-01', true)")
        assert cursor.fetchone()[0] == "events_raw_y2019m04"
