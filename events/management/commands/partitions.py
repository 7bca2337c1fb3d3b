"""Create the log tables' monthly partitions ahead, or detach old ones (retention never deletes rows)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from events.services import LOG_TABLES, log_partitions_ensure


class Command(BaseCommand):
    help = "Ensure monthly partitions of events_raw/events_parsed; --detach-before YYYY-MM detaches older ones."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--months-ahead", type=int, default=settings.LOG_PARTITIONS_AHEAD_MONTHS)
        parser.add_argument("--months-back", type=int, default=1)
        parser.add_argument("--detach-before", help="YYYY-MM: detach every monthly partition that ends before it")

    def handle(self, *args: Any, **opts: Any) -> None:
        made = log_partitions_ensure(months_back=opts["months_back"], months_ahead=opts["months_ahead"])
        self.stdout.write(f"created {len(made)} partition(s){': ' + ', '.join(made) if made else ''}")
        if opts["detach_before"]:
            self._detach(opts["detach_before"])

    def _detach(self, before: str) -> None:
        try:
            cutoff = date.fromisoformat(before + "-01")
        except ValueError as exc:
            raise CommandError("--detach-before wants YYYY-MM") from exc
        for table, _key, _append_only in LOG_TABLES:
            for name in self._monthly_partitions(table):
                year, month = int(name[-7:-3]), int(name[-2:])
                if date(year, month, 1) < cutoff:
                    with connection.cursor() as cursor:
                        cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"')
                    self.stdout.write(f"detached {name} (the table stays; archive or drop it yourself)")

    @staticmethod
    def _monthly_partitions(table: str) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = %s::regclass AND c.relname ~ '_y[0-9]{4}m[0-9]{2}$' ORDER BY 1",
                [table],
            )
            return [r[0] for r in cursor.fetchall()]
