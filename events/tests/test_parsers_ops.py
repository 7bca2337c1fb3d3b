"""The ops parser: actions ops appends to the log (events/parsers/ops.py), one JSON object per raw row."""

from __future__ import annotations

import pytest

from events.parsers import ParseError, parser_version
from events.tests.parsing import RECEIVED_AT, only_event, parse_json, utc

ACK = {
    "id": "a1b2", "imei": "861210600000777", "alarm_at": "2026-03-02T06:00:00Z", "alarm_key": "k" * 64,
    "acknowledged_at": "2026-03-02T06:10:00Z", "acknowledged_by": "achieng", "note": None,
}  # fmt: skip
READING = {
    "id": "c3d4", "plate": "KDA101A", "odometer_km": 12345.6, "read_at": "2026-03-02T07:00:00Z",
    "source": "correction", "recorded_by": "wanjiru", "recorded_at": "2026-03-02T07:05:00Z", "note": "typo",
}  # fmt: skip
ASSIGNMENT = {
    "id": "e5f6", "driver_id": 7, "driver_name": "Baraka", "plate": "KDA101A", "start": "2026-03-02T06:00:00Z",
    "end": None, "assigned_by": "dispatch", "recorded_at": "2026-03-02T05:59:00Z", "note": None,
}  # fmt: skip


def test_it_versions_each_ops_action():
    assert parser_version("ops", "alarm_ack") == "ops/alarm_ack@1"
    assert parser_version("ops", "odometer_reading") == "ops/odometer_reading@1"
    assert parser_version("ops", "driver_assignment") == "ops/driver_assignment@1"


def test_it_dates_an_acknowledgement_at_its_alarm_on_the_alarms_device():
    event = only_event(parse_json("ops", "alarm_ack", ACK))
    assert (event.kind, event.imei, event.occurred_at) == ("alarm_ack", ACK["imei"], utc(2026, 3, 2, 6))
    assert event.payload["alarm_key"] == ACK["alarm_key"]
    assert (event.payload["acknowledged_by"], event.payload["acknowledged_at"]) == ("achieng", "2026-03-02T06:10:00Z")


def test_it_reads_an_odometer_reading_about_a_vehicle_not_a_device():
    event = only_event(parse_json("ops", "odometer_reading", READING))
    assert (event.kind, event.imei, event.occurred_at) == ("odometer_reading", None, utc(2026, 3, 2, 7))
    assert (event.payload["plate"], event.payload["odometer_km"], event.payload["source"]) == (
        "KDA101A", 12345.6, "correction",
    )  # fmt: skip


def test_it_dates_a_driver_assignment_when_it_was_made():
    event = only_event(parse_json("ops", "driver_assignment", ASSIGNMENT))
    assert (event.kind, event.imei, event.occurred_at) == ("driver_assignment", None, utc(2026, 3, 2, 5, 59))
    assert (event.payload["driver_id"], event.payload["start"], event.payload["end"]) == (
        7,
        "2026-03-02T06:00:00Z",
        None,
    )


def test_it_keys_an_action_by_its_id_so_parsing_it_twice_gives_one_event():
    first = only_event(parse_json("ops", "alarm_ack", ACK))
    assert only_event(parse_json("ops", "alarm_ack", ACK, received_at=RECEIVED_AT)).dedup_key == first.dedup_key
    assert only_event(parse_json("ops", "alarm_ack", {**ACK, "id": "other"})).dedup_key != first.dedup_key


@pytest.mark.parametrize(
    ("push_kind", "document", "error"),
    [
        ("odometer_reading", {**READING, "odometer_km": -3}, "odometer_km: negative -3"),
        ("odometer_reading", {**READING, "source": "guess"}, "source"),
        ("driver_assignment", {**ASSIGNMENT, "end": "2026-03-01T00:00:00Z"}, "end: not after start"),
        ("alarm_ack", {k: v for k, v in ACK.items() if k != "alarm_key"}, "alarm_key"),
    ],
)
def test_it_names_the_field_of_a_bad_action(push_kind, document, error):
    result = parse_json("ops", push_kind, document)
    assert result.events == []
    assert len(result.item_errors) == 1
    assert error in result.item_errors[0]


def test_it_refuses_a_body_that_is_not_one_object_and_an_unknown_action():
    with pytest.raises(ParseError, match="one JSON object"):
        parse_json("ops", "alarm_ack", [ACK])
    with pytest.raises(ParseError, match="no ops parser for push_kind 'reboot'"):
        parse_json("ops", "reboot", ACK)
