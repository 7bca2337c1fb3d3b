"""Rebuild projections from events_parsed (or, with --reparse, from events_raw first), with a progress bar."""

from __future__ import annotations

import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from domain.models import Device
from events.cli import cli_time
from state.models import Projector
from state.projectors.groups import REPLAYED_ALL, REPLAYS, Scope


class Command(BaseCommand):
    help = "Rebuild projections from the log: all of them, or one projector / device / device-time window."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--projector", choices=[p.value for p in Projector], help="default: all")
        parser.add_argument("--since", help="device time at or after (ISO date or time, UTC unless zoned)")
        parser.add_argument("--until", help="device time before")
        parser.add_argument("--device", help="IMEI")
        parser.add_argument("--reparse", action="store_true", help="re-run the parsers over the window first")

    def handle(self, *args: Any, **opts: Any) -> None:
        scope = self._scope(opts)
        if opts["reparse"]:
            # The raw log is windowed by arrival; a device-time window starts no later than its arrivals.
            reparse_args = {k: opts[k] for k in ("since",) if opts[k]}
            call_command("reparse", verbosity=opts["verbosity"], stdout=self.stdout, stderr=self.stderr, **reparse_args)
        projectors = [opts["projector"]] if opts["projector"] else [str(p) for p in REPLAYED_ALL]
        started = time.monotonic()
        total = 0
        for name in projectors:
            with (
                tqdm(desc=name, unit="ev", disable=opts["verbosity"] == 0, file=self.stderr) as bar,
                transaction.atomic(),
            ):

                def progress(step: str, n: int, bar: tqdm[Any] = bar) -> None:
                    bar.set_postfix_str(step)
                    bar.update(n)

                total += REPLAYS[name](scope, progress=progress)
        seconds = time.monotonic() - started
        self.stdout.write(f"replayed {total} events ({', '.join(projectors)}) in {seconds:.1f}s")

    @staticmethod
    def _scope(opts: dict[str, Any]) -> Scope:
        device_id = None
        if opts["device"]:
            device_id = Device.objects.filter(imei=opts["device"]).values_list("id", flat=True).first()
            if device_id is None:
                raise CommandError(f"no device with IMEI {opts['device']}")
        return Scope(device_id=device_id, since=cli_time(opts["since"]), until=cli_time(opts["until"]))
