"""The generator: N vehicles driving the road graph, and per tick the IoT Hub pushes a hub would send for them.

No HTTP and no clock: `FleetSimulator.tick(t)` advances every vehicle to simulated time `t` (epoch seconds) and
returns the pushes of that tick (`Push`: a path and its `data_list`, docs/jimi.md "IoT Hub push") and what each
vehicle really did (`Snapshot`, for tests). The same seed, start and road graph give the same pushes, byte for byte.

A vehicle waits at its depot, drives to a random vertex of the graph's main part by the shortest route
(pgr_dijkstra), at its way's speed (`speed_kmh`) times its driver's factor (a few drivers speed), slowing for bends
and junctions and now and then stopping at a junction (a light, a queue); at the destination it parks with the
ignition off for a few minutes, or idles with it on, then drives on (sometimes back to its depot). Its tracker
reports every `every_s` seconds (each vehicle at its own phase): a fix a few metres off the road (GPS noise, a
slowly wandering error; at a standstill a wandering fix with speed 0), now and then an LBS report (/pushlbs) and
alarms (/pushalarm: overspeed, SOS, low battery). Sometimes it loses signal for minutes or hours, then sends the
missed fixes in a burst marked re-transmitted (`gpsMode` 1); sometimes the hub sends a batch twice.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from devtools.simulator.roads import RoadGraph, Route, Vertex, pick_depots

# Alarm codes a tracker sends through the hub (msgClass 0: the TSP table, events/parsers/alarm_codes.py).
OVERSPEED = "6"  # Overspeed alert(terminal)
SOS = "1"  # SOS alert
LOW_BATTERY = "90"  # Low battery alert

M_PER_DEG_LAT = 111_320.0
# Where a demo tracker's cells are: Monaco Telecom (MCC 212, MNC 10), the network of the vendored extract.
LBS_MCC, LBS_MNC = 212, 10


def _rng(key: str) -> random.Random:
    """A seeded generator: the same key gives the same drive (simulation, not secrets)."""
    return random.Random(key)  # noqa: S311


def jimi_time(t: float) -> str:
    """Epoch seconds as Jimi writes times: `yyyy-MM-dd HH:mm:ss`, UTC."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Config:
    """Everything that shapes the simulation. Rates are per vehicle and simulated hour unless said otherwise."""

    every_s: int = 10  # a tracker's report interval (simulated seconds); one tick per interval
    depots: int = 3
    # Driving
    accel_ms2: float = 1.5
    brake_ms2: float = 2.0
    speeder_share: float = 0.2  # drivers who drive 20 to 35 % over the way's speed
    light_share: float = 0.15  # junctions where the vehicle has to stop (a light, a queue)
    light_s: tuple[float, float] = (5.0, 40.0)
    min_leg_m: float = 400.0
    return_to_depot: float = 0.25
    first_departure_s: tuple[float, float] = (3.0, 40.0)  # so that the whole fleet moves within a minute
    # At a destination: parked with the ignition off (park_share), otherwise idling with it on
    park_share: float = 0.75
    park_min: tuple[float, float] = (2.0, 8.0)
    idle_min: tuple[float, float] = (1.0, 4.0)
    # GPS: a slowly wandering error of about noise_m metres, never more than noise_max_m
    noise_m: float = 2.5
    noise_max_m: float = 7.0
    # What the hub sends
    duplicate_rate: float = 0.05  # share of posts the hub sends twice (the same data_list)
    outages_per_hour: float = 0.1  # signal lost, then a re-transmitted burst
    outage_min: tuple[float, float] = (2.0, 20.0)
    long_outage_share: float = 0.1  # of outages: hours long
    long_outage_min: tuple[float, float] = (60.0, 180.0)
    lbs_per_hour: float = 1.0
    sos_per_hour: float = 0.02
    low_battery_per_hour: float = 0.05
    overspeed_factor: float = 1.2  # an overspeed alarm above this multiple of the way's speed
    overspeed_cooldown_s: int = 600
    batch_max: int = 100  # items per post


class Mode(StrEnum):
    PARKED = "parked"  # ignition off
    IDLING = "idling"  # ignition on, standing
    DRIVING = "driving"  # on a route (also while waiting at a light)


@dataclass(frozen=True)
class Push:
    """One post: its IoT Hub path and its data_list (the JSON array, as sent). `copy`: the hub's second sending of
    the push before it."""

    path: str
    data_list: str
    items: int
    kind: str  # gps, burst, alarm, lbs
    copy: bool = False


