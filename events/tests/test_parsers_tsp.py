"""TrackSolid Pro push (msgType + data), built from Jimi's documented alarm push example (docs/jimi.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from events.parsers import ParseError, parse_raw, parser_version
from events.tests.parsing import FORM, RECEIVED_AT, only_event, parse_tsp, tsp_body, utc

ALARM = "jimi.push.device.alarm"
RAW = "jimi.open.instruction.raw.receive"
S5_ALARM = {
    "imei": "868120145233604",
    "deviceName": "868120145233604",
    "alarmType": "2",
    "alarmName": "Power off alarm",
    "lat": 40.65615416521587,
    "lng": 109.89894039833524,
    "alarmTime": "2017-05-08 12:00:00",
}
S5_PLATFORM_ALARM = {
    "imei": "865478070069424",
    "deviceName": "TEST-WEBHOOK-123",
    "alarmType": "stayAlertOn",
    "alarmName": "Idling Alert",
    "lat": "1.050411",
    "lng": "117.682666",
    "alarmTime": "2026-01-13 02:00:00",
}


def test_it_parses_a_device_alarm_push():
    event = only_event(parse_tsp(ALARM, S5_ALARM))

    assert event.kind == "alarm"
    assert event.imei == "868120145233604"
    assert event.occurred_at == utc(2017, 5, 8, 12, 0, 0)
    assert event.payload == {
        "code": "2",
        "name": "Power off alarm",
        "normalised_name": "power_cut_off_alert",
        "severity": "critical",
        "lat": 40.65615416521587,
        "lng": 109.89894039833524,
        "speed_kmh": None,
        "msg_class": None,
        "alarm_time": "2017-05-08T12:00:00Z",
        "gate_time": None,
        "cleared": False,
        "extra": {"deviceName": "868120145233604"},
    }


def test_it_parses_a_platform_alarm_with_string_coordinates():
    payload = only_event(parse_tsp(ALARM, S5_PLATFORM_ALARM)).payload

    assert (payload["code"], payload["name"], payload["normalised_name"]) == (
        "stayAlertOn",
        "Idling Alert",
        "idling_alert",
    )
    assert (payload["lat"], payload["lng"]) == (1.050411, 117.682666)
    assert payload["severity"] == "warning"


@pytest.mark.parametrize(
    ("alarm_type", "alarm_name", "normalised"),
    [
        ("ACC_ON", None, "acc_on"),
        ("ACC_OFF", None, "acc_off"),
        ("1002", "ACC On", "acc_on"),
        ("1001", "ACC Off", "acc_off"),
    ],
)
def test_it_normalises_both_acc_alarm_spellings(alarm_type, alarm_name, normalised):
    data = {**S5_ALARM, "alarmType": alarm_type, "alarmName": alarm_name}

    payload = only_event(parse_tsp(ALARM, data)).payload

    assert payload["normalised_name"] == normalised
    assert payload["name"] in ("ACC On", "ACC Off")
    assert payload["severity"] == "info"


def test_it_names_an_alarm_from_the_appendix_when_the_push_gives_no_name():
    data = {key: value for key, value in S5_ALARM.items() if key != "alarmName"} | {"alarmType": 45}

    payload = only_event(parse_tsp(ALARM, data)).payload

    assert (payload["code"], payload["name"], payload["severity"]) == ("45", "Vehicle Turn Over", "critical")


def test_it_keeps_an_alarm_with_an_unknown_code():
    payload = only_event(parse_tsp(ALARM, {**S5_ALARM, "alarmType": "9999", "alarmName": None})).payload

    assert (payload["code"], payload["name"], payload["normalised_name"]) == ("9999", None, "alarm_9999")
    assert payload["severity"] == "warning"


def test_it_reads_speed_when_a_push_carries_one():
    assert only_event(parse_tsp(ALARM, {**S5_ALARM, "speed": "57"})).payload["speed_kmh"] == 57.0


def test_it_requires_alarm_time():
    data = {key: value for key, value in S5_ALARM.items() if key != "alarmTime"}

    result = parse_tsp(ALARM, data)

    assert result.events == []
    assert result.item_errors == ["item 0: alarmTime: missing"]


def test_it_turns_raw_device_data_into_device_meta():
    event = only_event(parse_tsp(RAW, {"imei": "868120145233604", "deviceName": "VL802", "raw_data": "7878 0D01"}))

    assert event.kind == "device_meta"
    assert event.occurred_at == RECEIVED_AT  # no device time in this push
    assert event.payload == {"meta_type": "raw_data", "value": "78780D01", "extra": {"deviceName": "VL802"}}


def test_it_gives_a_raw_data_push_received_twice_the_same_key():
    data = {"imei": "868120145233604", "raw_data": "78780D01"}

    first = only_event(parse_tsp(RAW, data))
    again = only_event(parse_tsp(RAW, data, received_at=RECEIVED_AT + timedelta(minutes=5)))

    assert first.dedup_key == again.dedup_key


def test_it_reports_raw_data_that_is_not_hex():
    result = parse_tsp(RAW, {"imei": "868120145233604", "raw_data": "zz"})

    assert result.item_errors == ["item 0: raw_data: not a hex string"]


def test_it_turns_an_unknown_msg_type_into_an_unsupported_event():
    event = only_event(parse_tsp("jimi.push.device.future", {"imei": "868120145233604", "x": 1}))

    assert event.kind == "unsupported"
    assert event.imei == "868120145233604"
    assert event.payload == {"push_kind": "jimi.push.device.future", "item": {"imei": "868120145233604", "x": 1}}
    assert parser_version("jimi-tsp", "jimi.push.device.future") == "jimi-tsp/jimi.push.device.future@0"


def test_it_versions_each_msg_type():
    assert parser_version("jimi-tsp", ALARM) == "jimi-tsp/jimi.push.device.alarm@1"
    assert parser_version("jimi-tsp", RAW) == "jimi-tsp/jimi.open.instruction.raw.receive@1"


def test_it_refuses_data_that_is_not_json():
    with pytest.raises(ParseError, match="data is not valid JSON"):
        parse_tsp(ALARM, "{imei: 1")


def test_it_refuses_a_form_without_data():
    with pytest.raises(ParseError, match="no data field"):
        parse_raw(
            source_kind="jimi-tsp",
            push_kind=ALARM,
            content_type=FORM,
            body=b"msgType=" + ALARM.encode(),
            received_at=RECEIVED_AT,
        )


def test_it_refuses_data_that_is_a_json_string():
    with pytest.raises(ParseError, match="expected an array or an object"):
        parse_raw(
            source_kind="jimi-tsp",
            push_kind=ALARM,
            content_type=FORM,
            body=tsp_body(ALARM, '"hello"'),
            received_at=RECEIVED_AT,
        )
