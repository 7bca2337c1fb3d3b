"""Every Jimi quirk (Q1-Q12 in docs/jimi.md), one test each, built from Jimi's documented examples."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from events.parsers import ParseError, parse_raw
from events.tests.parsing import (
    FORM,
    RECEIVED_AT,
    iothub_body,
    only_event,
    parse_iothub,
    parse_poll,
    parse_tsp,
    utc,
)

IMEI = "868120246598152"
FIX = {
    "deviceImei": IMEI,
    "gpsTime": "2026-01-13 02:24:37",
    "lng": 113.942885,
    "lat": 22.576539,
    "gpsSpeed": 0,
    "satelliteNum": 7,
    "acc": 1,
}
HEARTBEAT = {"deviceImei": IMEI, "gateTime": "2026-01-13 02:24:37", "powerLevel": 90, "gsmSign": 80}
S2_LOCATION = {
    "imei": "860121060369660",
    "deviceName": "VL802-69660",
    "mcType": "VL802",
    "icon": "other",
    "status": "1",
    "posType": "GPS",
    "lat": 22.576562,
    "lng": 113.943084,
    "hbTime": "2026-03-26 11:25:38",
    "gpsTime": "2026-03-18 10:20:37",
    "accStatus": "1",
    "gpsSignal": "4",
    "gpsNum": "15",
    "speed": "0",
    "direction": "0",
    "powerValue": None,
    "batteryPowerVal": "0.06",
    "electQuantity": "",
    "distance": "-1",
    "temperature": None,
    "trackerOil": "0.00L",
    "currentMileage": "0.6481649691599485",
    "activationFlag": "1",
    "expireFlag": "1",
    "account": "FAETEST",
    "customerName": "FAETEST",
    "iccid": "898608401024C0669758",
    "confidence": None,
}
S4_ALARM_ROW = {
    "deviceName": "ABC-34352",
    "imei": "343503422910345",
    "model": "GT06N",
    "account": "test1234",
    "alertTypeId": "1002",
    "alarmTypeName": "ACC On",
    "alertTime": "2019-03-14 14:02:03",
    "positioningTime": "2019-03-14 14:02:03",
    "lat": 22.577144898887813,
    "lng": 113.91674845964586,
    "speed": "10",
    "geoid": "se8yg081p0qh5vnniqrakr1nr0tdh6a0",
}


def fix(**changes):
    return only_event(parse_iothub("pushgps", [{**FIX, **changes}]))


def location(**changes):
    return only_event(parse_poll("jimi.user.device.location.list", {"code": 0, "result": [{**S2_LOCATION, **changes}]}))


# Q2: numbers as strings and strings as numbers


def test_it_reads_coordinates_given_as_strings_or_numbers():
    assert (fix(lat="1.050411", lng=117.682666).payload["lat"], fix(lat=22.57).payload["lat"]) == (1.050411, 22.57)


def test_it_reads_speed_as_10_or_text_10_or_text_10_point_0_alike():
    events = [fix(gpsSpeed=speed) for speed in ("10", 10, "10.0", 10.0)]

    assert {event.payload["speed_kmh"] for event in events} == {10.0}
    assert len({event.dedup_key for event in events}) == 1


def test_it_reports_wrong_types_and_still_parses_the_other_items():
    result = parse_iothub("pushgps", [FIX, {**FIX, "lat": "abc"}, {**FIX, "gpsTime": "2026-01-13 02:25:00"}])

    assert len(result.events) == 2
    assert result.item_errors == ["item 1: lat: not a number 'abc'"]


def test_it_reads_a_satellite_count_written_as_text():
    assert fix(satelliteNum="11").payload["satellites"] == 11


# Q3: renamed fields


@pytest.mark.parametrize("field", ["electQuantity", "elecQuantity"])
def test_it_reads_battery_from_either_spelling(field):
    row = {key: value for key, value in S2_LOCATION.items() if key != "electQuantity"} | {field: "87"}

    event = only_event(parse_poll("jimi.device.location.get", {"code": 0, "result": [row]}))

    assert event.payload["battery_pct"] == 87.0


def test_it_reads_an_empty_battery_as_unknown():
    assert location(electQuantity="").payload["battery_pct"] is None


@pytest.mark.parametrize("field", ["alertTypeName", "alarmTypeName"])
def test_it_reads_the_alarm_name_from_either_spelling(field):
    row = {key: value for key, value in S4_ALARM_ROW.items() if key != "alarmTypeName"} | {field: "Vibration!"}

    event = only_event(parse_poll("jimi.device.alarm.list", {"code": 0, "result": [row]}))

    assert event.payload["name"] == "Vibration!"


def test_it_reads_the_alarm_code_from_alarm_type_alert_type_id_or_msg_alert_type():
    tsp = only_event(
        parse_tsp("jimi.push.device.alarm", {"imei": IMEI, "alarmType": "3", "alarmTime": "2026-01-13 02:00:00"})
    )
    listed = only_event(
        parse_poll("jimi.device.alarm.list", {"code": 0, "result": [{**S4_ALARM_ROW, "alertTypeId": 3}]})
    )
    hub = only_event(
        parse_iothub("pushalarm", [{"imei": IMEI, "msg": {"alertType": 3}, "gateTime": "2026-01-13 02:00:00"}])
    )

    assert tsp.payload["code"] == listed.payload["code"] == hub.payload["code"] == "3"
    assert tsp.payload["normalised_name"] == listed.payload["normalised_name"] == hub.payload["normalised_name"]


def test_it_gives_the_same_alarm_pushed_and_polled_the_same_key():
    pushed = only_event(
        parse_tsp(
            "jimi.push.device.alarm",
            {"imei": "343503422910345", "alarmType": "1002", "alarmName": "ACC On", "alarmTime": "2019-03-14 14:02:03"},
        )
    )
    polled = only_event(parse_poll("jimi.device.alarm.list", {"code": 0, "result": [S4_ALARM_ROW]}))

    assert pushed.dedup_key == polled.dedup_key


@pytest.mark.parametrize(
    ("acc", "ignition"),
    [(1, True), (0, False), ("1", True), ("0", False), ("ON", True), ("OFF", False), ("on", True), ("", None)],
)
def test_it_reads_acc_in_every_spelling(acc, ignition):
    assert fix(acc=acc).payload["ignition"] is ignition


def test_it_reports_an_acc_value_it_cannot_read():
    result = parse_iothub("pushgps", [{**FIX, "acc": "maybe"}])

    assert result.item_errors == ["item 0: acc: not an on/off value 'maybe'"]


@pytest.mark.parametrize(
    ("code", "expected"), [("ACC_ON", "acc_on"), (1002, "acc_on"), ("ACC_OFF", "acc_off"), ("1001", "acc_off")]
)
def test_it_reads_acc_alarms_as_text_or_number(code, expected):
    event = only_event(
        parse_tsp("jimi.push.device.alarm", {"imei": IMEI, "alarmType": code, "alarmTime": "2026-01-13 02:00:00"})
    )

    assert event.payload["normalised_name"] == expected


@pytest.mark.parametrize(
    ("post_type", "position_type"),
    [
        (1, "gps"),
        (2, "lbs"),
        (3, "wifi"),
        ("1", "gps"),
        ("GPS", "gps"),
        ("WIFI", "wifi"),
        ("BEACON", "beacon"),
        ("", None),
    ],
)
def test_it_reads_position_type_as_number_or_text(post_type, position_type):
    assert fix(postType=post_type).payload["position_type"] == position_type


# Q1, Q12: times


@pytest.mark.parametrize(
    "gps_time",
    [
        "2026-01-13 02:24:37",
        "2026-01-13T02:24:37Z",
        "2026-01-13T02:24:37.000Z",
        "2026-01-13T05:24:37+03:00",
        "2026-01-13 2:24:37",
        1768271077,
        "1768271077",
        1768271077000,
    ],
)
def test_it_reads_every_time_format_as_utc(gps_time):
    assert fix(gpsTime=gps_time).occurred_at == utc(2026, 1, 13, 2, 24, 37)


def test_it_reads_the_unpadded_obd_example_time():
    item = {"deviceImei": IMEI, "dataReportTime": "2024-05-09 1:27:23", "odometerReading": "10"}

    assert only_event(parse_iothub("pushobd", [item])).occurred_at == utc(2024, 5, 9, 1, 27, 23)


def test_it_reads_iso_report_times_with_milliseconds():
    response = {
        "code": 0,
        "result": None,
        "data": {
            "rows": [
                {
                    "imei": "869247060001739",
                    "startTime": "2022-12-10T01:05:33.000Z",
                    "endTime": "2022-12-10T04:17:48.000Z",
                    "durSecond": "11535",
                    "acc": "on",
                }
            ]
        },
    }

    event = only_event(parse_poll("jimi.open.platform.report.parking", response))

    assert event.occurred_at == utc(2022, 12, 10, 1, 5, 33)


@pytest.mark.parametrize("gps_time", ["2099-01-01 00:00:00", "1999-01-01 00:00:00"])
def test_it_keeps_future_and_ancient_times_for_later_quality_checks(gps_time):
    assert fix(gpsTime=gps_time).occurred_at.year in (2099, 1999)


@pytest.mark.parametrize("gps_time", ["yesterday", "2026-13-45 02:24:37", "2026-01-13", ""])
def test_it_reports_a_time_it_cannot_read(gps_time):
    result = parse_iothub("pushgps", [{**FIX, "gpsTime": gps_time}])

    assert result.events == []
    assert result.item_errors[0].startswith("item 0: gpsTime: ")


def test_it_reports_a_missing_time_or_imei():
    no_time = {key: value for key, value in FIX.items() if key != "gpsTime"}
    no_imei = {key: value for key, value in FIX.items() if key != "deviceImei"}

    result = parse_iothub("pushgps", [no_time, no_imei])

    assert result.item_errors == ["item 0: gpsTime: missing", "item 1: deviceImei: missing"]


# Q9: IMEI


@pytest.mark.parametrize("imei", ["86012106036966", "860121060369660", "8780901703130335", "35058319834223421"])
def test_it_accepts_imeis_of_14_to_17_digits(imei):
    assert fix(deviceImei=imei).imei == imei


@pytest.mark.parametrize("imei", ["8601210603696", "860121060369660123", "86012106036966X", "860-121-060-369"])
def test_it_reports_an_imei_of_the_wrong_shape_as_an_item_error(imei):
    result = parse_iothub("pushgps", [{**FIX, "deviceImei": imei}, FIX])

    assert len(result.events) == 1
    assert result.item_errors == [f"item 0: deviceImei: not a 14-17 digit IMEI '{imei}'"]


def test_it_turns_an_imei_sent_as_a_json_number_into_a_string():
    assert fix(deviceImei=868120246598152).imei == "868120246598152"


# Q7: re-transmitted data


def test_it_marks_gps_mode_1_as_retransmitted():
    assert (fix(gpsMode=1).payload["retransmitted"], fix(gpsMode="0").payload["retransmitted"]) == (True, False)


def test_it_dates_a_late_retransmitted_fix_by_gps_time_not_arrival():
    event = only_event(parse_iothub("pushgps", [{**FIX, "gpsMode": 1}], received_at=RECEIVED_AT + timedelta(days=2)))

    assert event.occurred_at == utc(2026, 1, 13, 2, 24, 37)


# Q6: expired devices at 0,0


def test_it_keeps_a_fix_at_lat_lng_zero():
    assert (fix(lat=0, lng=0).payload["lat"], fix(lat=0, lng=0).payload["lng"]) == (0.0, 0.0)
    assert location(lat=0, lng=0, expireFlag="0").payload["lat"] == 0.0


# direction


@pytest.mark.parametrize(
    ("direction", "heading"), [(-1, None), ("-1", None), ("", None), ("100.12", 100.12), (187, 187.0)]
)
def test_it_reads_direction_with_minus_one_as_unknown(direction, heading):
    assert fix(direction=direction).payload["heading"] == heading


def test_it_reports_a_direction_out_of_range():
    assert parse_iothub("pushgps", [{**FIX, "direction": 400}]).item_errors == [
        "item 0: direction: heading out of range 400"
    ]


# Q5: unit suffixes


def test_it_reads_tracker_oil_with_its_unit_suffix():
    item = {"deviceImei": IMEI, "gateTime": "2026-01-13 02:24:37", "trackerOil": "0.00L"}

    payload = only_event(parse_iothub("pushoil", [item])).payload

    assert (payload["fuel_value"], payload["fuel_unit"]) == (0.0, "L")


def test_it_keeps_tracker_oil_of_a_polled_location_in_extra():
    assert location().payload["extra"]["trackerOil"] == "0.00L"


# Q8: duplicates


def test_it_gives_a_duplicate_batch_identical_keys():
    batch = [FIX, {**FIX, "gpsTime": "2026-01-13 02:25:07", "lat": 22.5766}]

    first = parse_iothub("pushgps", batch)
    again = parse_iothub("pushgps", batch, received_at=RECEIVED_AT + timedelta(minutes=10))

    assert [event.dedup_key for event in first.events] == [event.dedup_key for event in again.events]
    assert len({event.dedup_key for event in first.events}) == 2


def test_it_gives_a_heartbeat_and_a_fix_at_the_same_time_different_keys():
    fix_event = fix()
    heartbeat = only_event(parse_iothub("pushhb", [HEARTBEAT]))

    assert fix_event.occurred_at == heartbeat.occurred_at
    assert fix_event.imei == heartbeat.imei
    assert fix_event.dedup_key != heartbeat.dedup_key


# Envelope


def test_it_refuses_malformed_json_in_data_list():
    with pytest.raises(ParseError, match="data_list is not valid JSON"):
        parse_iothub("pushgps", '[{"deviceImei": "868120246598152",')


def test_it_handles_a_data_list_object_as_one_item():
    assert only_event(parse_iothub("pushgps", json.dumps(FIX))).kind == "position_fix"


def test_it_refuses_a_data_list_that_is_neither_array_nor_object():
    with pytest.raises(ParseError, match="data_list is a JSON int"):
        parse_iothub("pushgps", "42")


def test_it_refuses_a_body_that_is_not_utf8():
    body = iothub_body([FIX]).replace(b"token=", b"token=\xff\xfe")

    with pytest.raises(ParseError, match="not UTF-8"):
        parse_raw(source_kind="jimi-iothub", push_kind="pushgps", content_type=FORM, body=body, received_at=RECEIVED_AT)


def test_it_refuses_percent_escapes_that_are_not_utf8():
    body = b"token=x&data_list=%5B%7B%22a%22%3A%22%FF%22%7D%5D"

    with pytest.raises(ParseError, match="not UTF-8"):
        parse_raw(source_kind="jimi-iothub", push_kind="pushgps", content_type=FORM, body=body, received_at=RECEIVED_AT)


def test_it_refuses_an_empty_body():
    with pytest.raises(ParseError, match="empty body"):
        parse_raw(source_kind="jimi-iothub", push_kind="pushgps", content_type=FORM, body=b"", received_at=RECEIVED_AT)


def test_it_parses_an_empty_data_list_to_nothing():
    result = parse_iothub("pushgps", [])

    assert (result.events, result.item_errors) == ([], [])


def test_it_reports_an_item_that_is_not_an_object():
    result = parse_iothub("pushgps", [FIX, "oops", None])

    assert len(result.events) == 1
    assert result.item_errors == ["item 1: not a JSON object (str)", "item 2: not a JSON object (NoneType)"]
