"""TrackSolid Pro Open API push: form `msgType` + `data` (one JSON object as a string); docs/jimi.md.

push_kind is the msgType. Only two exist: `jimi.push.device.alarm` and `jimi.open.instruction.raw.receive`;
anything else becomes `unsupported` events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.parsers.base import ParsedEvent, Parser
from events.parsers.envelopes import items_parser, tsp_items
from events.parsers.kinds import alarm_event, device_meta_event
from events.parsers.models import Alarm, RawDeviceData
from events.parsers.unsupported import unsupported_parser

ALARM_VERSION = 1


def parse_alarm_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # alarmType is numeric for device alarms, English text for platform alarms (stayAlertOn, ACC_ON);
    # lat/lng are documented as strings but the example sends numbers — Alarm reads both (Q2).
    return alarm_event(Alarm.model_validate(item))


RAW_RECEIVE_VERSION = 1


def parse_raw_receive_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return device_meta_event(RawDeviceData.model_validate(item), received_at)


PARSERS: dict[str, Parser] = {
    "jimi.push.device.alarm": Parser(ALARM_VERSION, items_parser(tsp_items, parse_alarm_item)),
    "jimi.open.instruction.raw.receive": Parser(RAW_RECEIVE_VERSION, items_parser(tsp_items, parse_raw_receive_item)),
}

fallback = unsupported_parser(tsp_items)
