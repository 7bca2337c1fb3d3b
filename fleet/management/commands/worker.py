"""The worker role: migrate, then a LISTEN-woken procrastinate worker for parse and project jobs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

from fleet.roles import database_wait, run_procrastinate_worker

# Held for the length of `migrate`: worker processes started together (several hosts after a deploy) apply the
# migrations one at a time, so the later ones find nothing left to do. Without it two of them applied the same
# migration at once: one died on "relation … already exists" and a data migration could run twice.
MIGRATE_LOCK = "fleet.migrate"


class Command(BaseCommand):
    help = "Run the worker role: apply migrations (only this role migrates), then drain the parse/project queues."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--concurrency", type=int, default=settings.WORKER_CONCURRENCY)
        parser.add_argument("--no-migrate", action="store_true")
        parser.add_argument(
            "--queues",
            default=",".join(settings.WORKER_QUEUES),
            help="comma-separated queues to drain (scale parse and project apart: --queues parse,worker)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["no_migrate"]:
            database_wait(role="worker")  # a worker started while the database is down waits for it
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [MIGRATE_LOCK])
                call_command("migrate", interactive=False, verbosity=0)
            finally:
                connection.close()  # ends the session, and with it the lock
        queues = [q.strip() for q in opts["queues"].split(",") if q.strip()]
        run_procrastinate_worker(name="worker", queues=queues, concurrency=opts["concurrency"])
