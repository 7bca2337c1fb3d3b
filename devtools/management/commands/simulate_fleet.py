"""Drive simulated vehicles on the loaded road graph and post what their trackers report as real IoT Hub pushes."""

from __future__ import annotations

import random
import signal
import threading
import time
from typing import Any

import structlog
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from devtools.simulator.demo import DEMO_SOURCE, DEMO_VEHICLES, demo_imeis
from devtools.simulator.fleet import Config, FleetSimulator
from devtools.simulator.poster import Poster, PushRefused, Stopped
from devtools.simulator.roads import NoRoadGraph, PgRoadGraph
from devtools.simulator.runner import run, simulated_start
from events.models import PushSource, SourceKind

log = structlog.get_logger("devtools.simulator")

# A vehicle resumes where its live position is when that lies this close to a vertex of the graph's main part.
RESUME_WITHIN_M = 300.0

_LIVE = """
SELECT d.imei, ST_Y(l.point::geometry), ST_X(l.point::geometry), extract(epoch FROM l.occurred_at)
  FROM state_live_positions l JOIN domain_devices d ON d.id = l.device_id
 WHERE d.imei = ANY(%s)
"""


class Command(BaseCommand):
    help = (
        "Simulate a fleet on the loaded road graph (manage.py load_osm) and post its fixes, LBS reports and alarms"
        " to a gateway as Jimi IoT Hub pushes, one batch per tick; retries 503s and connection errors, never drops a"
        " batch. Fix times are simulated times, never in the future. Runs until stopped, or for --minutes."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--vehicles", type=int, default=DEMO_VEHICLES, help="how many (IMEIs of the demo fleet)")
        parser.add_argument(
            "--speedup", type=float, default=1.0, help="simulated seconds per wall second (a bounded run)"
        )
        parser.add_argument("--target", default=settings.PUBLIC_BASE_URL, help="the gateway's base URL")
        parser.add_argument("--source", default=DEMO_SOURCE, help="the IoT Hub push source's name")
        parser.add_argument("--token", help="the source's token (default: read from this database)")
        parser.add_argument("--seed", type=int, help="the same seed gives the same drive (default: a random one)")
        parser.add_argument("--minutes", type=float, help="simulated minutes to run, ending now (default: forever)")
        parser.add_argument("--every", type=int, default=10, help="seconds between two fixes of a vehicle")
        parser.add_argument(
            "--duplicates", type=float, default=Config.duplicate_rate, help="share of batches the hub posts twice"
        )
        parser.add_argument(
            "--outages",
            type=float,
            default=Config.outages_per_hour,
            help="signal losses per vehicle-hour (then a late, re-transmitted burst)",
        )
        parser.add_argument(
            "--alarms",
            type=float,
            default=Config.sos_per_hour + Config.low_battery_per_hour,
            help="SOS and low-battery alarms per vehicle-hour (overspeed alarms come from speeding)",
        )
        parser.add_argument(
            "--lbs", type=float, default=Config.lbs_per_hour, help="LBS reports (/pushlbs) per vehicle-hour"
        )
        parser.add_argument("--fresh", action="store_true", help="start every vehicle at its depot (no resume)")

    def handle(self, *args: Any, **opts: Any) -> None:
        config = self._config(opts)
        speedup, minutes = opts["speedup"], opts["minutes"]
        try:
            roads = PgRoadGraph()
        except NoRoadGraph as exc:
            raise CommandError(str(exc)) from exc
        token = opts["token"] or self._token(opts["source"])
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        poster = Poster(opts["target"], opts["source"], token, stop=stop)
        if minutes is None and speedup > 1:
            log.warning("simulator.real_time", reason="without --minutes the clock cannot run ahead of now")
        try:
            poster.wait_ready()
        except Stopped:
            return
        seed = opts["seed"] if opts["seed"] is not None else random.SystemRandom().randrange(2**31)
        start = simulated_start(time.time(), minutes=minutes, speedup=speedup)
        imeis = demo_imeis(opts["vehicles"])
        simulator = FleetSimulator(roads, imeis, seed=seed, config=config, start=start)
        resumed = 0 if opts["fresh"] else self._resume(simulator, roads, imeis, start)
        connection.close()  # routes are asked for now and then: a fresh connection then, not one held idle
        log.info(
            "simulator.start",
            vehicles=len(imeis),
            seed=seed,
            resumed=resumed,
            depots=[(d.lat, d.lng) for d in simulator.depots],
            speedup=speedup,
            every_s=config.every_s,
            minutes=minutes,
            target=poster.url("<path>"),
        )
        try:
            summary = run(simulator, poster, start=start, speedup=speedup, minutes=minutes, stop=stop)
        except PushRefused as exc:
            raise CommandError(f"the gateway refused a push, stopping: {exc}") from exc
        log.info("simulator.done", seed=seed, **summary)

    @staticmethod
    def _config(opts: dict[str, Any]) -> Config:
        if opts["vehicles"] < 1:
            raise CommandError("--vehicles must be at least 1")
        if opts["speedup"] <= 0:
            raise CommandError("--speedup must be above 0")
        if opts["every"] < 1:
            raise CommandError("--every must be at least 1 (second)")
        if opts["minutes"] is not None and opts["minutes"] <= 0:
            raise CommandError("--minutes must be above 0")
        if not 0 <= opts["duplicates"] <= 1:
            raise CommandError("--duplicates is a share: 0 to 1")
        if min(opts["outages"], opts["alarms"], opts["lbs"]) < 0:
            raise CommandError("--outages, --alarms and --lbs are rates: 0 or more")
        default = Config()
        sos_share = default.sos_per_hour / (default.sos_per_hour + default.low_battery_per_hour)
        return Config(
            every_s=opts["every"],
            duplicate_rate=opts["duplicates"],
            outages_per_hour=opts["outages"],
            sos_per_hour=opts["alarms"] * sos_share,
            low_battery_per_hour=opts["alarms"] * (1 - sos_share),
            lbs_per_hour=opts["lbs"],
        )

    @staticmethod
    def _token(name: str) -> str:
        source = PushSource.objects.filter(name=name).first()
        if source is None:
            raise CommandError(
                f"no push source {name!r} in this database: pass --token, or create it with"
                f" `manage.py push_source {name} --kind jimi-iothub --account NAME --create-account`"
            )
        if source.kind != SourceKind.JIMI_IOTHUB:
            raise CommandError(f"push source {name!r} is a {source.kind} source, not a jimi-iothub one")
        return source.secret

    @staticmethod
    def _resume(simulator: FleetSimulator, roads: PgRoadGraph, imeis: list[str], start: int) -> int:
        """Vehicles whose live position is older than the simulated start go on from there, not from their depot."""
        with connection.cursor() as cursor:
            cursor.execute(_LIVE, [imeis])
            rows = cursor.fetchall()
        resumed = 0
        for imei, lat, lng, at in rows:
            if float(at) >= start:
                continue
            vertex = roads.nearest_vertex(float(lat), float(lng), within_m=RESUME_WITHIN_M)
            if vertex is not None:
                simulator.place(imei, vertex)
                resumed += 1
        return resumed
