"""The worker role: migrate, then a LISTEN-woken procrastinate worker for parse and project jobs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from fleet.roles import database_wait, run_procrastinate_worker


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
            call_command("migrate", interactive=False, verbosity=0)
        queues = [q.strip() for q in opts["queues"].split(",") if q.strip()]
        run_procrastinate_worker(name="worker", queues=queues, concurrency=opts["concurrency"])
