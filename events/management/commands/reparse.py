"""Re-run the current parsers over a window of the raw log, idempotently, and say what changed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from tqdm import tqdm

from events.cli import cli_time
from events.models import RawStatus
from events.services import RawRow, raw_rows_parse

_SELECT = """
SELECT r.id, r.received_at, r.source_kind, r.push_kind, r.content_type, r.body, s.account_id
  FROM events_raw r LEFT JOIN events_push_sources s ON s.id = r.source_id
 WHERE (r.received_at, r.id) > (%(after_at)s, %(after_id)s) {filters}
 ORDER BY r.received_at, r.id
 LIMIT %(limit)s
"""


def _keys(cursor: Any, ids: list[int]) -> set[str]:
    cursor.execute("SELECT dedup_key FROM events_parsed WHERE raw_id = ANY(%s)", [ids])
    return {r[0] for r in cursor.fetchall()}


class Command(BaseCommand):
    help = "Re-parse raw events with the current parsers (a window, a source, a kind, a status)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--source", help="push source name")
        parser.add_argument("--kind", help="push kind (IoT Hub path, TSP msgType, …)")
        parser.add_argument("--since", help="received at or after (ISO date or time, UTC unless zoned)")
        parser.add_argument("--until", help="received before")
        parser.add_argument("--status", choices=[s.value for s in RawStatus])
        parser.add_argument("--batch", type=int, default=500)

    def handle(self, *args: Any, **opts: Any) -> None:
        filters, params = self._filters(opts)
        totals = {"rows": 0, "before": 0, "after": 0, "gained": 0, "lost": 0, "failed": 0}
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM events_raw r WHERE true {filters}", params)
            expected = cursor.fetchone()[0]
        after_at, after_id = datetime(1970, 1, 1, tzinfo=UTC), 0
        with tqdm(total=expected, unit="raw", disable=opts["verbosity"] == 0, file=self.stderr) as bar:
            while True:
                rows = self._chunk(filters, {**params, "after_at": after_at, "after_id": after_id}, opts["batch"])
                if not rows:
                    break
                self._reparse(rows, totals)
                after_at, after_id = rows[-1].received_at, rows[-1].id
                bar.update(len(rows))
        self.stdout.write(
            "reparsed {rows} raw rows: parsed events {before} → {after} (gained {gained}, lost {lost});"
            " {failed} raw rows failed".format(**totals)
        )

    @staticmethod
    def _filters(opts: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        if opts["source"]:
            clauses.append("r.source_id = (SELECT id FROM events_push_sources WHERE name = %(source)s)")
            params["source"] = opts["source"]
        if opts["kind"]:
            clauses.append("r.push_kind = %(kind)s")
            params["kind"] = opts["kind"]
        if since := cli_time(opts["since"]):
            clauses.append("r.received_at >= %(since)s")
            params["since"] = since
        if until := cli_time(opts["until"]):
            clauses.append("r.received_at < %(until)s")
            params["until"] = until
        if opts["status"]:
            clauses.append("r.status = %(status)s")
            params["status"] = opts["status"]
        return "".join(f" AND {c}" for c in clauses), params

    @staticmethod
    def _chunk(filters: str, params: dict[str, Any], limit: int) -> list[RawRow]:
        with connection.cursor() as cursor:
            cursor.execute(_SELECT.format(filters=filters), {**params, "limit": limit})
            return [RawRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6]) for r in cursor.fetchall()]

    @staticmethod
    def _reparse(rows: list[RawRow], totals: dict[str, int]) -> None:
        ids = [r.id for r in rows]
        with transaction.atomic(), connection.cursor() as cursor:
            # Take the rows off the work-list too, so a running worker doesn't parse them at the same time.
            cursor.execute("DELETE FROM events_raw_pending WHERE raw_id = ANY(%s)", [ids])
            before = _keys(cursor, ids)
            outcome = raw_rows_parse(rows, replace=True)
            after = _keys(cursor, ids)
        totals["rows"] += len(rows)
        totals["before"] += len(before)
        totals["after"] += len(after)
        totals["gained"] += len(after - before)
        totals["lost"] += len(before - after)
        totals["failed"] += outcome.failed
