"""IoT Hub /pushgps → position_fix, /pushhb → heartbeat (docs/jimi.md, "Paths")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.parsers.base import ParsedEvent
from events.parsers.kinds import heartbeat_event, position_event
from events.parsers.models import Heartbeat, PositionFix

PUSHGPS_VERSION = 1


def parse_pushgps_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # gpsMode=1 marks a fix the device buffered in a blind area: it arrives late and out of order (Q7),
    # so occurred_at is gpsTime, never the push time.
    return position_event(PositionFix.model_validate(item))


PUSHHB_VERSION = 1


def parse_pushhb_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return heartbeat_event(Heartbeat.model_validate(item))
