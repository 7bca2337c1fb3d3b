"""The worker role: migrate, then a LISTEN-woken procrastinate worker for parse and project jobs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from fleet.roles import run_procrastinate_worker


class Command(BaseCommand):
    help = "Run the worker role: apply migrations (only this role migrates), then drain the parse/project queues."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--concurrency", type=int, default=settings.WORKER_CONCURRENCY)
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        run_procrastinate_worker(name="worker", queues=list(settings.WORKER_QUEUES), concurrency=opts["concurrency"])
