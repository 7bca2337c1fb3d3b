"""Helpers for the parser tests: build raw bodies the way each source sends them (docs/jimi.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from events.parsers import ParseResult, parse_raw

RECEIVED_AT = datetime(2026, 1, 13, 3, 0, 0, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"
PUSH_TOKEN = "hub-shared-secret-0001"


def iothub_body(items: Any, *, token: str = PUSH_TOKEN) -> bytes:
    data_list = items if isinstance(items, str) else json.dumps(items)
    return urlencode({"token": token, "data_list": data_list}).encode()


def parse_iothub(push_kind: str, items: Any, *, received_at: datetime = RECEIVED_AT) -> ParseResult:
    return parse_raw(
        source_kind="jimi-iothub",
        push_kind=push_kind,
        content_type=FORM,
        body=iothub_body(items),
        received_at=received_at,
    )


def tsp_body(msg_type: str, data: Any) -> bytes:
    return urlencode({"msgType": msg_type, "data": data if isinstance(data, str) else json.dumps(data)}).encode()


def parse_tsp(msg_type: str, data: Any, *, received_at: datetime = RECEIVED_AT) -> ParseResult:
    return parse_raw(
        source_kind="jimi-tsp",
        push_kind=msg_type,
        content_type=FORM,
        body=tsp_body(msg_type, data),
        received_at=received_at,
    )


def parse_json(source_kind: str, push_kind: str, document: Any, *, received_at: datetime = RECEIVED_AT) -> ParseResult:
    return parse_raw(
        source_kind=source_kind,
        push_kind=push_kind,
        content_type="application/json",
        body=json.dumps(document).encode(),
        received_at=received_at,
    )


def parse_poll(method: str, response: Any) -> ParseResult:
    return parse_json("jimi-poll", method, response)


def only_event(result: ParseResult) -> Any:
    assert result.item_errors == []
    assert len(result.events) == 1
    return result.events[0]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
