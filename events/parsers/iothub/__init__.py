"""Jimi IoT Hub pushes: form `token` + `data_list`, one URL path per type (docs/jimi.md, "IoT Hub push").

push_kind is the path the hub posted to (`pushgps`, `pushalarm`, …); paths without a parser become
`unsupported` events.
"""

from __future__ import annotations

from typing import Any

from events.parsers.base import Parser, RawBody
from events.parsers.envelopes import iothub_items, items_parser
from events.parsers.iothub import alarms, device, positions, sensors
from events.parsers.unsupported import unsupported_parser

PARSERS: dict[str, Parser] = {
    "pushgps": Parser(positions.PUSHGPS_VERSION, items_parser(iothub_items, positions.parse_pushgps_item)),
    "pushhb": Parser(positions.PUSHHB_VERSION, items_parser(iothub_items, positions.parse_pushhb_item)),
    "pushalarm": Parser(alarms.PUSHALARM_VERSION, items_parser(iothub_items, alarms.parse_pushalarm_item)),
    "pushevent": Parser(device.PUSHEVENT_VERSION, items_parser(iothub_items, device.parse_pushevent_item)),
    "pushlbs": Parser(device.PUSHLBS_VERSION, items_parser(iothub_items, device.parse_pushlbs_item)),
    "pushobd": Parser(sensors.PUSHOBD_VERSION, items_parser(iothub_items, sensors.parse_pushobd_item)),
    "pushfaultinfo": Parser(
        sensors.PUSHFAULTINFO_VERSION, items_parser(iothub_items, sensors.parse_pushfaultinfo_item)
    ),
    "pushoil": Parser(sensors.PUSHOIL_VERSION, items_parser(iothub_items, sensors.parse_pushoil_item)),
    "pushtem": Parser(sensors.PUSHTEM_VERSION, items_parser(iothub_items, sensors.parse_pushtem_item)),
    "pushtripreport": Parser(
        sensors.PUSHTRIPREPORT_VERSION, items_parser(iothub_items, sensors.parse_pushtripreport_item)
    ),
}


def _any_items(raw: RawBody) -> list[Any]:
    # Unknown paths (media, command responses) sometimes post a single object or plain form fields.
    return iothub_items(raw, bare_form_is_item=True)


fallback = unsupported_parser(_any_items)
