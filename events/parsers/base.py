"""The parser contract: what every parser returns, and the helpers that build it.

Re-exported by `events.parsers`; import from there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KINDS = (
    "position_fix",
    "alarm",
    "heartbeat",
    "device_event",
    "lbs",
    "obd",
    "fuel",
    "temperature",
    "trip_report",
    "parking_report",
    "device_meta",
    "driver_record",
    "unsupported",
    # Ops actions (events/parsers/ops.py)
    "alarm_ack",
    "odometer_reading",
    "driver_assignment",
)


@dataclass(frozen=True)
class ParsedEvent:
    kind: str  # one of KINDS
    imei: str | None  # 14-17 digits; None only for events not about a device (driver_record, fuel by plate)
    occurred_at: datetime  # tz-aware UTC: the device's time, else the raw row's received_at
    payload: dict[str, Any]  # JSON-serialisable, pydantic model_dump(mode="json")
    dedup_key: str  # hex sha256: the same event pushed twice gives the same key


@dataclass
class ParseResult:
    events: list[ParsedEvent]
    item_errors: list[str]  # "item 3: lat: not a number 'abc'" — those items are skipped, the rest parsed


class ParseError(Exception):
    """The whole body is unusable (not form data, data_list not JSON, not an array…)."""


class ItemError(ValueError):
    """One item cannot be parsed; the message says why (never quotes the push token)."""


@dataclass(frozen=True)
class RawBody:
    """One stored raw push/poll body, as the parser sees it."""

    push_kind: str
    content_type: str
    body: bytes
    received_at: datetime


@dataclass(frozen=True)
class Parser:
    version: int  # bump = re-parse every raw row this parser handled
    parse: Callable[[RawBody], ParseResult]


def dedup_key(kind: str, imei: str | None, device_time: datetime | None, *fields: Any) -> str:
    """sha256 over kind, imei, device time and the fields that tell events apart.

    Only a time the *device* reported goes in: a time that fell back to received_at differs on every
    re-push, which would defeat deduplication.
    """
    moment = device_time.astimezone(UTC).isoformat() if device_time else None
    if not fields and kind in KINDS and (imei is None or (type(imei) is str and imei.isascii() and imei.isdigit())):
        # The common key (a fix, a heartbeat): the same text json.dumps writes below, without its machinery —
        # a kind name, digits and an ISO time need no escaping.
        text = f'["{kind}",{_json_text(imei)},{_json_text(moment)}]'
    else:
        material = [kind, imei, moment, *fields]
        text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    # surrogatepass: a lone surrogate (JSON's "\ud800") must not make an event unkeyable.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _json_text(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


def make_event(
    kind: str,
    imei: str | None,
    payload: dict[str, Any],
    *,
    device_time: datetime | None,
    received_at: datetime | None = None,
    key: Sequence[Any] = (),
) -> ParsedEvent:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    occurred_at = device_time or received_at
    if occurred_at is None:
        raise ItemError("no time")
    return ParsedEvent(
        kind=kind,
        imei=imei,
        occurred_at=occurred_at.astimezone(UTC),
        payload=payload,
        dedup_key=dedup_key(kind, imei, device_time, *key),
    )
