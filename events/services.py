"""Writes of the events layer: parse raw rows into events_parsed, provision unknown devices, keep partitions.

The parse path: claim a batch from the work-list (SKIP LOCKED), run the pure parser of each row's source and
kind, write the typed rows (deduplicated), record the outcome on the raw row — all in one transaction, so a
worker killed mid-batch leaves the batch claimed by nobody and parsed by nobody.
"""

from __future__ import annotations

import json
import secrets
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as replace_field
from datetime import datetime
from typing import Any, cast

import orjson
import structlog
from django.conf import settings
from django.db import connection, transaction

from domain.models import Device, Lifecycle
from events.models import PushSource, RawStatus, SourceKind
from events.parsers import ParsedEvent, ParseError, ParseResult, parse_raw, parser_version
from events.poison import Cleaned, error_text, isolate, json_needs_cleaning, pg_safe, text_pg_safe

log = structlog.get_logger(__name__)

# The parse job (its name is what the events_raw trigger enqueues) and its queue.
PARSE_TASK = "events.parse_pending"
PARSE_QUEUE = "parse"

# How much of an error message a raw row keeps (the rest is in the worker's log).
ERROR_MAX_CHARS = 4000


@dataclass(frozen=True)
class RawRow:
    id: int
    received_at: datetime
    source_kind: str
    push_kind: str
    content_type: str
    body: bytes
    account_id: int | None


@dataclass
class ParseOutcome:
    rows: int = 0
    events: int = 0
    failed: int = 0
    partial: int = 0
    raw_ids: list[int] = field(default_factory=list)


@dataclass
class _RowResult:
    row: RawRow
    status: str
    version: str
    events: list[ParsedEvent] = field(default_factory=list)
    error: str = ""


_RAW_SELECT = """
SELECT r.id, r.received_at, r.source_kind, r.push_kind, r.content_type, r.body, s.account_id
  FROM events_raw r LEFT JOIN events_push_sources s ON s.id = r.source_id
"""


def raw_events_claim(*, limit: int) -> list[RawRow]:
    """Take up to `limit` rows off the work-list for this transaction (others skip them)."""
    with connection.cursor() as cursor:
        # ARRAY(…) makes the locking subquery an init-plan and the DELETE an index scan on its ids. The usual
        # `WHERE raw_id IN (SELECT … SKIP LOCKED)` is planned as a hash join over the whole work-list: 40x
        # slower at 100k waiting rows, and two concurrent drains of it spun for minutes.
        cursor.execute(
            "DELETE FROM events_raw_pending WHERE raw_id = ANY(ARRAY("
            " SELECT raw_id FROM events_raw_pending ORDER BY raw_id LIMIT %s FOR UPDATE SKIP LOCKED"
            ")) RETURNING raw_id, received_at",
            [limit],
        )
        claimed = cursor.fetchall()
    if not claimed:
        return []
    return raw_rows_fetch(ids=[c[0] for c in claimed], received=[c[1] for c in claimed])


def _raw_rows(sql: str, params: Sequence[Any] | dict[str, Any]) -> list[RawRow]:
    """The one read of raw rows as the parsers take them (the claim, a re-parse by keys, a re-parse window)."""
    with connection.cursor() as cursor:
        cursor.execute(_RAW_SELECT + sql, params)
        return [RawRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6]) for r in cursor.fetchall()]


def raw_rows_fetch(*, ids: Sequence[int], received: Sequence[datetime]) -> list[RawRow]:
    # received_at lets the planner prune partitions.
    return _raw_rows(
        " WHERE r.id = ANY(%s) AND r.received_at = ANY(%s) ORDER BY r.id", [list(ids), list(set(received))]
    )


def raw_rows_page(*, where: str, params: dict[str, Any], after: tuple[datetime, int], limit: int) -> list[RawRow]:
    """The next `limit` raw rows after `after` (received_at, id) matching `where` (" AND …" on alias r): a window
    walked in order, one page at a time (keyset pagination: no OFFSET over a large log)."""
    return _raw_rows(
        f" WHERE (r.received_at, r.id) > (%(after_at)s, %(after_id)s) {where} ORDER BY r.received_at, r.id"
        " LIMIT %(limit)s",
        {**params, "after_at": after[0], "after_id": after[1], "limit": limit},
    )