@dataclass(frozen=True)
class Snapshot:
    """What a vehicle really did at a fix time (not sent anywhere)."""

    imei: str
    at: int
    mode: Mode
    lat: float
    lng: float
    speed_kmh: float
    way_speed_kmh: float | None
    highway: str | None
    reported: bool  # False while it has no signal (the fix is buffered)


@dataclass
class Tick:
    at: int
    pushes: list[Push]
    snapshots: list[Snapshot]


@dataclass
class Vehicle:
    index: int
    imei: str
    rng: random.Random
    depot: Vertex
    factor: float  # driver: multiple of the way's speed
    phase: int  # reports at tick time minus this many seconds
    t: int
    stand: tuple[float, float]  # where it stands when not on a route
    vertex: Vertex  # the vertex it stands at (or last left)
    mode: Mode = Mode.PARKED
    until: int = 0  # end of the current stop
    route: Route | None = None
    leg_factor: float = 1.0
    s: float = 0.0  # metres along the route
    v: float = 0.0  # m/s
    lights: list[tuple[float, float]] = field(default_factory=list)  # (metres along, seconds to wait)
    wait_until: int = 0
    heading: float = 0.0
    odometer_m: float = 0.0
    noise: tuple[float, float] = (0.0, 0.0)  # metres north, east
    outage_until: int = 0
    buffered: list[dict[str, Any]] = field(default_factory=list)
    last_overspeed: int = -(10**9)


