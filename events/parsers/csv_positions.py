"""CSV position imports (source `csv`, push_kind `positions`) → position_fix.

Header `imei,time,lat,lon,speed,heading,ignition` (extra columns go to `extra`). `time` takes any format
the Jimi parsers take; a time without a zone is UTC. Errors name the item and its line:
"item 3 (line 5): lat: not a number 'abc'".
"""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import Field, ValidationError

from events.parsers.base import ParseError, Parser, ParseResult, RawBody
from events.parsers.envelopes import decode_text, describe_validation_error
from events.parsers.fields import Heading, Imei, Lng, OnOff, OptFloat, OptPositionType, Time
from events.parsers.kinds import position_event
from events.parsers.models import PositionFix

POSITIONS_VERSION = 1

REQUIRED_COLUMNS = ("imei", "time", "lat", "lon", "speed", "heading", "ignition")


class CsvPosition(PositionFix):
    imei: Imei = Field(exclude=True, validation_alias="imei")
    gps_time: Time = Field(exclude=True, validation_alias="time")
    lng: Lng = Field(validation_alias="lon")
    speed_kmh: OptFloat = Field(None, validation_alias="speed")
    heading: Heading = Field(None, validation_alias="heading")
    ignition: OnOff = Field(None, validation_alias="ignition")
    position_type: OptPositionType = Field("gps", validation_alias="position_type")


def _reader(raw: RawBody) -> csv.DictReader[str]:
    # Spreadsheet exports start with a byte-order mark that would corrupt the first column name.
    text = decode_text(raw.body).removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="_unnamed_columns")
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ParseError(f"CSV header lacks column(s) {', '.join(missing)} (expected {','.join(REQUIRED_COLUMNS)})")
    reader.fieldnames = header
    return reader


def _clean(row: dict[str | Any, Any]) -> dict[str, Any]:
    return {key: value.strip() if isinstance(value, str) else value for key, value in row.items()}


def parse_positions(raw: RawBody) -> ParseResult:
    result = ParseResult(events=[], item_errors=[])
    reader = _reader(raw)
    for index, row in enumerate(reader):
        try:
            result.events.append(position_event(CsvPosition.model_validate(_clean(row))))
        except ValidationError as exc:
            result.item_errors.append(f"item {index} (line {reader.line_num}): {describe_validation_error(exc)}")
    return result


PARSERS: dict[str, Parser] = {"positions": Parser(POSITIONS_VERSION, parse_positions)}
