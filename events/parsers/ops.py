"""Ops actions that change derived state, as the ops layer appends them to the log (source kind `ops`).

An acknowledgement, an odometer reading or correction and a manual driver assignment are not written into a state
or domain table by the admin or the API: ops appends one raw row per action (events.services.ops_event_append), and
it is parsed here and projected like any push, so `manage.py replay` keeps it. push_kind names the action; the body
is one JSON object, `id` being the action's own id (a uuid: the same action parsed twice is one event):

    alarm_ack          {"id", "imei", "alarm_at", "alarm_key", "acknowledged_at", "acknowledged_by", "note"?}
                       kind alarm_ack, dated at the alarm's time (alarm_at): it sits on the alarm's device timeline,
                       so a replay of a window or a device that rebuilds the alarm finds its acknowledgement too
    odometer_reading   {"id", "plate", "odometer_km", "read_at", "source", "recorded_by", "recorded_at", "note"?}
                       kind odometer_reading, dated at read_at; source: reading | correction | service
    driver_assignment  {"id", "driver_id", "driver_name", "plate", "start", "end"?, "assigned_by", "recorded_at",
                        "note"?}
                       kind driver_assignment, dated at recorded_at (replay applies assignments in the order clerks
                       made them)

Times are ISO-8601 (no zone = UTC). A body that is not one JSON object is a ParseError; a bad field is an item
error naming it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from events.parsers.base import ParsedEvent, ParseError, Parser, ParseResult, RawBody
from events.parsers.envelopes import json_document, parse_items
from events.parsers.fields import Float, Imei, OptText, OptTime, Text, Time
from events.parsers.items import ItemModel
from events.parsers.kinds import alarm_ack_event, driver_assignment_event, odometer_reading_event

OPS_VERSION = 1


class AlarmAck(ItemModel):
    """kind alarm_ack: an operator acknowledged one alarm (a state_alarms row, named by its parsed event's key)."""

    action_id: Text = Field(validation_alias="id")
    imei: Imei = Field(exclude=True)
    alarm_at: Time = Field(exclude=True)
    alarm_key: Text
    acknowledged_at: Time
    acknowledged_by: Text
    note: OptText = None


class OdometerReading(ItemModel):
    """kind odometer_reading: a vehicle's odometer as a person read it (or corrected it, or noted it at a service)."""

    action_id: Text = Field(validation_alias="id")
    plate: Text
    odometer_km: Float
    read_at: Time = Field(exclude=True)
    source: Literal["reading", "correction", "service"] = "reading"
    recorded_by: Text
    recorded_at: Time
    note: OptText = None

    @model_validator(mode="after")
    def _check(self) -> OdometerReading:
        if self.odometer_km < 0:
            raise ValueError(f"odometer_km: negative {self.odometer_km}")
        return self


class DriverAssignment(ItemModel):
    """kind driver_assignment: a clerk put a driver on a vehicle for [start, end)."""

    action_id: Text = Field(validation_alias="id")
    driver_id: int
    driver_name: Text
    plate: Text
    start: Time
    end: OptTime = None
    assigned_by: Text
    recorded_at: Time = Field(exclude=True)
    note: OptText = None

    @model_validator(mode="after")
    def _check(self) -> DriverAssignment:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end: not after start")
        return self


def _one_object(raw: RawBody) -> list[Any]:
    document = json_document(raw)
    if not isinstance(document, dict):
        raise ParseError("an ops body is one JSON object")
    return [document]


def _parser(build: Any) -> Parser:
    def parse(raw: RawBody) -> ParseResult:
        return parse_items(_one_object(raw), build, raw.received_at)

    return Parser(OPS_VERSION, parse)


def _alarm_ack(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return alarm_ack_event(AlarmAck.model_validate(item))


def _odometer(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return odometer_reading_event(OdometerReading.model_validate(item))


def _assignment(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return driver_assignment_event(DriverAssignment.model_validate(item))


PARSERS: dict[str, Parser] = {
    "alarm_ack": _parser(_alarm_ack),
    "odometer_reading": _parser(_odometer),
    "driver_assignment": _parser(_assignment),
}
