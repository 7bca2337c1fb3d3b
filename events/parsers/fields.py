"""Lenient coercions for Jimi's drifting field types, as pydantic `Annotated` types.

Jimi sends the same field as a number in one method and a string in another (docs/jimi.md, Q2/Q3), spells
booleans four ways, and writes times in three formats (Q1, Q12). Every coercer raises ValueError with a
message that quotes the bad value; the item loop turns that into "item 3: lat: not a number 'abc'".
Blank values ("" or null) mean "not reported" for optional fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
NUMBER_RE = re.compile(_NUMBER)
# trackerOil is "0.00L" (Q5): a number with a unit suffix.
NUMBER_WITH_UNIT_RE = re.compile(rf"({_NUMBER})\s*([^\d\s.+-][^\d]*)?")
# yyyy-MM-dd HH:mm:ss with unpadded parts ("2024-05-09 1:27:23", Q12), or ISO-8601 with T, fraction and zone.
TIME_RE = re.compile(
    r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(\.\d+)?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)
DIGITS_RE = re.compile(r"\d+(?:\.\d+)?")
IMEI_RE = re.compile(r"\d{14,17}")  # Q9: mostly 15 digits, TAG devices 16; 3P validators accept 14-17
HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# Epoch values above this are milliseconds: as seconds they would be past the year 5000.
EPOCH_MS_ABOVE = 10**11

_ON = {"1", "on", "true", "yes", "acc_on"}
_OFF = {"0", "off", "false", "no", "acc_off"}
_POSITION_TYPES = {"1": "gps", "2": "lbs", "3": "wifi", "gps": "gps", "lbs": "lbs", "wifi": "wifi", "beacon": "beacon"}
# The fast paths below answer the shapes nearly every item has exactly as the general code does (a number as a
# plain int, a padded time); anything else takes the general code.
_POSITION_TYPE_CODES = {1: "gps", 2: "lbs", 3: "wifi"}
_EXACT_INT = 2**53  # ints below this convert to float and back unchanged
_ZONED_TAIL = re.compile(r"[-+Zz]")  # after the date: the start of a zone


def shown(value: Any, limit: int = 40) -> str:
    """The bad value for an error message, cut short: a device can send a kilobyte of garbage."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def optional[T](coerce: Callable[[Any], T]) -> Callable[[Any], T | None]:
    """Blank → None, anything else must coerce."""

    def coerce_optional(value: Any) -> T | None:
        return None if is_blank(value) else coerce(value)

    return coerce_optional


def lenient[T](coerce: Callable[[Any], T]) -> Callable[[Any], T | None]:
    """For guessed fields of undocumented pushes: a value we cannot read is None (it stays in `extra`)."""

    def coerce_lenient(value: Any) -> T | None:
        try:
            return None if is_blank(value) else coerce(value)
        except ValueError:
            return None

    return coerce_lenient


def _require(value: Any) -> None:
    if is_blank(value):
        raise ValueError("missing")