class FleetSimulator:
    def __init__(
        self, roads: RoadGraph, imeis: list[str], *, seed: int, config: Config | None = None, start: int
    ) -> None:
        """Vehicles `imeis` parked at their depots (`place` puts one elsewhere) at simulated time `start` (epoch s)."""
        self.roads = roads
        self.config = config or Config()
        self.seed = seed
        self._vertices = roads.vertices()
        if not self._vertices:
            raise ValueError("the road graph has no strongly connected part to drive on")
        self.depots = pick_depots(self._vertices, self.config.depots, _rng(f"{seed}/depots"))
        self._fleet_rng = _rng(f"{seed}/fleet")
        self.stats: Counter[str] = Counter()
        self.vehicles = [self._vehicle(i, imei, start) for i, imei in enumerate(imeis)]
        self.now = start

    def _vehicle(self, index: int, imei: str, start: int) -> Vehicle:
        c = self.config
        rng = _rng(f"{self.seed}/vehicle/{index}")
        depot = self.depots[index % len(self.depots)]
        speeder = rng.random() < c.speeder_share
        vehicle = Vehicle(
            index=index,
            imei=imei,
            rng=rng,
            depot=depot,
            factor=rng.uniform(1.2, 1.35) if speeder else rng.uniform(0.85, 1.05),
            phase=rng.randrange(c.every_s),
            t=start - c.every_s,
            stand=(depot.lat, depot.lng),
            vertex=depot,
            odometer_m=rng.uniform(20_000, 150_000) * 1000,
            heading=rng.uniform(0, 360),
        )
        vehicle.until = start + round(rng.uniform(*c.first_departure_s))
        return vehicle

    def place(self, imei: str, vertex: Vertex) -> None:
        """Start a vehicle at `vertex` instead of its depot (where it was when a previous run stopped)."""
        for vehicle in self.vehicles:
            if vehicle.imei == imei:
                vehicle.vertex, vehicle.stand = vertex, (vertex.lat, vertex.lng)

    # --- one tick -----------------------------------------------------------------------------------------------

    def tick(self, t: int) -> Tick:
        """Advance every vehicle to `t` and return what the hub posts at `t`: its fixes of this tick (each vehicle's
        fix dated at most `every_s` seconds before `t`), bursts of re-transmitted fixes, alarms and LBS reports."""
        c = self.config
        self.now = t
        fixes: list[dict[str, Any]] = []
        bursts: list[dict[str, Any]] = []
        alarms: list[dict[str, Any]] = []
        lbs: list[dict[str, Any]] = []
        snapshots: list[Snapshot] = []
        for vehicle in self.vehicles:
            at = t - vehicle.phase
            self._advance(vehicle, at)
            snapshot = self._snapshot(vehicle, at)
            fix = self._fix(vehicle, snapshot)
            if vehicle.outage_until > at:
                vehicle.buffered.append(fix)
                self.stats["fixes_buffered"] += 1
                snapshots.append(snapshot)
                continue
            if vehicle.buffered:
                for item in vehicle.buffered:
                    item["gateTime"] = jimi_time(t)
                bursts.extend(vehicle.buffered)
                self.stats["bursts"] += 1
                vehicle.buffered = []
            fix["gateTime"] = jimi_time(t)
            fixes.append(fix)
            snapshots.append(snapshot)
            alarms.extend(self._alarms(vehicle, snapshot, t))
            if vehicle.rng.random() < c.lbs_per_hour * c.every_s / 3600:
                lbs.append(self._lbs(vehicle, snapshot))
            if vehicle.rng.random() < c.outages_per_hour * c.every_s / 3600:
                self._lose_signal(vehicle, at)
        self.stats["fixes"] += len(fixes) + len(bursts)
        self.stats["fixes_late"] += len(bursts)
        self.stats["alarms"] += len(alarms)
        self.stats["lbs"] += len(lbs)
        pushes = self._pushes(
            (
                ("pushgps", "gps", fixes),
                ("pushgps", "burst", bursts),
                ("pushalarm", "alarm", alarms),
                ("pushlbs", "lbs", lbs),
            )
        )
        self.stats["ticks"] += 1
        return Tick(at=t, pushes=pushes, snapshots=snapshots)

    def flush(self, t: int) -> list[Push]:
        """The end of a bounded run: every vehicle without signal gets it back at `t` and sends what it buffered."""
        bursts: list[dict[str, Any]] = []
        for vehicle in self.vehicles:
            if vehicle.buffered:
                for item in vehicle.buffered:
                    item["gateTime"] = jimi_time(t)
                bursts.extend(vehicle.buffered)
                self.stats["bursts"] += 1
                vehicle.buffered, vehicle.outage_until = [], t
        self.stats["fixes"] += len(bursts)
        self.stats["fixes_late"] += len(bursts)
        return self._pushes((("pushgps", "burst", bursts),))

    def _pushes(self, batches: tuple[tuple[str, str, list[dict[str, Any]]], ...]) -> list[Push]:
        """Posts of at most batch_max items each; now and then the hub sends one twice."""
        c = self.config
        pushes: list[Push] = []
        for path, kind, items in batches:
            for n in range(0, len(items), c.batch_max):
                chunk = items[n : n + c.batch_max]
                push = Push(path, json.dumps(chunk, separators=(",", ":")), len(chunk), kind)
                pushes.append(push)
                if self._fleet_rng.random() < c.duplicate_rate:
                    pushes.append(Push(push.path, push.data_list, push.items, push.kind, copy=True))
                    self.stats["duplicates"] += 1
        self.stats["posts"] += len(pushes)
        return pushes

    def modes(self) -> Counter[str]:
        return Counter("offline" if v.outage_until > self.now - v.phase else str(v.mode) for v in self.vehicles)

    def buffered(self) -> int:
        return sum(len(v.buffered) for v in self.vehicles)

    # --- movement -----------------------------------------------------------------------------------------------

    def _advance(self, vehicle: Vehicle, to: int) -> None:
        while vehicle.t < to:
            vehicle.t += 1
            if vehicle.mode is Mode.DRIVING:
                self._drive(vehicle)
            elif vehicle.t >= vehicle.until:
                self._depart(vehicle)

    def _depart(self, vehicle: Vehicle) -> None:
        c, rng = self.config, vehicle.rng
        for _ in range(10):
            if vehicle.vertex.id != vehicle.depot.id and rng.random() < c.return_to_depot:
                target = vehicle.depot
            else:
                target = rng.choice(self._vertices)
            route = self.roads.route(vehicle.vertex.id, target.id)
            if route is not None and route.length_m >= c.min_leg_m:
                break
        else:
            vehicle.until = vehicle.t + 60  # nowhere to go from here just now: try again in a minute
            return
        vehicle.route, vehicle.s, vehicle.v = route, 0.0, 0.0
        vehicle.leg_factor = rng.uniform(0.9, 1.05)
        vehicle.lights = [
            (route.cum_m[j], rng.uniform(*c.light_s)) for j in route.junctions if rng.random() < c.light_share
        ]
        vehicle.mode = Mode.DRIVING
        vehicle.vertex = target
        self.stats["legs"] += 1

    def _allowed(self, vehicle: Vehicle, route: Route) -> float:
        """The highest speed (m/s) the vehicle may drive now: its way's speed, and no faster than it can still
        brake from for every bend, junction, slower way, light and the destination ahead."""
        c = self.config
        s, factor = vehicle.s, vehicle.factor * vehicle.leg_factor
        i = route.piece(s)
        allowed = route.speed_kmh[i] / 3.6 * factor
        ahead = max(300.0, allowed * allowed / (2 * c.brake_ms2) + 50.0)
        corner_factor = min(factor, 1.1)
        j = i + 1
        while j < len(route.cum_m) and route.cum_m[j] - s <= ahead:
            d = max(0.0, route.cum_m[j] - s)
            cap = route.cap_kmh[j] / 3.6 * corner_factor
            if j < len(route.speed_kmh):
                cap = min(cap, route.speed_kmh[j] / 3.6 * factor)
            if cap < allowed:
                allowed = min(allowed, math.sqrt(cap * cap + 2 * c.brake_ms2 * d))
            j += 1
        if vehicle.lights:
            d = max(0.0, vehicle.lights[0][0] - s)
            allowed = min(allowed, math.sqrt(2 * c.brake_ms2 * d))
        return allowed

    def _drive(self, vehicle: Vehicle) -> None:
        route = vehicle.route
        assert route is not None
        if vehicle.wait_until > vehicle.t:
            return
        allowed = self._allowed(vehicle, route)
        v = min(vehicle.v + self.config.accel_ms2, allowed)
        step = (vehicle.v + v) / 2
        if vehicle.lights:
            at, wait = vehicle.lights[0]
            if vehicle.s + step >= at - 0.5 or (at - vehicle.s < 3.0 and v < 2.0):
                self._move(vehicle, max(vehicle.s, at) - vehicle.s, 0.0)
                vehicle.wait_until = vehicle.t + round(wait)
                vehicle.lights.pop(0)
                return
        if vehicle.s + step >= route.length_m - 0.5 or (route.length_m - vehicle.s < 3.0 and v < 2.0):
            self._move(vehicle, route.length_m - vehicle.s, 0.0)
            self._arrive(vehicle)
            return
        self._move(vehicle, step, v)

    def _move(self, vehicle: Vehicle, metres: float, v: float) -> None:
        assert vehicle.route is not None
        vehicle.s += metres
        vehicle.v = v
        vehicle.odometer_m += metres
        if metres > 0.5:
            vehicle.heading = vehicle.route.at(vehicle.s)[2]

    def _arrive(self, vehicle: Vehicle) -> None:
        c, rng = self.config, vehicle.rng
        vehicle.stand = (vehicle.vertex.lat, vehicle.vertex.lng)
        vehicle.route, vehicle.lights, vehicle.v = None, [], 0.0
        if rng.random() < c.park_share:
            vehicle.mode = Mode.PARKED
            vehicle.until = vehicle.t + round(rng.uniform(*c.park_min) * 60)
        else:
            vehicle.mode = Mode.IDLING
            vehicle.until = vehicle.t + round(rng.uniform(*c.idle_min) * 60)
        self.stats["arrivals"] += 1

    def _lose_signal(self, vehicle: Vehicle, at: int) -> None:
        c, rng = self.config, vehicle.rng
        minutes = rng.uniform(*(c.long_outage_min if rng.random() < c.long_outage_share else c.outage_min))
        vehicle.outage_until = at + round(minutes * 60)
        self.stats["outages"] += 1

    # --- what the tracker sends ---------------------------------------------------------------------------------

    def _snapshot(self, vehicle: Vehicle, at: int) -> Snapshot:
        route = vehicle.route
        reported = vehicle.outage_until <= at
        if vehicle.mode is Mode.DRIVING and route is not None:
            lat, lng, _ = route.at(vehicle.s)
            i = route.piece(vehicle.s)
            return Snapshot(
                vehicle.imei,
                at,
                vehicle.mode,
                lat,
                lng,
                vehicle.v * 3.6,
                route.speed_kmh[i],
                route.highway[i],
                reported,
            )
        lat, lng = vehicle.stand
        return Snapshot(vehicle.imei, at, vehicle.mode, lat, lng, 0.0, None, None, reported)

    def _noisy(self, vehicle: Vehicle, lat: float, lng: float) -> tuple[float, float]:
        """The position plus GPS error: an AR(1) walk of about noise_m metres, capped at noise_max_m."""
        c, rng = self.config, vehicle.rng
        rho = 0.8
        spread = c.noise_m * math.sqrt(1 - rho * rho)
        north = rho * vehicle.noise[0] + rng.gauss(0.0, spread)
        east = rho * vehicle.noise[1] + rng.gauss(0.0, spread)
        size = math.hypot(north, east)
        if size > c.noise_max_m:
            north, east = north * c.noise_max_m / size, east * c.noise_max_m / size
        vehicle.noise = (north, east)
        return lat + north / M_PER_DEG_LAT, lng + east / (M_PER_DEG_LAT * math.cos(math.radians(lat)))

    def _fix(self, vehicle: Vehicle, snapshot: Snapshot) -> dict[str, Any]:
        """An IoT Hub /pushgps item (docs/jimi.md, "Paths"); gateTime is set when it is sent."""
        rng = vehicle.rng
        lat, lng = self._noisy(vehicle, snapshot.lat, snapshot.lng)
        moving = snapshot.speed_kmh > 0
        speed = max(0, round(snapshot.speed_kmh + rng.gauss(0.0, 0.7))) if moving else 0
        heading = round(vehicle.heading + (rng.gauss(0.0, 2.0) if moving else 0.0)) % 360
        return {
            "deviceImei": vehicle.imei,
            "gpsTime": jimi_time(snapshot.at),
            "gateTime": None,
            "lat": round(lat, 6),
            "lng": round(lng, 6),
            "gpsSpeed": speed,
            "direction": heading,
            "satelliteNum": rng.randint(7, 12),
            "acc": 0 if vehicle.mode is Mode.PARKED else 1,
            "postType": 1,
            "gpsMode": 0 if snapshot.reported else 1,
            "distance": round(vehicle.odometer_m),
        }

    def _alarm(self, vehicle: Vehicle, snapshot: Snapshot, code: str, t: int) -> dict[str, Any]:
        """An IoT Hub /pushalarm item of a Jimi-protocol device (msgClass 0)."""
        self.stats[f"alarm_{code}"] += 1
        return {
            "deviceImei": vehicle.imei,
            "type": "DEVICE",
            "msgClass": 0,
            "gateTime": jimi_time(t),
            "msg": {
                "deviceImei": vehicle.imei,
                "alertType": code,
                "alarmTime": jimi_time(snapshot.at),
                "lat": round(snapshot.lat, 6),
                "lng": round(snapshot.lng, 6),
                "gpsSpeed": round(snapshot.speed_kmh),
            },
        }

    def _alarms(self, vehicle: Vehicle, snapshot: Snapshot, t: int) -> list[dict[str, Any]]:
        c, rng = self.config, vehicle.rng
        out = []
        way = snapshot.way_speed_kmh
        if (
            way is not None
            and snapshot.speed_kmh > way * c.overspeed_factor
            and snapshot.at - vehicle.last_overspeed >= c.overspeed_cooldown_s
        ):
            vehicle.last_overspeed = snapshot.at
            out.append(self._alarm(vehicle, snapshot, OVERSPEED, t))
        if rng.random() < c.sos_per_hour * c.every_s / 3600:
            out.append(self._alarm(vehicle, snapshot, SOS, t))
        if rng.random() < c.low_battery_per_hour * c.every_s / 3600:
            out.append(self._alarm(vehicle, snapshot, LOW_BATTERY, t))
        return out

    def _lbs(self, vehicle: Vehicle, snapshot: Snapshot) -> dict[str, Any]:
        """An IoT Hub /pushlbs item: the serving cell and two neighbours, ids from a ~500 m grid around the vehicle."""
        rng = vehicle.rng
        gy, gx = int(snapshot.lat * 200), int(snapshot.lng * 200)
        cells = ";".join(
            f"{(gy + dy) % 60000 + 1},{((gy + dy) * 7919 + gx + dx) % 268435455},{rng.randint(-105, -55)}"
            for dy, dx in ((0, 0), (0, 1), (1, 0))
        )
        self.stats["lbs_reports"] += 1
        return {
            "deviceImei": vehicle.imei,
            "gateTime": jimi_time(snapshot.at),
            "lbsJson": json.dumps({"mcc": LBS_MCC, "mnc": LBS_MNC, "cellList": cells}),
            "postType": "LBS",
        }
