"""Run the Jimi sandbox: a local stand-in for the TrackSolid Pro Open API (devtools/jimi_sandbox)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devtools.jimi_sandbox.server import JimiSandbox
from domain.models import Account

SANDBOX_ACCOUNT = "Jimi sandbox"
CREDENTIALS_FILE = ".var/jimi-sandbox.credentials"


class Command(BaseCommand):
    help = (
        "Serve a local Jimi Open API (POST /route/rest) with N devices, signatures, expiring tokens and Jimi's error"
        " codes. Writes its made-up credentials to a file and provisions the account 'Jimi sandbox' that names it"
        " (credential_ref file:…), so JIMI_API_URL=<its URL> makes the cron role poll it and contract_check check it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--devices", type=int, default=5)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--credentials-file", default=CREDENTIALS_FILE, help="relative to the project directory")
        parser.add_argument("--account", default=SANDBOX_ACCOUNT, help="the account to provision for it")
        parser.add_argument("--no-account", action="store_true", help="provision nothing in the database")
        parser.add_argument(
            "--prepare",
            action="store_true",
            help="provision the account and the credentials file, then exit: 0, or 1 when another account has"
            " credentials of its own (real ones: make run then starts no sandbox)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["devices"] < 1:
            raise CommandError("--devices must be at least 1")
        sandbox = JimiSandbox(host=opts["host"], port=opts["port"], devices=opts["devices"], seed=opts["seed"])
        if opts["prepare"]:
            others = list(
                Account.objects.exclude(credential_ref="").exclude(name=opts["account"]).values_list("name", flat=True)
            )
            if others:
                raise CommandError(f"accounts with credentials of their own: {', '.join(others)}; no sandbox")
        if not opts["no_account"]:
            self._provision(sandbox, opts)
        if opts["prepare"]:
            return
        try:
            sandbox.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {opts['host']}:{opts['port']}: {exc.strerror or exc}") from exc
        self.stdout.write(f"Jimi sandbox on {sandbox.url} with {opts['devices']} devices of user {sandbox.user_id}")
        self.stdout.write(f"poll it: JIMI_API_URL={sandbox.url} (the account {opts['account']!r})")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        sandbox.stop()

    def _provision(self, sandbox: JimiSandbox, opts: dict[str, Any]) -> None:
        path = Path(settings.BASE_DIR) / opts["credentials_file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sandbox.credentials_text())
        os.chmod(path, 0o600)
        account, created = Account.objects.update_or_create(
            name=opts["account"],
            defaults={"jimi_account": sandbox.user_id, "credential_ref": f"file:{opts['credentials_file']}"},
        )
        self.stdout.write(f"{'created' if created else 'updated'} account {account.name!r} (credentials: {path})")
