"""Import position rows from a CSV file as raw events; they take the same parse path as a push."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from tqdm import tqdm

from events.models import PushSource, SourceKind

COLUMNS = ["imei", "time", "lat", "lon", "speed", "heading", "ignition"]


class Command(BaseCommand):
    help = "Import a CSV of positions (imei,time,lat,lon,speed,heading,ignition) through the raw log."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--source", required=True, help="push source whose account unknown devices join")
        parser.add_argument("--rows-per-event", type=int, default=1000, help="CSV rows per raw event")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            source = PushSource.objects.get(name=opts["source"])
        except PushSource.DoesNotExist as exc:
            raise CommandError(f"no push source named {opts['source']!r}") from exc
        text = opts["file"].read_text(encoding="utf-8-sig")
        reader = csv.reader(io.StringIO(text))
        header = [h.strip().lower() for h in next(reader, [])]
        if missing := [c for c in COLUMNS if c not in header]:
            raise CommandError(f"missing column(s): {', '.join(missing)} (header: {','.join(header)})")
        lines = [row for row in reader if any(cell.strip() for cell in row)]
        chunks = [lines[i : i + opts["rows_per_event"]] for i in range(0, len(lines), opts["rows_per_event"])]
        with transaction.atomic():
            for chunk in tqdm(chunks, unit="raw", disable=opts["verbosity"] == 0, file=self.stderr):
                self._insert(source, header, chunk)
        self.stdout.write(f"imported {len(lines)} rows as {len(chunks)} raw events from {opts['file']}")

    @staticmethod
    def _insert(source: PushSource, header: list[str], rows: list[list[str]]) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body, headers)"
                " VALUES (%s, %s, 'positions', 'text/csv', %s, '{}')",
                [source.id, SourceKind.CSV, out.getvalue().encode("utf-8")],
            )
