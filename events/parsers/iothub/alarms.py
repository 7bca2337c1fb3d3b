"""IoT Hub /pushalarm → alarm; its ICCID/VIN updates → device_meta (there is no /pushiccid; docs/jimi.md, "Paths")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.parsers.base import ParsedEvent
from events.parsers.kinds import alarm_event, device_meta_event
from events.parsers.models import Alarm, DeviceMeta

PUSHALARM_VERSION = 1

META_TYPES = ("ICCID", "VIN")


def parse_pushalarm_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # The item's `type` says what it is: DEVICE (an alarm, also when absent), ICCID or VIN.
    if str(item.get("type", "")).strip().upper() in META_TYPES:
        return device_meta_event(DeviceMeta.model_validate(item), received_at)
    return alarm_event(Alarm.model_validate(item))
