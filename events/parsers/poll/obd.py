"""jimi.device.obd.list and jimi.device.obd.fault rows → obd (records `data` and `fault`). The field names are the
ones the IoT Hub /pushobd and /pushfaultinfo parsers already read (from these methods' field tables): one model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.parsers.base import ParsedEvent
from events.parsers.iothub.sensors import ObdFault, ObdReading
from events.parsers.kinds import reading_event

OBD_LIST_VERSION = 1
OBD_FAULT_VERSION = 1


def parse_obd_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # dataReportTime may be unpadded ("2024-05-09 1:27:23", Q12); vehicleBatterVoltage "118" stays raw (Q5).
    return reading_event("obd", ObdReading.model_validate(row))


def parse_obd_fault_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return reading_event("obd", ObdFault.model_validate(row))
