"""The cron role: a procrastinate worker that runs the periodic tasks (polls, SLO minute, partition upkeep) and the
background derivations (map matching), niced by CRON_NICE."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from fleet.roles import run_procrastinate_worker


class Command(BaseCommand):
    help = "Run the cron role: wait for migrations, then run the periodic tasks."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-wait", action="store_true", help="do not wait for migrations")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["no_wait"]:
            call_command("wait_for_migrations")
        if settings.CRON_NICE > 0:
            os.nice(settings.CRON_NICE)
        run_procrastinate_worker(
            name="cron", queues=list(settings.CRON_QUEUES), concurrency=max(1, settings.CRON_CONCURRENCY)
        )
