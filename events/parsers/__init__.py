"""Versioned, pure parsers: one stored raw body → typed events. No ORM, no I/O.

The contract other code depends on:

    KINDS, ParsedEvent, ParseResult, ParseError
    parse_raw(*, source_kind, push_kind, content_type, body, received_at) -> ParseResult
    parser_version(source_kind, push_kind) -> str        # "jimi-iothub/pushgps@1"

Payload shapes per kind: `events.parsers.models`; dedup rules per kind: `events.parsers.kinds`.
"""

from __future__ import annotations

from events.parsers.base import KINDS, ParsedEvent, ParseError, ParseResult
from events.parsers.registry import parse_raw, parser_version

__all__ = ["KINDS", "ParseError", "ParseResult", "ParsedEvent", "parse_raw", "parser_version"]
