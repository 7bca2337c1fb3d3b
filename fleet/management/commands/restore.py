"""`manage.py restore --input DIR [--events-only]`: a backup into an empty database (fleet/backup.py).

Full: pg_restore of the whole dump. --events-only: migrate, load the source tables, then rebuild everything derived
(re-parse every raw row, replay every projector, map-match every fix) and compare the state_hash with the backup's.
Exit 0 when the state_hash matches, 2 when the data is restored but the digest differs, 1 when nothing could be done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fleet.backup import BackupError, restore


class Command(BaseCommand):
    help = "Restore a backup (manage.py backup) into an empty database: all of it, or --events-only and rebuild."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--input", required=True, help="a backup's directory (it holds manifest.json)")
        parser.add_argument(
            "--events-only", action="store_true", help="load the log and the domain only; rebuild the rest"
        )

    def say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            outcome = restore(
                Path(opts["input"]), events_only=opts["events_only"], say=self.say, verbosity=opts["verbosity"]
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        if outcome.state_hash and not outcome.matches:
            raise CommandError("restored, but the state_hash differs from the backup's (see above)", returncode=2)
