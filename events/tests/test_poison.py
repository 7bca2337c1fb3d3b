"""Hostile input cannot jam parsing: text PostgreSQL refuses is cleaned by a documented rule, a row the database
refuses anyway is isolated by bisection and marked failed, the rest of its batch commits."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import psycopg
import pytest
from django.db import connection

from events.models import ParsedEvent, RawEvent
from events.parsers.envelopes import MAX_ITEMS_PER_BODY
from events.poison import Cleaned, error_is_transient, pg_safe
from events.services import raw_events_parse_batch
from events.tests.conftest import IOTHUB_SECRET
from events.tests.parsing import parse_iothub

pytestmark = pytest.mark.django_db

IMEI = "868120246598152"


def gps(i: int, **extra: object) -> dict:
    return {"deviceImei": IMEI, "gpsTime": f"2026-01-13 02:{i // 60:02d}:{i % 60:02d}", "lat": -1.29 + i * 1e-4,
            "lng": 36.82, "gpsSpeed": 30, **extra}  # fmt: skip


def store(source_id: int, push_kind: str, data_list: str) -> int:
    """A raw row exactly as the gateway stores an authenticated push (the data_list text is sent as is)."""
    body = urlencode({"token": IOTHUB_SECRET, "data_list": data_list}).encode()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the work-list trigger fires now, not at commit
        cursor.execute(
            "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body)"
            " VALUES (%s, 'jimi-iothub', %s, 'application/x-www-form-urlencoded', %s) RETURNING id",
            [source_id, push_kind, body],
        )
        return cursor.fetchone()[0]


def test_it_parses_a_push_holding_nul_lone_surrogates_and_infinity(iothub_source):
    # The JSON text itself carries the escapes, as a buggy tracker or an attacker would send them.
    hostile = '[{"deviceImei": "868120246598152", "note": "a\\u0000b", "name": "x\\ud800y", "big": 1e999}]'
    bad = store(iothub_source.id, "pushmystery", hostile)
    good = [store(iothub_source.id, "pushgps", json.dumps([gps(i)])) for i in range(3)]
    outcome = raw_events_parse_batch(limit=100)
    assert outcome.rows == 4
    statuses = dict(RawEvent.objects.values_list("id", "status"))
    assert [statuses[i] for i in [bad, *good]] == ["parsed"] * 4
    item = ParsedEvent.objects.get(raw_id=bad).payload["item"]
    assert (item["note"], item["name"], item["big"]) == ("ab", "x\ufffdy", None)
    note = RawEvent.objects.get(id=bad).error
    assert "1 NUL character(s) removed" in note
    assert "1 lone surrogate(s) replaced by U+FFFD" in note


def test_it_stores_non_finite_numbers_as_null_and_counts_them():
    cleaned = Cleaned()
    assert pg_safe({"a": [float("inf"), float("nan"), 1.5]}, cleaned) == {"a": [None, None, 1.5]}
    assert cleaned.non_finite == 2


def test_it_isolates_a_row_the_database_refuses_and_commits_the_rest(iothub_source):
    # A refusal no cleaning rule foresees: the database itself says no to one row's events.
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE events_parsed ADD CONSTRAINT test_refuse_marked"
            " CHECK (payload->>'lat' IS DISTINCT FROM '-1.2') NOT VALID"
        )
    ids = [store(iothub_source.id, "pushgps", json.dumps([gps(i)])) for i in range(40)]
    poison = store(iothub_source.id, "pushgps", json.dumps([gps(50, lat=-1.2)]))
    ids += [store(iothub_source.id, "pushgps", json.dumps([gps(i)])) for i in range(60, 100)]
    outcome = raw_events_parse_batch(limit=500)
    assert (outcome.rows, outcome.failed, outcome.events) == (81, 1, 80)
    assert set(RawEvent.objects.filter(id__in=ids).values_list("status", flat=True)) == {"parsed"}
    refused = RawEvent.objects.get(id=poison)
    assert refused.status == "failed"
    assert "the database refused this row's events" in refused.error
    assert "test_refuse_marked" in refused.error
    assert ParsedEvent.objects.count() == 80
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events_raw_pending")
        assert cursor.fetchone()[0] == 0


def test_it_reparses_a_failed_row_once_the_cause_is_gone(iothub_source):
    from events.services import raw_rows_fetch, raw_rows_parse

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE events_parsed ADD CONSTRAINT test_refuse_all CHECK (false) NOT VALID")
    raw_id = store(iothub_source.id, "pushgps", json.dumps([gps(1)]))
    raw_events_parse_batch(limit=10)
    assert RawEvent.objects.get(id=raw_id).status == "failed"
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE events_parsed DROP CONSTRAINT test_refuse_all")
    row = RawEvent.objects.get(id=raw_id)
    raw_rows_parse(raw_rows_fetch(ids=[row.id], received=[row.received_at]), replace=True)
    assert (RawEvent.objects.get(id=raw_id).status, ParsedEvent.objects.filter(raw_id=raw_id).count()) == ("parsed", 1)


@pytest.mark.parametrize(
    ("data_list", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('[{"lat": ' + "9" * 5000 + "}]", "number too long"),
    ],
)
def test_it_refuses_bodies_no_decoder_should_hold_with_a_clear_error(data_list, message):
    from events.parsers import ParseError

    with pytest.raises(ParseError, match=message):
        parse_iothub("pushgps", data_list)


def test_it_parses_at_most_the_documented_number_of_items_from_one_body():
    result = parse_iothub("pushgps", [gps(i % 3600) for i in range(MAX_ITEMS_PER_BODY + 5)])
    assert len(result.events) == MAX_ITEMS_PER_BODY
    assert result.item_errors == [
        f"items {MAX_ITEMS_PER_BODY}-{MAX_ITEMS_PER_BODY + 4}: not parsed, a body holds at most 10000 items"
    ]


def test_it_keeps_valid_text_as_it_is():
    cleaned = Cleaned()
    value = {"name": "Jane Wanjirũ 🚚", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    assert pg_safe(value, cleaned) == value
    assert not cleaned


def test_it_tells_a_database_outage_from_bad_data():
    dsn = connection.get_connection_params()
    dsn.pop("cursor_factory", None)
    dsn.pop("context", None)
    with psycopg.connect(**dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as bad_data:
            conn.execute("SELECT 'x'::int")
        assert not error_is_transient(bad_data.value)
        with pytest.raises(psycopg.Error) as bad_json:
            conn.execute("SELECT '\"\\u0000\"'::jsonb")
        assert not error_is_transient(bad_json.value)
    with psycopg.connect(**dsn, autocommit=True) as victim, psycopg.connect(**dsn, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
        with pytest.raises(psycopg.Error) as gone:
            victim.execute("SELECT 1")
        assert error_is_transient(gone.value)
