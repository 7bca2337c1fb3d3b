"""Provision the demo fleet `make run` shows (idempotent): account, IoT Hub source, vehicles, devices, drivers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from devtools.simulator.demo import DEMO_ACCOUNT, DEMO_SOURCE, DEMO_VEHICLES, provision_demo_fleet


class Command(BaseCommand):
    help = (
        "Create (or reuse) the demo fleet: an account, an IoT Hub push source with a generated secret, vehicles with"
        " Kenyan and Ugandan plates, cost centres, cities, active devices and drivers on duty. Safe to run again."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--vehicles", type=int, default=DEMO_VEHICLES)
        parser.add_argument("--source", default=DEMO_SOURCE, help="the IoT Hub push source the simulator posts to")
        parser.add_argument("--account", default=DEMO_ACCOUNT)

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["vehicles"] < 1:
            raise CommandError("--vehicles must be at least 1")
        provision_demo_fleet(vehicles=opts["vehicles"], source=opts["source"], account=opts["account"], out=self.stdout)  # type: ignore[arg-type]  # OutputWrapper writes like a TextIO
