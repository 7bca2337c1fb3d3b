"""Which parser handles a raw row: source_kind → push_kind → Parser, with a per-source fallback.

A source's fallback covers push kinds it has no parser for (IoT Hub paths, TSP msgTypes and poll methods
become `unsupported` events at version 0; csv refuses). Adding a parser = adding one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from events.parsers import csv_positions, hmac_json, iothub, ops, poll, tsp
from events.parsers.base import ParseError, Parser, ParseResult, RawBody
from events.parsers.unsupported import UNSUPPORTED_VERSION


@dataclass(frozen=True)
class Source:
    parsers: Mapping[str, Parser]
    fallback: Callable[[str], Parser]


def _refuse(source_kind: str) -> Callable[[str], Parser]:
    def for_push_kind(push_kind: str) -> Parser:
        def parse(raw: RawBody) -> ParseResult:
            raise ParseError(f"no {source_kind} parser for push_kind {push_kind!r}")

        return Parser(UNSUPPORTED_VERSION, parse)

    return for_push_kind


def _hmac_any(push_kind: str) -> Parser:
    # The gateway stores "hmac" as push_kind; the schema is the body's `type`.
    return hmac_json.PARSER


SOURCES: dict[str, Source] = {
    "jimi-iothub": Source(iothub.PARSERS, iothub.fallback),
    "jimi-tsp": Source(tsp.PARSERS, tsp.fallback),
    "hmac": Source({}, _hmac_any),
    "csv": Source(csv_positions.PARSERS, _refuse("csv")),
    "jimi-poll": Source(poll.PARSERS, poll.fallback),
    "ops": Source(ops.PARSERS, _refuse("ops")),
}


def _lookup_key(source_kind: str, push_kind: str) -> str:
    # IoT Hub paths may be stored as given in the URL ("/pushgps", "pushGps").
    return push_kind.strip().strip("/").lower() if source_kind == "jimi-iothub" else push_kind.strip()


def find_parser(source_kind: str, push_kind: str) -> Parser:
    source = SOURCES.get(source_kind)
    if source is None:
        raise ParseError(f"unknown source_kind {source_kind!r} (known: {', '.join(SOURCES)})")
    return source.parsers.get(_lookup_key(source_kind, push_kind)) or source.fallback(push_kind)


def parser_version(source_kind: str, push_kind: str) -> str:
    """ "jimi-iothub/pushgps@1". A different string than the one stored on a raw row means: re-parse it."""
    version = find_parser(source_kind, push_kind).version
    return f"{source_kind}/{_lookup_key(source_kind, push_kind)}@{version}"


def parse_raw(
    *, source_kind: str, push_kind: str, content_type: str, body: bytes, received_at: datetime
) -> ParseResult:
    """Parse one stored raw body. Raises ParseError when the whole body is unusable."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    raw = RawBody(push_kind=push_kind, content_type=content_type or "", body=body, received_at=received_at)
    return find_parser(source_kind, push_kind).parse(raw)