def _parse_one(row: RawRow) -> _RowResult:
    version = parser_version(row.source_kind, row.push_kind)
    if row.account_id is None:
        return _RowResult(row, RawStatus.FAILED, version, error="raw row has no source account")
    try:
        result: ParseResult = parse_raw(
            source_kind=row.source_kind,
            push_kind=row.push_kind,
            content_type=row.content_type,
            body=row.body,
            received_at=row.received_at,
        )
    except ParseError as exc:
        return _RowResult(row, RawStatus.FAILED, version, error=str(exc)[:ERROR_MAX_CHARS])
    except Exception as exc:  # a parser bug must never kill the worker: the row says what happened
        log.exception("parse.crashed", raw_id=row.id)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return _RowResult(row, RawStatus.FAILED, version, error=f"parser crashed: {detail}"[:ERROR_MAX_CHARS])
    if result.item_errors:
        error = "\n".join(result.item_errors)[:ERROR_MAX_CHARS]
        status = RawStatus.PARTIAL if result.events else RawStatus.FAILED
        return _RowResult(row, status, version, events=result.events, error=error)
    return _RowResult(row, RawStatus.PARSED, version, events=result.events)


def devices_resolve(*, imeis_by_account: dict[str, int]) -> dict[str, tuple[int, int]]:
    """IMEI → (device id, account id). Unknown IMEIs are provisioned under the given account, never dropped."""
    if not imeis_by_account:
        return {}
    known = {
        imei: (pk, acc)
        for pk, imei, acc in Device.objects.filter(imei__in=list(imeis_by_account)).values_list(
            "id", "imei", "account_id"
        )
    }
    missing = [imei for imei in imeis_by_account if imei not in known]
    if missing:
        Device.objects.bulk_create(
            [
                Device(
                    imei=imei,
                    account_id=imeis_by_account[imei],
                    lifecycle=Lifecycle.PROVISIONED,
                    lifecycle_reason="first seen in a push",
                )
                for imei in missing
            ],
            ignore_conflicts=True,  # another worker may provision the same IMEI at the same time
        )
        for pk, imei, acc in Device.objects.filter(imei__in=missing).values_list("id", "imei", "account_id"):
            known[imei] = (pk, acc)
        log.info("devices.provisioned", count=len(missing))
    return known


# The batch's events reach events_parsed through a temporary table of this session: one binary COPY (the values as
# psycopg's C code writes them, no text to parse but each payload's JSON), then one INSERT … SELECT that takes the
# rows out of it (DELETE … RETURNING: a bisected batch writes part of itself more than once per transaction) with
# ON CONFLICT. COPY cannot resolve conflicts itself; and a JSON document through jsonb_to_recordset, or parameter
# arrays through unnest, cost PostgreSQL a third more per event than this. The table is created in the batch's own
# transaction when the session lacks it (a rolled-back batch takes it away; a pooled server connection may be
# another one), emptied at every commit.
_STAGING_CREATE = """
CREATE TEMP TABLE IF NOT EXISTS events_parsed_staging (
    raw_id bigint, raw_received_at timestamptz, kind text, account_id bigint, device_id bigint,
    occurred_at timestamptz, parser_version text, payload text, dedup_key text
) ON COMMIT DELETE ROWS
"""
_STAGING_COPY = (
    "COPY events_parsed_staging (raw_id, raw_received_at, kind, account_id, device_id, occurred_at, parser_version,"
    " payload, dedup_key) FROM STDIN (FORMAT BINARY)"
)
_STAGING_TYPES = ["int8", "timestamptz", "text", "int8", "int8", "timestamptz", "text", "text", "text"]
_PARSED_INSERT = """
WITH staged AS (DELETE FROM events_parsed_staging RETURNING *)
INSERT INTO events_parsed (raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at,
                           parser_version, payload, dedup_key)
SELECT raw_id, raw_received_at, kind, account_id, device_id, occurred_at, raw_received_at, parser_version,
       payload::jsonb, dedup_key
  FROM staged
ON CONFLICT (dedup_key, occurred_at) DO UPDATE
   SET kind = EXCLUDED.kind, account_id = EXCLUDED.account_id, device_id = EXCLUDED.device_id,
       parser_version = EXCLUDED.parser_version, payload = EXCLUDED.payload
 WHERE events_parsed.raw_id = EXCLUDED.raw_id
   AND (events_parsed.parser_version, events_parsed.payload)
       IS DISTINCT FROM (EXCLUDED.parser_version, EXCLUDED.payload)
"""

