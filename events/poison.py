"""What hostile input can do to the database, and how one bad row is kept from stopping the rest.

Two rules, used by the parser's writer and by every projector (README, "Failure modes"):

1. **Text PostgreSQL cannot hold never reaches it.** `jsonb` and `text` refuse U+0000, and a lone UTF-16
   surrogate (U+D800 to U+DFFF, which JSON's `\\ud800` escape produces) is not UTF-8 at all; JSON has no
   Infinity or NaN. `pg_safe` removes NUL, replaces a lone surrogate with U+FFFD and writes a non-finite
   number as null, and counts each. (Nesting needs no rule here: a body deeper than Python's JSON decoder
   accepts, about 1,000 levels, is refused by the parser as unusable; anything shallower PostgreSQL takes.)
2. **A batch that fails is split until the failing item is alone** (`isolate`). Each attempt runs in a
   savepoint, so the items that are fine commit with the batch; the caller decides what a poisoned item
   becomes (a raw row: `failed` with the database's message; a projector's event: retried, then parked).
   An error that says the database itself is unavailable (connection lost, shutting down, out of disk, a
   deadlock) is *transient*: it is not the data's fault, nothing is marked, the whole batch is retried.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError, transaction

# SQLSTATE classes and codes that say "the database is not available right now", not "this row is bad":
# 08 connection exception, 53 insufficient resources (disk full, out of memory, too many connections),
# 57 operator intervention (shutdown, crash recovery, statement cancelled); serialization failure, deadlock,
# lock not available.
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
TRANSIENT_SQLSTATES = ("40001", "40P01", "55P03")

# json.dumps (ensure_ascii) writes NUL and surrogates as \u escapes and non-finite floats as bare words: one
# search over a serialised batch tells whether the slow, item-by-item clean-up is needed at all.
_UNSAFE_IN_JSON = re.compile(r"\\u0000|\\ud[89a-f][0-9a-f]{2}|NaN|Infinity")


def error_causes(exc: BaseException | None) -> list[BaseException]:
    """An exception and every exception it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def error_is_transient(exc: BaseException) -> bool:
    """True when the database, not the data, failed: retry later, mark nothing."""
    for cause in error_causes(exc):
        if isinstance(cause, InterfaceError | psycopg.InterfaceError):
            return True
        sqlstate = getattr(cause, "sqlstate", None)
        if sqlstate:
            return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or sqlstate in TRANSIENT_SQLSTATES
    # An OperationalError without a server's SQLSTATE: the connection broke before an answer came.
    return any(isinstance(cause, OperationalError | psycopg.OperationalError) for cause in error_causes(exc))


def error_text(exc: BaseException) -> str:
    """The error as a row can store it: "DataError: <the database's message>"."""
    return text_pg_safe(f"{type(exc).__name__}: {exc}".strip())


def isolate[T](items: Sequence[T], apply: Callable[[Sequence[T]], None]) -> list[tuple[T, BaseException]]:
    """Apply `apply` to all items in a savepoint; when it fails (not transiently), bisect until each failing
    item is alone. Returns the poisoned items with their errors; everything else has been applied. Call inside
    a transaction. Cost: one savepoint when nothing fails, about 2·log2(n) more per poisoned item."""
    if not items:
        return []
    try:
        with transaction.atomic():
            apply(items)
        return []
    except Exception as exc:
        if error_is_transient(exc):
            raise
        if len(items) == 1:
            return [(items[0], exc)]
    middle = len(items) // 2
    return isolate(items[:middle], apply) + isolate(items[middle:], apply)


@dataclass
class Cleaned:
    """How many values `pg_safe` had to change."""

    nul: int = 0
    surrogates: int = 0
    non_finite: int = 0

    def __bool__(self) -> bool:
        return bool(self.nul or self.surrogates or self.non_finite)

    def add(self, other: Cleaned) -> None:
        self.nul += other.nul
        self.surrogates += other.surrogates
        self.non_finite += other.non_finite

    def describe(self) -> str:
        parts = [
            f"{self.nul} NUL character(s) removed" if self.nul else "",
            f"{self.surrogates} lone surrogate(s) replaced by U+FFFD" if self.surrogates else "",
            f"{self.non_finite} non-finite number(s) stored as null" if self.non_finite else "",
        ]
        return "stored with changes PostgreSQL needs: " + "; ".join(p for p in parts if p)


def json_needs_cleaning(document: str) -> bool:
    """Could this json.dumps output hold something PostgreSQL refuses? (False positives only cost time.)"""
    return _UNSAFE_IN_JSON.search(document) is not None


def _text(value: str, cleaned: Cleaned) -> str:
    if "\x00" in value:
        cleaned.nul += value.count("\x00")
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # A high + low pair becomes its character again; a lone half becomes U+FFFD.
            fixed = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            cleaned.surrogates += max(fixed.count("\ufffd") - value.count("\ufffd"), 1)
            value = fixed
    return value


def pg_safe(value: Any, cleaned: Cleaned) -> Any:
    """`value` (decoded JSON) as PostgreSQL's jsonb accepts it; what changed is added to `cleaned`."""
    if isinstance(value, str):
        return _text(value, cleaned)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        cleaned.non_finite += 1
        return None
    if isinstance(value, list):
        return [pg_safe(v, cleaned) for v in value]
    if isinstance(value, dict):
        return {_text(str(k), cleaned): pg_safe(v, cleaned) for k, v in value.items()}
    return value


def text_pg_safe(value: str) -> str:
    """A message for a text column (an error can quote the bad input)."""
    return _text(value, Cleaned())
