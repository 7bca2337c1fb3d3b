"""The gateway role: a sync WSGI server (gunicorn) serving push, API, pages and admin."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the gateway role: wait for migrations, then exec gunicorn on fleet.wsgi."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=settings.GATEWAY_BIND)
        parser.add_argument("--workers", type=int, default=settings.GATEWAY_WORKERS)
        parser.add_argument("--reload", action="store_true", help="restart on code changes (APP_MODE=dev)")
        parser.add_argument("--no-wait", action="store_true", help="do not wait for migrations")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["no_wait"]:
            call_command("wait_for_migrations")
        argv = [
            sys.executable, "-m", "gunicorn", "fleet.wsgi:application",
            "--bind", opts["bind"],
            "--workers", str(opts["workers"]),
            "--worker-class", "sync",
            "--timeout", str(settings.GATEWAY_TIMEOUT_S),
            "--graceful-timeout", "10",
            "--access-logfile", "-" if settings.DEBUG else "/dev/null",
            "--error-logfile", "-",
            # One control socket per user by default: several gateways on a machine (tests, benches) would fight.
            "--no-control-socket",
        ]  # fmt: skip
        if opts["reload"] or (settings.APP_MODE == "dev" and settings.DEBUG):
            argv.append("--reload")
        self.stdout.write(f"gateway: http://{opts['bind']}/", ending="\n")
        self.stdout.flush()
        # exec, so the supervisor's signals reach gunicorn directly and Ctrl-C leaves nothing behind.
        os.execv(sys.executable, argv)