# A parsed row as staged: raw id, raw received_at (the event's received_at too), kind, account, device, occurred_at,
# parser version, payload (JSON text), dedup key.
StagedRow = tuple[int, datetime, str, int | None, int | None, datetime, str, str, str]


class _NeedsCleaning(Exception):
    """A payload holds what PostgreSQL refuses (events/poison.py): the batch is cleaned before it is written."""


def _payload_text(payload: dict[str, Any]) -> str:
    """A payload as JSON text jsonb takes. orjson writes nearly all of them; it refuses a lone surrogate and an
    integer beyond 64 bits (the json module writes the latter exactly) and writes NUL as the escape jsonb refuses.
    A non-finite number cannot reach this point: every payload is a pydantic JSON-mode dump, which has written it
    as null already."""
    try:
        text = orjson.dumps(payload)
    except orjson.JSONEncodeError:
        fallback = json.dumps(payload)
        if json_needs_cleaning(fallback):
            raise _NeedsCleaning from None
        return fallback
    if b"\\u0000" in text:
        raise _NeedsCleaning
    return text.decode()


def _parsed_rows(results: Iterable[_RowResult], devices: dict[str, tuple[int, int]]) -> list[StagedRow]:
    """The batch's events as staged rows. A duplicate inside the batch keeps its first occurrence: the same event
    twice in one statement would make ON CONFLICT DO UPDATE fail. Raises _NeedsCleaning."""
    rows: list[StagedRow] = []
    seen: set[tuple[str, datetime]] = set()
    no_device = (None, None)
    for res in results:
        raw_id, raw_received, raw_account = res.row.id, res.row.received_at, res.row.account_id
        version = res.version
        for ev in res.events:
            key = (ev.dedup_key, ev.occurred_at)
            if key in seen:
                continue
            seen.add(key)
            device_id, account_id = devices.get(ev.imei, no_device) if ev.imei else no_device
            rows.append(
                (
                    raw_id,
                    raw_received,
                    ev.kind,
                    account_id or raw_account,
                    device_id,
                    ev.occurred_at,
                    version,
                    _payload_text(ev.payload),
                    ev.dedup_key,
                )
            )
    return rows


def _parsed_write(results: Sequence[_RowResult], devices: dict[str, tuple[int, int]]) -> None:
    """Write the batch's events, every value as PostgreSQL can store it: a batch with a payload it would refuse is
    cleaned event by event first (pg_safe), and each row cleaned says what changed."""
    try:
        rows = _parsed_rows(results, devices)
    except _NeedsCleaning:
        rows = _parsed_rows(_results_cleaned(results), devices)
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(_STAGING_CREATE)
        with cursor.cursor.copy(_STAGING_COPY) as copy:
            copy.set_types(_STAGING_TYPES)
            for row in rows:
                copy.write_row(row)
        cursor.execute(_PARSED_INSERT)


def _raw_status_write(results: Sequence[_RowResult]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE events_raw r SET status = u.status, parser_version = u.version, parsed_at = clock_timestamp(),"
            "       parsed_count = u.n, error = u.error"
            "  FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::text[], %s::int[], %s::text[])"
            "       AS u(id, received_at, status, version, n, error)"
            " WHERE r.id = u.id AND r.received_at = u.received_at",
            [
                [r.row.id for r in results],
                [r.row.received_at for r in results],
                [str(r.status) for r in results],
                [r.version for r in results],
                [len(r.events) for r in results],
                [text_pg_safe(r.error) for r in results],
            ],
        )


