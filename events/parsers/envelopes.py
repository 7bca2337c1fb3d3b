"""Body → items: the transport envelopes (docs/jimi.md), and the loop that turns items into a ParseResult."""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from events.parsers.base import ItemError, ParsedEvent, ParseError, ParseResult, RawBody
from events.parsers.items import SECRET_FIELDS

ItemParser = Callable[[dict[str, Any], datetime], ParsedEvent]
Splitter = Callable[[RawBody], list[Any]]


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"body is not UTF-8 (invalid byte at offset {exc.start})") from None


# What a form encoder emits: unreserved characters, '+', and %XX escapes. Only such values take the fast path.
_FORM_VALUE = re.compile(rb"[A-Za-z0-9\-._~*'()!,;:@/?+]*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9\-._~*'()!,;:@/?+]*)*")


def _unquote_fast(value: bytes) -> bytes | None:
    """Percent-decoding at C speed, through quoted-printable's decoder (%XX → =XX). urllib's pure-Python
    unquote was a third of the cost of parsing an IoT Hub batch. None when the value holds anything a form
    encoder would not produce; the standard decoder then decides (tests prove both agree)."""
    if not _FORM_VALUE.fullmatch(value):
        return None
    return binascii.a2b_qp(value.replace(b"+", b" ").replace(b"%", b"="))


def _decode_form_fast(body: bytes) -> dict[str, str] | None:
    fields: dict[str, str] = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        name, sep, value = pair.partition(b"=")
        raw_name, raw_value = _unquote_fast(name), _unquote_fast(value)
        if not sep or raw_name is None or raw_value is None:
            return None
        try:
            fields.setdefault(raw_name.decode("utf-8"), raw_value.decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("form field is not UTF-8 after percent-decoding") from None
    return fields


def decode_form(body: bytes) -> dict[str, str]:
    """Form fields, first value of each. Percent-escapes must decode as UTF-8 too."""
    fast = _decode_form_fast(body)
    if fast is not None:
        return fast
    try:
        fields = parse_qs(decode_text(body), keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise ParseError("form field is not UTF-8 after percent-decoding") from None
    return {name: values[0] for name, values in fields.items()}


def decode_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Position only, never the content: a body can carry the push token.
        raise ParseError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ParseError(f"{what} is nested too deeply to decode") from None
    except ValueError as exc:  # an integer of thousands of digits (Python's int/str conversion limit)
        raise ParseError(f"{what} holds a number too long to decode ({exc})") from None


def looks_like_json(raw: RawBody) -> bool:
    # The body decides, not Content-Type: a form body never starts with a bracket (it would be %7B).
    return raw.body.lstrip()[:1] in (b"{", b"[")


def as_items(value: Any, what: str) -> list[Any]:
    """An array is a batch; a single object is one item (some IoT Hub callbacks send one object)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise ParseError(f"{what} is a JSON {type(value).__name__}, expected an array or an object")


def iothub_items(raw: RawBody, *, bare_form_is_item: bool = False) -> list[Any]:
    """IoT Hub: form `token` + `data_list` (JSON array string); a JSON object body is one item."""
    if not raw.body.strip():
        raise ParseError("empty body")
    if looks_like_json(raw):
        document = decode_json(decode_text(raw.body), "body")
        if isinstance(document, dict) and "data_list" in document:
            document = _json_field(document["data_list"], "data_list")
        return as_items(document, "body")
    form = decode_form(raw.body)
    if "data_list" in form:
        return as_items(decode_json(form["data_list"], "data_list"), "data_list")
    if bare_form_is_item:
        return [{name: value for name, value in form.items() if name not in SECRET_FIELDS}]
    raise ParseError(f"form has no data_list field (fields: {_field_names(form)})")


def _field_names(form: dict[str, str]) -> str:
    # Names only, cut short: a value (the push token) must never reach an error message.
    names = sorted(name[:24] for name in form)
    return ", ".join(names[:8]) + (", …" if len(names) > 8 else "") if names else "none"


def _json_field(value: Any, what: str) -> Any:
    return decode_json(value, what) if isinstance(value, str) else value


def tsp_items(raw: RawBody) -> list[Any]:
    """TSP push: form `msgType` + `data` (one JSON object as a string)."""
    if not raw.body.strip():
        raise ParseError("empty body")
    if looks_like_json(raw):
        document = decode_json(decode_text(raw.body), "body")
        data = document.get("data", document) if isinstance(document, dict) else document
    else:
        form = decode_form(raw.body)
        if "data" not in form:
            raise ParseError(f"form has no data field (fields: {_field_names(form)})")
        data = form["data"]
    return as_items(_json_field(data, "data"), "data")


def json_document(raw: RawBody) -> Any:
    if not raw.body.strip():
        raise ParseError("empty body")
    return decode_json(decode_text(raw.body), "body")


def describe_validation_error(exc: ValidationError) -> str:
    """ "lat: not a number 'abc'" — field as the sender named it, our coercer's message."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = "missing" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


# Items parsed from one body. A hub sends tens per push; 10,000 fixes is a day of one device at 10 s. A body
# with more (1 MiB of `{}` holds 300,000) keeps the rest unparsed — stored, `partial`, re-parseable with a
# larger limit — so one body cannot hold a parse transaction for minutes.
MAX_ITEMS_PER_BODY = 10_000


def parse_items(
    items: list[Any],
    parse_item: Callable[[Any, datetime], ParsedEvent],
    received_at: datetime,
    *,
    objects_only: bool = True,
) -> ParseResult:
    """Parse each item on its own: a bad item becomes one readable error, the rest still parse."""
    result = ParseResult(events=[], item_errors=[])
    if len(items) > MAX_ITEMS_PER_BODY:
        result.item_errors.append(
            f"items {MAX_ITEMS_PER_BODY}-{len(items) - 1}: not parsed, a body holds at most {MAX_ITEMS_PER_BODY} items"
        )
        items = items[:MAX_ITEMS_PER_BODY]
    for index, item in enumerate(items):
        where = f"item {index}"
        try:
            if objects_only and not isinstance(item, dict):
                raise ItemError(f"not a JSON object ({type(item).__name__})")
            result.events.append(parse_item(item, received_at))
        except ValidationError as exc:
            result.item_errors.append(f"{where}: {describe_validation_error(exc)}")
        except ValueError as exc:  # ItemError, or a coercion failing outside pydantic
            result.item_errors.append(f"{where}: {exc}")
    return result


def items_parser(split: Splitter, parse_item: ItemParser) -> Callable[[RawBody], ParseResult]:
    def parse(raw: RawBody) -> ParseResult:
        return parse_items(split(raw), parse_item, raw.received_at)

    return parse
