"""jimi.device.alarm.list rows → alarm: alertTypeId / alarmTypeName (or alertTypeName) / alertTime (Q3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.parsers.base import ParsedEvent
from events.parsers.kinds import alarm_event
from events.parsers.models import Alarm

ALARM_LIST_VERSION = 1


def parse_alarm_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # The same ids as the TSP push, so a pushed alarm and its alarm.list row share a dedup key.
    return alarm_event(Alarm.model_validate(row))
