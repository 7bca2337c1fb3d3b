"""Open API poll responses (source jimi-poll), built from Jimi's documented response examples (docs/jimi.md)."""

from __future__ import annotations

import pytest

from events.parsers import ParseError, parser_version
from events.tests.parsing import only_event, parse_iothub, parse_poll, utc

S2 = {
    "code": 0,
    "message": "success",
    "data": None,
    "result": [
        {
            "imei": "860121060369660",
            "deviceName": "VL802-69660",
            "posType": "GPS",
            "lat": 22.576562,
            "lng": 113.943084,
            "hbTime": "2026-03-26 11:25:38",
            "gpsTime": "2026-03-18 10:20:37",
            "accStatus": "1",
            "gpsNum": "15",
            "speed": "0",
            "direction": "0",
            "electQuantity": "",
            "distance": "-1",
            "trackerOil": "0.00L",
        }
    ],
}
S3 = {
    "code": 0,
    "message": "success",
    "data": {"mileage": 0},
    "result": [
        {
            "lat": 22.576607,
            "lng": 113.943084,
            "gpsTime": "2026-03-18 09:40:46",
            "direction": 0,
            "gpsSpeed": 0.0,
            "posType": 1,
            "satellite": 0,
            "ignition": "ON",
            "accStatus": "ON",
            "gpsMode": 0,
            "confidence": None,
        }
    ],
}
S4_ROW = {
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
S6 = {
    "code": 0,
    "message": "success",
    "result": None,
    "data": {
        "totalTime": "185641",
        "dataTotalRows": "2",
        "rows": [
            {
                "imei": "869247060001739",
                "startTime": "2022-12-10T01:05:33.000Z",
                "endTime": "2022-12-10T04:17:48.000Z",
                "durSecond": "11535",
                "stopSecond": "11535",
                "lng": 113.943093,
                "lat": 22.576748,
                "addr": "Shigu Road, ...",
                "deviceName": "JC450Pro-01739",
                "mcType": "JC450Pro",
                "acc": "on",
            }
        ],
    },
}
TRIP = {
    "imei": "869247060001739",
    "startTime": "2026-03-18 08:00:00",
    "endTime": "2026-03-18 08:40:00",
    "startLat": "22.57",
    "startLng": "113.94",
    "endLat": "22.60",
    "endLng": "113.99",
    "totalMileage": "12.5",
    "travelTime": "00:40:00",
    "averageSpeed": "18.7",
    "maxSpeed": "61",
    "fuel": "1.2",
}


def test_it_parses_a_location_list_row():
    event = only_event(parse_poll("jimi.user.device.location.list", S2))

    assert event.kind == "position_fix"
    assert event.imei == "860121060369660"
    assert event.occurred_at == utc(2026, 3, 18, 10, 20, 37)
    payload = event.payload
    assert (payload["position_type"], payload["ignition"], payload["satellites"]) == ("gps", True, 15)
    assert (payload["speed_kmh"], payload["heading"], payload["battery_pct"]) == (0.0, 0.0, None)
    assert payload["odometer_m"] is None  # location `distance` is not an odometer
    assert payload["extra"]["distance"] == "-1"
    assert payload["extra"]["hbTime"] == "2026-03-26 11:25:38"


def test_it_gives_a_fix_polled_and_pushed_the_same_key():
    polled = only_event(parse_poll("jimi.user.device.location.list", S2))
    pushed = only_event(
        parse_iothub(
            "pushgps",
            [{"deviceImei": "860121060369660", "gpsTime": "2026-03-18 10:20:37", "lat": 22.576562, "lng": 113.943084}],
        )
    )

    assert polled.dedup_key == pushed.dedup_key


def test_it_parses_track_points_with_the_imei_the_poller_adds():
    event = only_event(parse_poll("jimi.device.track.list", {**S3, "imei": "860121060369660"}))

    assert event.imei == "860121060369660"
    payload = event.payload
    assert (payload["position_type"], payload["ignition"], payload["satellites"], payload["retransmitted"]) == (
        "gps",
        True,
        0,
        False,
    )


def test_it_reports_track_points_without_an_imei():
    result = parse_poll("jimi.device.track.list", S3)

    assert result.item_errors == ["item 0: imei: missing"]


def test_it_parses_an_alarm_list_row():
    event = only_event(parse_poll("jimi.device.alarm.list", {"code": 0, "result": [S4_ROW]}))

    assert event.kind == "alarm"
    assert event.occurred_at == utc(2019, 3, 14, 14, 2, 3)
    assert (event.payload["code"], event.payload["normalised_name"], event.payload["speed_kmh"]) == (
        "1002",
        "acc_on",
        10.0,
    )
    assert event.payload["extra"]["positioningTime"] == "2019-03-14 14:02:03"


def test_it_parses_a_parking_report_row():
    event = only_event(parse_poll("jimi.open.platform.report.parking", S6))

    assert event.kind == "parking_report"
    assert event.payload["mode"] == "idling"  # acc on while stopped
    assert event.payload["end_time"] == "2022-12-10T04:17:48Z"
    assert (event.payload["duration_s"], event.payload["address"]) == (11535.0, "Shigu Road, ...")


def test_it_gives_a_parking_that_grew_longer_a_new_key():
    row = S6["data"]["rows"][0]
    longer = {**S6, "data": {"rows": [{**row, "endTime": "2022-12-10T05:00:00.000Z"}]}}

    first = only_event(parse_poll("jimi.open.platform.report.parking", S6))
    later = only_event(parse_poll("jimi.open.platform.report.parking", longer))

    assert first.dedup_key != later.dedup_key


def test_it_parses_each_trip_of_a_trips_report():
    response = {
        "code": 0,
        "result": None,
        "data": {
            "dayList": [
                {
                    "imei": "869247060001739",
                    "tripsData": [
                        {"Searchdate": "2026-03-18", "dayData": [TRIP, {**TRIP, "startTime": "2026-03-18 09:00:00"}]}
                    ],
                }
            ]
        },
    }

    result = parse_poll("jimi.open.platform.report.trips", response)

    assert [event.kind for event in result.events] == ["trip_report", "trip_report"]
    payload = result.events[0].payload
    assert (payload["start_lat"], payload["distance"], payload["max_speed_kmh"]) == (22.57, 12.5, 61.0)
    assert payload["extra"] == {"fuel": "1.2"}


def test_it_refuses_an_error_response():
    with pytest.raises(ParseError, match="code '1004'"):
        parse_poll("jimi.device.alarm.list", {"code": "1004", "message": "token invalid"})


def test_it_parses_an_empty_success_to_nothing():
    result = parse_poll("jimi.device.alarm.list", {"code": 0, "message": "success", "result": None})

    assert (result.events, result.item_errors) == ([], [])


def test_it_turns_rows_of_an_unknown_method_into_unsupported_events():
    fences = {"code": 0, "data": {"result": [{"imei": "869247060001739"}]}}
    result = parse_poll("jimi.open.platform.fence.duration", fences)

    assert [event.kind for event in result.events] == ["unsupported"]
    assert parser_version("jimi-poll", "jimi.open.platform.fence.duration") == (
        "jimi-poll/jimi.open.platform.fence.duration@0"
    )
    assert parser_version("jimi-poll", "jimi.device.track.list") == "jimi-poll/jimi.device.track.list@1"
