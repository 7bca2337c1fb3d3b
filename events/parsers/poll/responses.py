"""The Open API response envelope (docs/jimi.md, "Response envelope"; Q4): `{"code", "message", "result", "data"}`.

Rows sit in `result` for most list methods and in `data` / `data.rows` / `data.result` for paged reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events.parsers.base import ParseError, ParseResult, RawBody
from events.parsers.envelopes import ItemParser, json_document, parse_items

RowsOf = Callable[[dict[str, Any]], list[Any]]


def response_document(raw: RawBody) -> dict[str, Any]:
    document = json_document(raw)
    if not isinstance(document, dict):
        raise ParseError("Open API response must be a JSON object")
    # Codes come as 0 or "0" (error examples show strings): compare as strings.
    if str(document.get("code", "0")) != "0":
        raise ParseError(f"Open API error response: code {document.get('code')!r} {document.get('message')!r}")
    return document


def _list_or_none(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) else None


def rows(document: dict[str, Any]) -> list[Any]:
    data = document.get("data")
    for candidate in (
        document.get("result"),
        data,
        data.get("rows") if isinstance(data, dict) else None,
        data.get("result") if isinstance(data, dict) else None,
    ):
        if (found := _list_or_none(candidate)) is not None:
            return found
    if document.get("result") is None and data is None:
        return []  # success with nothing to report
    raise ParseError("Open API response has no row array in result, data, data.rows or data.result")


def rows_parser(parse_row: ItemParser, rows_of: RowsOf = rows) -> Callable[[RawBody], ParseResult]:
    def parse(raw: RawBody) -> ParseResult:
        return parse_items(rows_of(response_document(raw)), parse_row, raw.received_at)

    return parse