def _stale_parsed_delete(results: Sequence[_RowResult]) -> int:
    """On reparse: drop this raw row's parsed events that the current parser no longer produces."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM events_parsed p USING unnest(%s::bigint[]) AS u(raw_id)"
            " WHERE p.raw_id = u.raw_id AND NOT (p.dedup_key = ANY(%s::text[]))",
            [[r.row.id for r in results], [ev.dedup_key for r in results for ev in r.events]],
        )
        deleted: int = cursor.rowcount
        return deleted


def _results_write(results: Sequence[_RowResult], *, replace: bool) -> None:
    """Devices, parsed events and raw status of these rows: all of it, or (raising) none of it."""
    imeis: dict[str, int] = {}
    for res in results:
        for ev in res.events:
            if ev.imei:
                # A row without a source account has no events: _parse_one fails it.
                imeis.setdefault(ev.imei, cast(int, res.row.account_id))
    devices = devices_resolve(imeis_by_account=imeis)
    if replace:
        _stale_parsed_delete(results)
    _parsed_write(results, devices)
    _raw_status_write(results)


def _results_cleaned(results: Sequence[_RowResult]) -> Sequence[_RowResult]:
    """The events as PostgreSQL can store them (events/poison.py); each row says what was changed."""
    for res in results:
        cleaned = Cleaned()
        events = [replace_field(ev, payload=pg_safe(ev.payload, cleaned)) for ev in res.events]
        if cleaned:
            log.warning("parse.cleaned", raw_id=res.row.id, note=cleaned.describe())
            res.events = events
            res.error = "\n".join(filter(None, [res.error, cleaned.describe()]))[:ERROR_MAX_CHARS]
    return results


def _refused(res: _RowResult, exc: BaseException) -> _RowResult:
    log.warning("parse.refused", raw_id=res.row.id, error=str(exc))
    error = f"the database refused this row's events: {error_text(exc)}"[:ERROR_MAX_CHARS]
    return _RowResult(res.row, RawStatus.FAILED, res.version, error=error)


def raw_rows_parse(rows: Sequence[RawRow], *, replace: bool = False) -> ParseOutcome:
    """Parse rows and write their events and status. Call inside a transaction (the claim's).

    A row whose events the database refuses is found by bisection and marked `failed` with the database's
    message; the rest of the batch commits (events/poison.py). A transient error (the database going away)
    raises: the claim rolls back and the batch waits on the work-list for the next run."""
    results = [_parse_one(row) for row in rows]
    poisoned = isolate(results, lambda part: _results_write(part, replace=replace))
    if poisoned:
        refused = {res.row.id: _refused(res, exc) for res, exc in poisoned}
        results = [refused.get(res.row.id, res) for res in results]
        _raw_status_write(list(refused.values()))
    outcome = ParseOutcome(rows=len(results), raw_ids=[r.row.id for r in results])
    for res in results:
        outcome.events += len(res.events)
        outcome.failed += res.status == RawStatus.FAILED
        outcome.partial += res.status == RawStatus.PARTIAL
    return outcome


@dataclass
class ReparseOutcome:
    rows: int = 0
    before: int = 0  # parsed events of these rows before
    after: int = 0
    gained: int = 0
    lost: int = 0
    failed: int = 0

    def add(self, other: ReparseOutcome) -> None:
        for name in ("rows", "before", "after", "gained", "lost", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _dedup_keys(raw_ids: list[int]) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT dedup_key FROM events_parsed WHERE raw_id = ANY(%s)", [raw_ids])
        return {r[0] for r in cursor.fetchall()}


def raw_events_reparse(*, rows: Sequence[RawRow]) -> ReparseOutcome:
    """Re-run the current parsers over these raw rows, replacing their events, in one transaction — the one
    re-parse of `manage.py reparse`, the admin action and its job. The rows leave the work-list too, so a running
    worker does not parse them at the same time. The log itself is never touched."""
    ids = [r.id for r in rows]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM events_raw_pending WHERE raw_id = ANY(%s)", [ids])
        before = _dedup_keys(ids)
        parsed = raw_rows_parse(rows, replace=True)
        after = _dedup_keys(ids)
    outcome = ReparseOutcome(
        rows=len(rows),
        before=len(before),
        after=len(after),
        gained=len(after - before),
        lost=len(before - after),
        failed=parsed.failed,
    )
    log.info("parse.reparsed", **vars(outcome))
    return outcome


def raw_events_parse_batch(*, limit: int) -> ParseOutcome:
    """Claim and parse one batch from the work-list, in one transaction."""
    with transaction.atomic():
        rows = raw_events_claim(limit=limit)
        if not rows:
            return ParseOutcome()
        outcome = raw_rows_parse(rows)
    log.info("parse.batch", rows=outcome.rows, events=outcome.events, failed=outcome.failed)
    return outcome


def _drain_once(batch_size: int, total: ParseOutcome, deadline: float, *, fan_out: bool = False) -> tuple[int, bool]:
    """Parse batches until the work-list is empty (True) or the job's time is up (False).

    With `fan_out`, the first full batch (more rows may be waiting) makes sure one more parse job waits: a free
    worker slot takes it and drains beside this one (SKIP LOCKED keeps their batches apart), and does the same in
    turn, so a backlog is parsed by every free slot of every worker instead of one job at a time."""
    rows = 0
    while time.monotonic() < deadline:
        outcome = raw_events_parse_batch(limit=batch_size)
        if not outcome.rows:
            return rows, True
        if fan_out and outcome.rows >= batch_size:
            wake_requeue(queue=PARSE_QUEUE, task=PARSE_TASK)
            fan_out = False
        rows += outcome.rows
        total.rows += outcome.rows
        total.events += outcome.events
        total.failed += outcome.failed
        total.partial += outcome.partial
    return rows, False


def wake_barrier(*, task: str) -> None:
    """Wait until every writer that saw this task's job waiting has committed (events/sql/wake.sql)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT fleet_wake_barrier(%s)", [task])


def wake_requeue(*, queue: str, task: str) -> None:
    """Make sure a job for `task` waits: a job that ran out of time hands the rest of its backlog on, and a parse
    job that found a backlog asks for a helper."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT fleet_wake_once(%s, %s)", [queue, task])


def raw_events_drain(*, batch_size: int, wake_task: str | None = None, budget_s: float | None = None) -> ParseOutcome:
    """Parse batches until the work-list is empty. As the woken job (`wake_task`), hand a backlog to more jobs
    (_drain_once's fan-out) and look once more after the barrier: rows committed by writers that counted on this
    job are visible by then. A job stops after `budget_s` (JOB_TIME_BUDGET_S) and queues a successor, so a worker
    asked to stop never waits long for it."""
    total = ParseOutcome()
    deadline = time.monotonic() + (budget_s if budget_s is not None else settings.JOB_TIME_BUDGET_S)
    while True:
        _, empty = _drain_once(batch_size, total, deadline, fan_out=wake_task is not None)
        if not empty:
            wake_requeue(queue=PARSE_QUEUE, task=PARSE_TASK)
            return total
        if wake_task is None:
            return total
        wake_barrier(task=wake_task)
        rows, empty = _drain_once(batch_size, total, deadline)
        if not empty:
            wake_requeue(queue=PARSE_QUEUE, task=PARSE_TASK)
            return total
        if not rows:
            return total


LOG_TABLES = (("events_raw", "received_at", True), ("events_parsed", "occurred_at", False))


def log_partitions_ensure(*, months_back: int = 1, months_ahead: int = 3) -> list[str]:
    """Create the monthly partitions of the log tables around now; returns the names created."""
    made: list[str] = []
    with connection.cursor() as cursor:
        for table, key, append_only in LOG_TABLES:
            cursor.execute(
                "SELECT fleet_partitions_ensure(%s, %s, %s, %s, %s)",
                [table, key, append_only, months_back, months_ahead],
            )
            made += [r[0] for r in cursor.fetchall()]
    return made


# --- Ops actions: appended to the log like a push ------------------------------------------------------------------


class OpsSourceTaken(Exception):
    """A source named like an account's ops source exists with another kind."""


def ops_source(*, account_id: int) -> PushSource:
    """The log source an account's ops actions are written under: one per account, created on first use. It has no
    push URL (the gateway takes only the push kinds), so its secret is never asked for; it names the account."""
    source, _ = PushSource.objects.get_or_create(
        name=f"ops-{account_id}",
        defaults={"kind": SourceKind.OPS, "account_id": account_id, "secret": secrets.token_urlsafe(32)},
    )
    if source.kind != SourceKind.OPS or source.account_id != account_id:
        raise OpsSourceTaken(f"the source {source.name!r} is not the ops source of account #{account_id}")
    return source


def ops_event_append(*, account_id: int, action: str, document: dict[str, Any]) -> tuple[int, datetime]:
    """Append one ops action (events/parsers/ops.py: `action` is its push_kind) to events_raw; returns the row's
    (id, received_at). It is parsed and projected like any push: the commit wakes the parser."""
    source = ops_source(account_id=account_id)
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body, headers)"
            " VALUES (%s, %s, %s, 'application/json', %s, '{}') RETURNING id, received_at",
            [source.id, SourceKind.OPS, action, body],
        )
        raw_id, received_at = cursor.fetchone()
    log.info("ops.appended", raw_id=raw_id, action=action, account_id=account_id)
    return raw_id, received_at