def to_float(value: Any) -> float:
    # bool is an int subclass but never a number here; type() keeps it out.
    is_number = type(value) in (int, float) or (isinstance(value, str) and NUMBER_RE.fullmatch(value.strip()))
    if not is_number:
        _require(value)
        raise ValueError(f"not a number {shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"not a number {shown(value)}")
    return number


def to_int(value: Any) -> int:
    number = to_float(value)
    if not number.is_integer():
        raise ValueError(f"not a whole number {shown(value)}")
    return int(number)


def to_number_with_unit(value: Any) -> tuple[float, str | None]:
    """Value and unit: "0.00L" → (0.0, "L"); 12 → (12.0, None)."""
    _require(value)
    if isinstance(value, str):
        match = NUMBER_WITH_UNIT_RE.fullmatch(value.strip())
        if not match:
            raise ValueError(f"not a number {shown(value)}")
        return to_float(match.group(1)), (match.group(2) or "").strip() or None
    return to_float(value), None


def to_amount(value: Any) -> float:
    """A number whose unit suffix we drop ("0.00L" → 0.0)."""
    return to_number_with_unit(value)[0]


def to_unit(value: Any) -> str | None:
    return to_number_with_unit(value)[1]


def _to_range(low: float, high: float, what: str) -> Callable[[Any], float]:
    def coerce(value: Any) -> float:
        number = to_float(value)
        if not low <= number <= high:
            raise ValueError(f"{what} out of range {shown(value)}")
        return number

    return coerce


to_lat = _to_range(-90, 90, "latitude")
to_lng = _to_range(-180, 180, "longitude")


def to_heading(value: Any) -> float | None:
    """Azimuth 0-360; -1 means unknown (Q2: "100.12" and 187 both occur)."""
    if is_blank(value):
        return None
    number = to_float(value)
    if number == -1:
        return None
    if not 0 <= number <= 360:
        raise ValueError(f"heading out of range {shown(value)}")
    return number


def to_on_off(value: Any) -> bool:
    """ACC and flags: 0/1, "0"/"1", "ON"/"OFF", "ACC_ON"/"ACC_OFF", true/false (Q3)."""
    if type(value) is int and value in (0, 1):
        return value == 1
    _require(value)
    if isinstance(value, bool):
        return value
    text = str(int(value)) if isinstance(value, int | float) and float(value).is_integer() else str(value)
    if text.strip().lower() in _ON:
        return True
    if text.strip().lower() in _OFF:
        return False
    raise ValueError(f"not an on/off value {shown(value)}")


def to_retransmitted(value: Any) -> bool:
    """gpsMode: 0 real-time, 1 re-uploaded from the device's buffer (Q7)."""
    if type(value) is int and -_EXACT_INT < value < _EXACT_INT:
        return value == 1
    return not is_blank(value) and to_int(value) == 1


def to_imei(value: Any) -> str:
    _require(value)
    # Some senders serialise the IMEI as a JSON number (Q9 says string): keep the digits.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not IMEI_RE.fullmatch(text.strip()):
        raise ValueError(f"not a 14-17 digit IMEI {shown(value)}")
    return text.strip()


def to_text(value: Any) -> str:
    _require(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not text {shown(value)}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # alarm codes arrive as 1, "1" or 1.0
    return str(value).strip()


def to_lower_text(value: Any) -> str:
    return to_text(value).lower()


def to_position_type(value: Any) -> str:
    """posType "GPS" (location API) ↔ 1 (track API) ↔ postType 1 (IoT Hub) — Q3."""
    if type(value) is int and value in _POSITION_TYPE_CODES:
        return _POSITION_TYPE_CODES[value]
    key = to_text(value).lower()
    if key not in _POSITION_TYPES:
        raise ValueError(f"unknown position type {shown(value)}")
    return _POSITION_TYPES[key]


def to_hex(value: Any) -> str:
    text = re.sub(r"\s+", "", to_text(value))
    if not HEX_RE.fullmatch(text):
        raise ValueError("not a hex string")
    return text


def _zone(text: str | None) -> timezone:
    if not text or text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _from_epoch(value: Any) -> datetime:
    # Q1: TAG gpsTime and pushIothubEvent gateTime are Unix seconds; some senders use milliseconds.
    try:
        number = float(value)
        return datetime.fromtimestamp(number / 1000 if number > EPOCH_MS_ABOVE else number, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"not a time {shown(value)}") from None


def to_time(value: Any, *, allow_date: bool = False) -> datetime:
    """Any Jimi time → aware UTC. A time without a zone is UTC (Jimi convention, Q1)."""
    if type(value) is str:
        text = value.strip()
        if len(text) > 10 and text[4] == "-":  # "yyyy-…": no epoch number; padded times and ISO-8601
            try:
                if _ZONED_TAIL.search(text, 10) is None:  # no zone: UTC, parsed as such (cheaper than replace())
                    return datetime.fromisoformat(text + "+00:00")
                moment = datetime.fromisoformat(text)
                return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            except ValueError:
                pass  # the general path below decides
    _require(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value)
    text = value.strip() if isinstance(value, str) else ""
    if DIGITS_RE.fullmatch(text):
        return _from_epoch(text)
    if len(text) > 10:
        try:  # fast path: padded times and ISO-8601 ("…Z", "….000Z", "+03:00")
            moment = datetime.fromisoformat(text)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        except ValueError:
            pass
    match = TIME_RE.fullmatch(text)
    if not match or (match.group(4) is None and not allow_date):
        raise ValueError(f"not a time {shown(value)}")
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups()[:6])
    micros = int((match.group(7) or ".0")[1:7].ljust(6, "0"))
    try:
        moment = datetime(year, month, day, hour, minute, second, micros, tzinfo=_zone(match.group(8)))
    except ValueError:
        raise ValueError(f"not a time {shown(value)}") from None
    return moment.astimezone(UTC)


def to_time_or_date(value: Any) -> datetime:
    """Roster dates: "2026-01-01" means midnight UTC of that day."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return to_time(value, allow_date=True)


Float = Annotated[float, BeforeValidator(to_float)]
OptFloat = Annotated[float | None, BeforeValidator(optional(to_float))]
OptInt = Annotated[int | None, BeforeValidator(optional(to_int))]
Lat = Annotated[float, BeforeValidator(to_lat)]
Lng = Annotated[float, BeforeValidator(to_lng)]
OptLat = Annotated[float | None, BeforeValidator(optional(to_lat))]
OptLng = Annotated[float | None, BeforeValidator(optional(to_lng))]
Heading = Annotated[float | None, BeforeValidator(to_heading)]
OnOff = Annotated[bool | None, BeforeValidator(optional(to_on_off))]
Retransmitted = Annotated[bool, BeforeValidator(to_retransmitted)]
Imei = Annotated[str, BeforeValidator(to_imei)]
OptImei = Annotated[str | None, BeforeValidator(optional(to_imei))]
Text = Annotated[str, BeforeValidator(to_text)]
OptText = Annotated[str | None, BeforeValidator(optional(to_text))]
Flag = Annotated[bool, BeforeValidator(to_on_off)]
Time = Annotated[datetime, BeforeValidator(to_time)]
OptTime = Annotated[datetime | None, BeforeValidator(optional(to_time))]
OptTimeOrDate = Annotated[datetime | None, BeforeValidator(optional(to_time_or_date))]
PositionType = Literal["gps", "lbs", "wifi", "beacon"]
OptPositionType = Annotated[PositionType | None, BeforeValidator(optional(to_position_type))]
Hex = Annotated[str, BeforeValidator(to_hex)]

# Undocumented pushes (pushobd, pushoil, pushtem…): guessed fields never fail the item.
SoftFloat = Annotated[float | None, BeforeValidator(lenient(to_amount))]
SoftUnit = Annotated[str | None, BeforeValidator(lenient(to_unit))]
SoftLat = Annotated[float | None, BeforeValidator(lenient(to_lat))]
SoftLng = Annotated[float | None, BeforeValidator(lenient(to_lng))]
SoftText = Annotated[str | None, BeforeValidator(lenient(to_text))]
SoftTime = Annotated[datetime | None, BeforeValidator(lenient(to_time))]
