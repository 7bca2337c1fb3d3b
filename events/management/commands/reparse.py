"""Re-run the current parsers over a window of the raw log, idempotently, and say what changed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection
from tqdm import tqdm

from events.cli import cli_time
from events.models import RawStatus
from events.services import ReparseOutcome, raw_events_reparse, raw_rows_page


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
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM events_raw r WHERE true {filters}", params)
            expected = cursor.fetchone()[0]
        totals = ReparseOutcome()
        after = (datetime(1970, 1, 1, tzinfo=UTC), 0)
        with tqdm(total=expected, unit="raw", disable=opts["verbosity"] == 0, file=self.stderr) as bar:
            while rows := raw_rows_page(where=filters, params=params, after=after, limit=opts["batch"]):
                totals.add(raw_events_reparse(rows=rows))
                after = (rows[-1].received_at, rows[-1].id)
                bar.update(len(rows))
        self.stdout.write(
            "reparsed {rows} raw rows: parsed events {before} → {after} (gained {gained}, lost {lost});"
            " {failed} raw rows failed".format(**vars(totals))
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
