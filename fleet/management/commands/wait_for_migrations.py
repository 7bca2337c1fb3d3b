"""Block until the database answers and every migration is applied (the worker role applies them)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from fleet.migrations_state import migrations_complete


class Command(BaseCommand):
    help = "Wait until migrations are complete; exit non-zero after --timeout seconds."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=settings.MIGRATION_WAIT_TIMEOUT_S)

    def handle(self, *args: Any, **opts: Any) -> None:
        deadline = time.monotonic() + opts["timeout"]
        said = False
        while True:
            try:
                if migrations_complete():
                    return
                reason = "migrations pending"
            except DatabaseError as exc:
                reason = f"database not ready: {str(exc).strip()[:120]}"
                connections.close_all()
            if time.monotonic() > deadline:
                raise CommandError(f"gave up waiting: {reason}")
            if not said:
                self.stderr.write(f"waiting for migrations ({reason})")
                said = True
            time.sleep(1)
