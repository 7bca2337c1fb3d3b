"""IoT Hub pushes (token + data_list), built from Jimi's documented IoT Hub examples (docs/jimi.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from events.parsers import KINDS, ParseError, parse_raw, parser_version
from events.tests.parsing import FORM, PUSH_TOKEN, RECEIVED_AT, iothub_body, only_event, parse_iothub, utc

IMEI = "868120246598152"

S8_FULL_FIX = {
    "deviceImei": IMEI,
    "gpsTime": "2026-01-13 02:24:37",
    "gateTime": "2026-01-13 02:24:39",
    "satelliteNum": 11,
    "lat": 22.576539,
    "lng": 113.942885,
    "gpsMode": 0,
    "gpsSpeed": 42,
    "direction": 187,
    "acc": 1,
    "postType": 1,
    "altitude": 35,
    "distance": 1523400,
}
S7_FIX = {
    "deviceImei": IMEI,
    "gpsTime": "2026-01-13 02:24:37",
    "lng": 113.942885,
    "lat": 22.576539,
    "gpsSpeed": 0,
    "satelliteNum": 7,
    "acc": 1,
}
S7_HEARTBEAT = {"deviceImei": IMEI, "gateTime": "2026-01-13 02:24:37", "powerLevel": 90, "gsmSign": 80}
S7_ALARM: dict[str, Any] = {
    "type": "DEVICE",
    "msgClass": 0,
    "imei": "752533678900242",
    "msg": {"alertType": 1, "lng": 113.943102, "lat": 22.576649, "gpsSpeed": 0},
    "gateTime": "2026-01-07 11:06:05",
}


def test_it_parses_a_full_pushgps_fix():
    event = only_event(parse_iothub("pushgps", [S8_FULL_FIX]))

    assert event.kind == "position_fix"
    assert event.imei == IMEI
    assert event.occurred_at == utc(2026, 1, 13, 2, 24, 37)
    assert event.payload == {
        "lat": 22.576539,
        "lng": 113.942885,
        "speed_kmh": 42.0,
        "heading": 187.0,
        "satellites": 11,
        "ignition": True,
        "position_type": "gps",
        "retransmitted": False,
        "gate_time": "2026-01-13T02:24:39Z",
        "altitude_m": 35.0,
        "odometer_m": 1523400.0,
        "battery_pct": None,
        "extra": {},
    }


def test_it_parses_the_minimal_pushgps_sample():
    payload = only_event(parse_iothub("pushgps", [S7_FIX])).payload

    assert (payload["speed_kmh"], payload["satellites"], payload["ignition"]) == (0.0, 7, True)
    assert (payload["heading"], payload["position_type"], payload["gate_time"]) == (None, None, None)


def test_it_keeps_unmapped_gps_fields_in_extra():
    item = {**S8_FULL_FIX, "sosStatus": 0, "doorStatus": 1, "transparentData": "0A0B", "temperature": 21.5}

    payload = only_event(parse_iothub("pushgps", [item])).payload

    assert payload["extra"] == {"sosStatus": 0, "doorStatus": 1, "transparentData": "0A0B", "temperature": 21.5}


def test_it_accepts_imei_spelled_imei_instead_of_device_imei():
    item = {key: value for key, value in S7_FIX.items() if key != "deviceImei"} | {"imei": IMEI}

    assert only_event(parse_iothub("pushgps", [item])).imei == IMEI


def test_it_parses_a_heartbeat():
    event = only_event(parse_iothub("pushhb", [S7_HEARTBEAT]))

    assert event.kind == "heartbeat"
    assert event.occurred_at == utc(2026, 1, 13, 2, 24, 37)
    assert event.payload["power_level"] == 90
    assert event.payload["gsm_signal"] == 80


def test_it_reads_heartbeat_flags():
    item = {**S7_HEARTBEAT, "acc": 0, "gpsPos": 1, "powerStatus": 1, "fortify": "0", "oilEle": 1, "remoteLock": 0}

    payload = only_event(parse_iothub("pushhb", [item])).payload

    assert payload["ignition"] is False
    assert payload["gps_positioned"] is True
    assert payload["charging"] is True
    assert payload["armed"] is False
    assert payload["oil_cut"] is True
    assert payload["extra"] == {"remoteLock": 0}


def test_it_parses_an_iothub_alarm():
    event = only_event(parse_iothub("pushalarm", [S7_ALARM]))

    assert event.kind == "alarm"
    assert event.imei == "752533678900242"
    assert event.occurred_at == utc(2026, 1, 7, 11, 6, 5)
    assert event.payload["code"] == "1"
    assert event.payload["name"] == "SOS alert"
    assert event.payload["normalised_name"] == "sos_alert"
    assert event.payload["severity"] == "critical"
    assert event.payload["msg_class"] == 0
    assert (event.payload["lat"], event.payload["lng"], event.payload["speed_kmh"]) == (22.576649, 113.943102, 0.0)
    assert event.payload["cleared"] is False


def test_it_takes_the_alarm_time_from_msg_before_gate_time():
    item = {**S7_ALARM, "msg": {**S7_ALARM["msg"], "alarmTime": "2026-01-07 11:05:00", "fenceId": 7}}

    event = only_event(parse_iothub("pushalarm", [item]))

    assert event.occurred_at == utc(2026, 1, 7, 11, 5, 0)
    assert event.payload["alarm_time"] == "2026-01-07T11:05:00Z"
    assert event.payload["gate_time"] == "2026-01-07T11:06:05Z"
    assert event.payload["extra"] == {"type": "DEVICE", "msg": {"fenceId": 7}}


def test_it_finds_the_alarm_imei_inside_msg():
    item = {
        "type": "DEVICE",
        "msgClass": 0,
        "msg": {"deviceImei": IMEI, "alertType": "3"},
        "gateTime": "2026-01-07 11:06:05",
    }

    event = only_event(parse_iothub("pushalarm", [item]))

    assert event.imei == IMEI
    assert event.payload["name"] == "Vibration alert"
    assert event.payload["severity"] == "warning"


def test_it_marks_a_removed_alarm_as_cleared():
    item = {**S7_ALARM, "msg": {"alertType": "removeAlarmType", "removeAlarmType": "1"}}

    payload = only_event(parse_iothub("pushalarm", [item])).payload

    assert payload["cleared"] is True
    assert payload["code"] == "1"
    assert payload["severity"] == "info"


def test_it_does_not_apply_the_tsp_code_table_to_jtt808_alarms():
    item = {**S7_ALARM, "msgClass": 1, "msg": {"alertType": 256}}

    payload = only_event(parse_iothub("pushalarm", [item])).payload

    assert payload["name"] is None
    assert payload["normalised_name"] == "alarm_256"


def test_it_turns_iccid_updates_into_device_meta():
    item = {"type": "ICCID", "imei": IMEI, "iccid": "898608401024C0669758", "gateTime": "2026-01-07 11:06:05"}

    event = only_event(parse_iothub("pushalarm", [item]))

    assert event.kind == "device_meta"
    assert event.occurred_at == utc(2026, 1, 7, 11, 6, 5)
    assert event.payload == {"meta_type": "iccid", "value": "898608401024C0669758", "extra": {}}


def test_it_turns_vin_updates_into_device_meta():
    item = {"type": "VIN", "deviceImei": IMEI, "msg": {"vin": "JTDBR32E720123456"}}

    event = only_event(parse_iothub("pushalarm", [item]))

    assert event.payload["meta_type"] == "vin"
    assert event.payload["value"] == "JTDBR32E720123456"
    assert event.occurred_at == RECEIVED_AT


@pytest.mark.parametrize(("device_type", "event_name"), [("LOGIN", "login"), ("LOGOUT", "logout")])
def test_it_parses_login_and_logout_events(device_type, event_name):
    item = {"deviceImei": IMEI, "type": device_type, "gateTime": "2026-01-13 02:20:11", "timezone": "GMT+08:00"}

    event = only_event(parse_iothub("pushevent", [item]))

    assert event.kind == "device_event"
    assert event.occurred_at == utc(2026, 1, 13, 2, 20, 11)
    assert event.payload == {"event": event_name, "timezone": "GMT+08:00", "extra": {}}


def test_it_gives_login_and_logout_at_the_same_second_different_keys():
    login = {"deviceImei": IMEI, "type": "LOGIN", "gateTime": "2026-01-13 02:20:11"}
    logout = {**login, "type": "LOGOUT"}

    events = parse_iothub("pushevent", [login, logout]).events

    assert events[0].dedup_key != events[1].dedup_key


def test_it_reports_an_unknown_device_event_type():
    item = {"deviceImei": IMEI, "type": "SLEEP", "gateTime": "2026-01-13 02:20:11"}

    result = parse_iothub("pushevent", [item])

    assert result.events == []
    assert result.item_errors[0].startswith("item 0: type:")


def test_it_parses_lbs_cells():
    lbs_json = json.dumps({"mcc": 639, "mnc": "2", "cellList": "100,2000,-70;101,2001,-81;", "wifi": "aa:bb,-50"})
    item = {"deviceImei": IMEI, "gateTime": "2026-01-13 02:20:11", "lbsJson": lbs_json, "postType": "LBS"}

    event = only_event(parse_iothub("pushlbs", [item]))

    assert event.kind == "lbs"
    assert event.payload == {
        "post_type": "lbs",
        "mcc": 639,
        "mnc": 2,
        "cells": [{"lac": 100, "cell_id": 2000, "rssi": -70}, {"lac": 101, "cell_id": 2001, "rssi": -81}],
        "extra": {"lbsJson": {"wifi": "aa:bb,-50"}},
    }


def test_it_reports_an_lbs_cell_list_it_cannot_read():
    item = {"deviceImei": IMEI, "gateTime": "2026-01-13 02:20:11", "lbsJson": '{"cellList": "100;x"}'}

    result = parse_iothub("pushlbs", [item])

    assert result.events == []
    assert "lbsJson.cellList" in result.item_errors[0]


def test_it_parses_obd_readings_defensively():
    item = {
        "deviceImei": IMEI,
        "dataReportTime": "2024-05-09 1:27:23",
        "odometerReading": "1523.4",
        "remainingFuelPercentage": "55",
        "coolantTemperature": 88,
        "vehicleBatterVoltage": "118",
        "currentRPM": "2100",
        "currentSpeed": "63",
        "vin": "JTDBR32E720123456",
        "unknownThing": "x",
    }

    event = only_event(parse_iothub("pushobd", [item]))

    assert event.kind == "obd"
    assert event.occurred_at == utc(2024, 5, 9, 1, 27, 23)
    payload = event.payload
    assert payload["record"] == "data"
    assert (payload["odometer_km"], payload["remaining_fuel_pct"], payload["coolant_temp_c"]) == (1523.4, 55.0, 88.0)
    assert (payload["battery_voltage_raw"], payload["rpm"], payload["speed_kmh"]) == (118.0, 2100.0, 63.0)
    assert payload["vin"] == "JTDBR32E720123456"
    assert payload["extra"] == item  # undocumented push: every field kept


def test_it_keeps_an_obd_reading_whose_guessed_field_is_unreadable():
    item = {"deviceImei": IMEI, "gateTime": "2026-01-13 02:20:11", "currentRPM": "n/a"}

    payload = only_event(parse_iothub("pushobd", [item])).payload

    assert payload["rpm"] is None
    assert payload["extra"]["currentRPM"] == "n/a"


def test_it_parses_fault_info_as_obd_faults():
    item = {"imei": IMEI, "eventTime": "2026-01-13 02:20:11", "faultCode": "P1502", "faultDetail": "Idle control"}

    event = only_event(parse_iothub("pushfaultinfo", [item]))

    assert event.kind == "obd"
    assert event.payload["record"] == "fault"
    assert (event.payload["fault_code"], event.payload["fault_detail"]) == ("P1502", "Idle control")


def test_it_parses_temperature_and_humidity():
    item = {"deviceImei": IMEI, "gateTime": "2026-01-13 02:20:11", "temperature": "-18.5", "humidity": "40%"}

    event = only_event(parse_iothub("pushtem", [item]))

    assert event.kind == "temperature"
    assert (event.payload["temperature_c"], event.payload["humidity_pct"]) == (-18.5, 40.0)


def test_it_parses_a_pushed_trip_report():
    item = {
        "deviceImei": IMEI,
        "startTime": "2026-01-13 01:00:00",
        "endTime": "2026-01-13 01:45:00",
        "gateTime": "2026-01-13 01:45:05",
        "startLat": "-1.28",
        "startLng": "36.82",
        "distance": "12.4",
    }

    event = only_event(parse_iothub("pushtripreport", [item]))

    assert event.kind == "trip_report"
    assert event.occurred_at == utc(2026, 1, 13, 1, 0, 0)
    assert event.payload["end_time"] == "2026-01-13T01:45:00Z"
    assert (event.payload["start_lat"], event.payload["distance"]) == (-1.28, 12.4)


def test_it_requires_imei_and_time_on_undocumented_pushes():
    result = parse_iothub("pushtem", [{"deviceImei": IMEI, "temperature": 4}, {"gateTime": "2026-01-13 02:20:11"}])

    assert result.events == []
    assert result.item_errors == ["item 0: gpsTime: missing", "item 1: deviceImei: missing"]


def test_it_turns_unknown_push_paths_into_unsupported_events():
    item = {"deviceImei": IMEI, "fileName": "a.jpg;b.jpg", "gateTime": "2026-01-13 02:20:11", "result": "SUCCESS"}

    event = only_event(parse_iothub("pushfileupload", [item]))

    assert event.kind == "unsupported"
    assert event.imei == IMEI
    assert event.occurred_at == utc(2026, 1, 13, 2, 20, 11)
    assert event.payload == {"push_kind": "pushfileupload", "item": item}
    assert parser_version("jimi-iothub", "pushfileupload") == "jimi-iothub/pushfileupload@0"


def test_it_keeps_every_item_of_an_unknown_push_even_without_imei_or_time():
    result = parse_iothub("pushresourcelist", [{"files": []}, 42])

    assert [event.imei for event in result.events] == [None, None]
    assert [event.occurred_at for event in result.events] == [RECEIVED_AT, RECEIVED_AT]
    assert result.events[1].payload["item"] == 42


def test_it_keeps_a_plain_form_push_on_an_unknown_path_without_its_token():
    body = f"token={PUSH_TOKEN}&msgType=2&data=%7B%22_imei%22%3A%22{IMEI}%22%7D".encode()

    result = parse_raw(
        source_kind="jimi-iothub",
        push_kind="pushInstructResponse",
        content_type=FORM,
        body=body,
        received_at=RECEIVED_AT,
    )

    event = only_event(result)
    assert event.payload["item"] == {"msgType": "2", "data": f'{{"_imei":"{IMEI}"}}'}


def test_it_never_puts_the_token_in_payloads_or_errors():
    items = [{**S7_FIX, "token": PUSH_TOKEN}, {"deviceImei": IMEI, "lat": "abc"}]

    result = parse_iothub("pushgps", items)

    assert len(result.events) == 1
    assert len(result.item_errors) == 1
    assert PUSH_TOKEN not in json.dumps([event.payload for event in result.events]) + "".join(result.item_errors)
    with pytest.raises(ParseError) as raised:
        parse_raw(
            source_kind="jimi-iothub",
            push_kind="pushgps",
            content_type=FORM,
            body=f"token={PUSH_TOKEN}".encode(),
            received_at=RECEIVED_AT,
        )
    assert PUSH_TOKEN not in str(raised.value)
    assert "data_list" in str(raised.value)


def test_it_treats_a_json_object_body_as_one_item():
    result = parse_raw(
        source_kind="jimi-iothub",
        push_kind="pushgps",
        content_type="application/json",
        body=json.dumps(S7_FIX).encode(),
        received_at=RECEIVED_AT,
    )

    assert only_event(result).kind == "position_fix"


def test_it_reads_a_form_body_whatever_its_content_type_says():
    result = parse_raw(
        source_kind="jimi-iothub",
        push_kind="pushgps",
        content_type="application/json",
        body=iothub_body([S7_FIX]),
        received_at=RECEIVED_AT,
    )

    assert only_event(result).kind == "position_fix"


def test_it_looks_up_push_paths_as_stored_from_the_url():
    result = parse_raw(
        source_kind="jimi-iothub",
        push_kind="/pushgps",
        content_type=FORM,
        body=iothub_body([S7_FIX]),
        received_at=RECEIVED_AT,
    )

    assert only_event(result).kind == "position_fix"
    assert parser_version("jimi-iothub", "/pushgps") == "jimi-iothub/pushgps@1"


def test_it_versions_each_push_kind():
    assert parser_version("jimi-iothub", "pushgps") == "jimi-iothub/pushgps@1"
    assert parser_version("jimi-iothub", "pushtem") == "jimi-iothub/pushtem@1"


def test_it_rejects_an_unknown_source_kind():
    with pytest.raises(ParseError, match="unknown source_kind"):
        parse_raw(source_kind="carrier-pigeon", push_kind="x", content_type="", body=b"x", received_at=RECEIVED_AT)


def test_it_refuses_a_naive_received_at():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_raw(
            source_kind="jimi-iothub",
            push_kind="pushgps",
            content_type=FORM,
            body=iothub_body([S7_FIX]),
            received_at=RECEIVED_AT.replace(tzinfo=None),
        )


@pytest.mark.parametrize(
    ("push_kind", "item"),
    [
        ("pushgps", S8_FULL_FIX),
        ("pushhb", S7_HEARTBEAT),
        ("pushalarm", S7_ALARM),
        ("pushevent", {"deviceImei": IMEI, "type": "LOGIN", "gateTime": "2026-01-13 02:20:11"}),
        ("pushoil", {"deviceImei": IMEI, "gateTime": "2026-01-13 02:20:11", "oil": "12.5L"}),
        ("pushunknown", {"deviceImei": IMEI, "x": [1, {"y": None}]}),
    ],
)
def test_it_returns_json_serialisable_payloads_of_known_kinds(push_kind, item):
    event = only_event(parse_iothub(push_kind, [item]))

    assert event.kind in KINDS
    assert json.loads(json.dumps(event.payload)) == event.payload
    assert len(event.dedup_key) == 64
    assert event.occurred_at.utcoffset().total_seconds() == 0
