"""CSV position imports (source csv, push_kind positions)."""

from __future__ import annotations

import pytest

from events.parsers import ParseError, parse_raw, parser_version
from events.tests.parsing import RECEIVED_AT, only_event, utc

HEADER = "imei,time,lat,lon,speed,heading,ignition\n"


def parse_csv(text: str, push_kind: str = "positions"):
    return parse_raw(
        source_kind="csv", push_kind=push_kind, content_type="text/csv", body=text.encode(), received_at=RECEIVED_AT
    )


def test_it_parses_a_csv_row_like_a_pushed_fix():
    event = only_event(parse_csv(HEADER + "868120246598152,2026-01-13 02:24:37,-1.2921,36.8219,42.5,90,1\n"))

    assert event.kind == "position_fix"
    assert event.occurred_at == utc(2026, 1, 13, 2, 24, 37)
    assert event.payload == {
        "lat": -1.2921,
        "lng": 36.8219,
        "speed_kmh": 42.5,
        "heading": 90.0,
        "satellites": None,
        "ignition": True,
        "position_type": "gps",
        "retransmitted": False,
        "gate_time": None,
        "altitude_m": None,
        "odometer_m": None,
        "battery_pct": None,
        "extra": {},
    }


def test_it_reports_a_bad_row_with_its_line_and_parses_the_rest():
    text = (
        HEADER + "868120246598152,2026-01-13T02:24:37Z,abc,36.8,,,\n868120246598152,2026-01-13T02:25:37Z,-1.3,36.8,,,\n"
    )

    result = parse_csv(text)

    assert len(result.events) == 1
    assert result.item_errors == ["item 0 (line 2): lat: not a number 'abc'"]


def test_it_keeps_extra_columns_and_strips_a_byte_order_mark():
    event = only_event(parse_csv("\ufeff" + HEADER.rstrip() + ",driver\n868120246598152,1768271077,0,0,0,0,0,Jane\n"))

    assert event.payload["extra"] == {"driver": "Jane"}
    assert event.payload["ignition"] is False


def test_it_refuses_a_csv_without_the_expected_header():
    with pytest.raises(ParseError, match="lacks column"):
        parse_csv("imei,when,lat\n868120246598152,x,1\n")


def test_it_refuses_an_unknown_csv_kind():
    with pytest.raises(ParseError, match="no csv parser"):
        parse_csv(HEADER, push_kind="trips")
    assert parser_version("csv", "positions") == "csv/positions@1"
