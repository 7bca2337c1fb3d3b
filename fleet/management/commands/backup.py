"""`manage.py backup --output DIR`: a full dump, an events-only slice and a manifest (fleet/backup.py).

    backup --output DIR                                  one backup into DIR (new or empty)
    backup --output DIR --prune --keep-daily 7 --keep-weekly 4
                                                         then delete the backups beside it the policy does not keep
    backup --output '/backups/%Y-%m-%dT%H%M%SZ' --prune … --daily-at 02:30
                                                         run until stopped: a backup every day at 02:30 UTC (and one at
                                                         once when the newest is older than the last 02:30), pruned
    backup --output '/backups/%Y-%m-%dT%H%M%SZ' --check  exit 0 when the newest backup there is younger than
                                                         --max-age-h (or one is being written), else 1: a healthcheck

strftime codes in the last part of DIR are filled with the UTC time of each run.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection

from fleet.backup import (
    BackupError,
    backup,
    backups_health,
    backups_prune,
    last_daily,
    next_daily,
    stored_backups,
)

log = structlog.get_logger(__name__)


def _clock(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError(value)
    return value


class Command(BaseCommand):
    help = "Back the database up: a full pg_dump, an events-only slice and a manifest (docs/operations.md, Backups)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", required=True, help="the backup's directory; strftime codes in its last part")
        parser.add_argument("--prune", action="store_true", help="then delete older backups beside it (retention)")
        parser.add_argument("--keep-daily", type=int, default=7, help="newest backup of each of the last N days")
        parser.add_argument("--keep-weekly", type=int, default=4, help="newest backup of each of the last M weeks")
        parser.add_argument("--daily-at", type=_clock, metavar="HH:MM", help="run until stopped, daily at HH:MM UTC")
        parser.add_argument("--retry-after", type=float, default=900, help="--daily-at: seconds before a retry")
        parser.add_argument("--check", action="store_true", help="healthcheck: is the newest backup recent enough?")
        parser.add_argument("--max-age-h", type=float, default=26, help="--check: the age that is too old")

    def handle(self, *args: Any, **opts: Any) -> None:
        template = Path(opts["output"])
        if "%" in str(template.parent):
            raise CommandError("--output: strftime codes only in the last part of the path")
        if min(opts["keep_daily"], opts["keep_weekly"]) < 0:
            raise CommandError("--keep-daily and --keep-weekly count backups: 0 or more")
        if opts["check"]:
            self._check(template.parent, max_age=timedelta(hours=opts["max_age_h"]))
        elif opts["daily_at"]:
            if "%" not in template.name:
                raise CommandError("--daily-at: give --output a strftime code (e.g. /backups/%Y-%m-%dT%H%M%SZ)")
            self._daily(template, opts)
        else:
            try:
                self._once(template, opts)
            except BackupError as exc:
                raise CommandError(str(exc)) from exc

    def say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _once(self, template: Path, opts: dict[str, Any]) -> None:
        output = Path(datetime.now(UTC).strftime(str(template))) if "%" in template.name else template
        backup(output, say=self.say)
        if opts["prune"]:
            backups_prune(output.parent, keep_daily=opts["keep_daily"], keep_weekly=opts["keep_weekly"], say=self.say)

    def _daily(self, template: Path, opts: dict[str, Any]) -> None:
        """Forever: back up when the newest backup is older than the last scheduled time, else sleep until the next;
        a failed run (the database away, the disk full) is logged and tried again after --retry-after seconds."""
        at = opts["daily_at"]
        call_command("wait_for_migrations")  # a backup of a half-migrated schema would not restore
        self.say(f"backup: daily at {at} UTC into {template.parent}, keeping {opts['keep_daily']} daily"
                 f" and {opts['keep_weekly']} weekly")  # fmt: skip
        while True:
            now = datetime.now(UTC)
            backups = stored_backups(template.parent)
            if backups and backups[0].taken_at >= last_daily(at, now=now):
                wake = next_daily(at, after=now)
                self.say(f"backup: next at {wake:%Y-%m-%d %H:%M} UTC")
                time.sleep(max(1.0, (wake - datetime.now(UTC)).total_seconds()))
                continue
            try:
                self._once(template, opts)
            except (BackupError, DatabaseError, OSError) as exc:
                log.error("backup.failed", error=str(exc), retry_after_s=opts["retry_after"])
                self.stderr.write(f"backup: failed: {exc}; trying again in {opts['retry_after']:.0f} s")
                connection.close()
                time.sleep(opts["retry_after"])

    def _check(self, root: Path, *, max_age: timedelta) -> None:
        ok, body = backups_health(root, max_age=max_age)
        self.stdout.write(json.dumps(body, sort_keys=True))
        if not ok:
            raise CommandError(f"no backup in {root} younger than {max_age}", returncode=1)
