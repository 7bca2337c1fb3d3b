"""kind unsupported: a push type we have no parser for yet, kept item by item so nothing is dropped.

Version 0 means "no dedicated parser": a real parser for the same push kind starts at 1, so adding one
changes the version and re-parses the rows that were stored as unsupported.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from events.parsers.base import ParsedEvent, Parser, ParseResult, RawBody, make_event
from events.parsers.envelopes import Splitter, parse_items
from events.parsers.fields import to_imei, to_time
from events.parsers.items import SECRET_FIELDS

UNSUPPORTED_VERSION = 0

IMEI_FIELDS = ("deviceImei", "imei", "_imei")
TIME_FIELDS = ("gpsTime", "alarmTime", "alertTime", "gateTime", "eventTime", "dataReportTime", "startTime", "time")


class Unsupported(BaseModel):
    push_kind: str
    item: Any


def _first(item: Any, names: tuple[str, ...], coerce: Callable[[Any], Any]) -> Any:
    """The first field that coerces; an unsupported item never fails on a field we do not understand."""
    if not isinstance(item, dict):
        return None
    # Any JSON value: indexing one that is no object (None, a list, a number) fails into the except below.
    containers: tuple[Any, ...] = (item, item.get("msg"), item.get("data"))
    for container in containers:
        for name in names:
            try:
                return coerce(container[name])
            except (KeyError, TypeError, ValueError):
                continue
    return None


def unsupported_event(push_kind: str, item: Any, received_at: datetime) -> ParsedEvent:
    if isinstance(item, dict):
        item = {key: value for key, value in item.items() if key not in SECRET_FIELDS}
    payload = Unsupported(push_kind=push_kind, item=item).model_dump(mode="json")
    return make_event(
        "unsupported",
        _first(item, IMEI_FIELDS, to_imei),
        payload,
        device_time=_first(item, TIME_FIELDS, to_time),
        received_at=received_at,
        key=(push_kind, payload["item"]),
    )


def unsupported_parser(split: Splitter) -> Callable[[str], Parser]:
    """A fallback for one source: every item of an unknown push kind becomes an unsupported event."""

    def for_push_kind(push_kind: str) -> Parser:
        def parse(raw: RawBody) -> ParseResult:
            def one(item: Any, received_at: datetime) -> ParsedEvent:
                return unsupported_event(push_kind, item, received_at)

            return parse_items(split(raw), one, raw.received_at, objects_only=False)

        return Parser(UNSUPPORTED_VERSION, parse)

    return for_push_kind
