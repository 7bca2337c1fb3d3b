"""The worker's path inside a test's transaction: raw rows written the way their writers write them, then parsed
and projected by the real code (the commit-time triggers made immediate)."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlencode

from django.db import connection

from events.models import PushSource, SourceKind
from events.services import raw_events_drain
from state.tests.drives import project


def immediate() -> None:
    """Fire the deferred work-list triggers at once (there is no commit inside a test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def run() -> None:
    """Parse every waiting raw row, then drain every projector — what the woken jobs do."""
    raw_events_drain(batch_size=500, budget_s=60)
    project()


def push_alarm(source: PushSource, *, imei: str, code: str, at: datetime, cleared: bool = False) -> None:
    """An IoT Hub /pushalarm as the gateway stores it (`cleared`: the device ending that alarm)."""
    when = f"{at:%Y-%m-%d %H:%M:%S}"
    msg = {"alertType": "removeAlarmType", "removeAlarmType": code} if cleared else {"alertType": code}
    item = {"type": "DEVICE", "msgClass": 0, "imei": imei, "msg": {**msg, "alarmTime": when}, "gateTime": when}
    body = urlencode({"token": source.secret, "data_list": json.dumps([item])}).encode()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body, headers)"
            " VALUES (%s, %s, 'pushalarm', 'application/x-www-form-urlencoded', %s, '{}')",
            [source.id, SourceKind.JIMI_IOTHUB, body],
        )
