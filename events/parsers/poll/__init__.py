"""TrackSolid Pro Open API poll responses (source `jimi-poll`): push_kind is the method name, body the JSON
response. Methods without a parser become `unsupported` events, one per row."""

from __future__ import annotations

from typing import Any

from events.parsers.base import Parser, RawBody
from events.parsers.poll import alarms, devices, obd, positions, reports
from events.parsers.poll.responses import response_document, rows, rows_parser
from events.parsers.unsupported import unsupported_parser

PARSERS: dict[str, Parser] = {
    "jimi.user.device.location.list": Parser(positions.LOCATION_VERSION, rows_parser(positions.parse_location_row)),
    "jimi.device.location.get": Parser(positions.LOCATION_VERSION, rows_parser(positions.parse_location_row)),
    "jimi.device.track.list": Parser(
        positions.TRACK_VERSION, rows_parser(positions.parse_track_row, positions.track_rows)
    ),
    "jimi.device.alarm.list": Parser(alarms.ALARM_LIST_VERSION, rows_parser(alarms.parse_alarm_row)),
    "jimi.open.platform.report.parking": Parser(reports.PARKING_VERSION, rows_parser(reports.parse_parking_row)),
    "jimi.open.platform.report.trips": Parser(
        reports.TRIPS_VERSION, rows_parser(reports.parse_trip_row, reports.trip_rows)
    ),
    "jimi.device.track.mileage": Parser(reports.MILEAGE_VERSION, rows_parser(reports.parse_mileage_row)),
    "jimi.user.device.list": Parser(devices.DEVICE_LIST_VERSION, rows_parser(devices.parse_device_row)),
    "jimi.device.obd.list": Parser(obd.OBD_LIST_VERSION, rows_parser(obd.parse_obd_row)),
    "jimi.device.obd.fault": Parser(obd.OBD_FAULT_VERSION, rows_parser(obd.parse_obd_fault_row)),
}


def _rows(raw: RawBody) -> list[Any]:
    return rows(response_document(raw))


fallback = unsupported_parser(_rows)
