"""The sandbox's devices and what they report: a pure function of the seed and the time, so any window asked about is
consistent with every other (a trip in the trips report is the same drive as the fixes of the track list and the ACC
alarms of the alarm list).

Each device drives a loop around its own centre for DRIVE_S, then stands still (IDLE_S idling, the rest parked) until
its next drive, every CYCLE_S, with a fix every FIX_EVERY_S while it drives. OBD dongles (model VL502) report every
OBD_EVERY_S while driving and now and then a fault code.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime

CENTRE = (43.7384, 7.4246)  # Monaco: the road graph `make run` loads by default
MODELS = ("VL802", "GT06N", "JC450Pro", "VL502")
OBD_MODEL = "VL502"
CYCLE_S = 5400
DRIVE_S = 1800
IDLE_S = 300
FIX_EVERY_S = 30
OBD_EVERY_S = 300
METRES_PER_DEGREE = 111_320.0
ODOMETER_FROM = 1_767_225_600  # 2026-01-01: the odometers count the driving since


def jimi_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Device:
    index: int
    imei: str
    name: str
    model: str
    phase: int  # seconds: drive k starts at phase + k * CYCLE_S (epoch)
    radius_m: float
    speed_kmh: float
    centre: tuple[float, float]
    plate: str

    @property
    def obd(self) -> bool:
        return self.model == OBD_MODEL

    @property
    def omega(self) -> float:  # radians per second along the loop
        return self.speed_kmh / 3.6 / self.radius_m


@dataclass(frozen=True)
class Fix:
    time: int
    lat: float
    lng: float
    heading: float
    speed_kmh: float
    moving: bool


class SandboxFleet:
    def __init__(self, *, devices: int = 5, seed: int = 7, centre: tuple[float, float] = CENTRE) -> None:
        rng = random.Random(seed)  # noqa: S311 - made-up data, not secrets
        base = 359_000_000_000_000 + rng.randrange(10_000_000) * 100
        self.devices: list[Device] = []
        for index in range(devices):
            imei = str(base + index)
            model = MODELS[index % len(MODELS)]
            offset_m = (rng.uniform(-1500, 1500), rng.uniform(-1500, 1500))
            self.devices.append(
                Device(
                    index=index,
                    imei=imei,
                    name=f"{model}-{imei[-5:]}",
                    model=model,
                    phase=rng.randrange(0, CYCLE_S, FIX_EVERY_S),
                    radius_m=rng.uniform(600, 2000),
                    speed_kmh=round(rng.uniform(25, 60), 1),
                    centre=(
                        centre[0] + offset_m[0] / METRES_PER_DEGREE,
                        centre[1] + offset_m[1] / (METRES_PER_DEGREE * math.cos(math.radians(centre[0]))),
                    ),
                    plate=f"SBX {100 + index}{'ABCDEFGH'[index % 8]}",
                )
            )
        self.by_imei = {d.imei: d for d in self.devices}

    # --- driving ----------------------------------------------------------------------------------------------------

    @staticmethod
    def drives(d: Device, start: float, end: float) -> list[tuple[int, int]]:
        """(start, end) of every drive overlapping [start, end]."""
        first = math.floor((start - d.phase - DRIVE_S) / CYCLE_S)
        found = []
        k = first
        while d.phase + k * CYCLE_S <= end:
            begin = d.phase + k * CYCLE_S
            if begin + DRIVE_S >= start:
                found.append((begin, begin + DRIVE_S))
            k += 1
        return found

    @staticmethod
    def _driven_s(d: Device, t: float) -> float:
        cycles = math.floor((t - d.phase) / CYCLE_S)
        return cycles * DRIVE_S + min(max(t - d.phase - cycles * CYCLE_S, 0), DRIVE_S)

    def fix_at(self, d: Device, t: int) -> Fix:
        in_cycle = (t - d.phase) % CYCLE_S
        moving = 0 < in_cycle < DRIVE_S
        angle = self._driven_s(d, t) * d.omega
        north, east = d.radius_m * math.cos(angle), d.radius_m * math.sin(angle)
        lat = d.centre[0] + north / METRES_PER_DEGREE
        lng = d.centre[1] + east / (METRES_PER_DEGREE * math.cos(math.radians(d.centre[0])))
        heading = math.degrees(math.atan2(math.cos(angle), -math.sin(angle))) % 360
        speed = round(d.speed_kmh + 5 * math.sin(t / 97), 1) if moving else 0.0
        return Fix(t, round(lat, 6), round(lng, 6), round(heading, 1), speed, moving)

    def fixes(self, d: Device, start: float, end: float) -> list[Fix]:
        """Every fix in [start, end]: one per FIX_EVERY_S while driving, both ends of a drive included."""
        found = []
        for begin, stop in self.drives(d, start, end):
            t = max(begin, math.ceil((start - begin) / FIX_EVERY_S) * FIX_EVERY_S + begin)
            while t <= min(stop, end):
                found.append(self.fix_at(d, t))
                t += FIX_EVERY_S
        return found

    def drive_now(self, index: int, *, now: float) -> None:
        """Test control: put device `index` half way through a drive at `now`. The schedule is a pure function of
        the seed and the clock, so whether any device is driving at a given moment depends on the time of day;
        a test about fresh fixes must not."""
        self.devices[index] = replace(self.devices[index], phase=int(now) - DRIVE_S // 2)

    def latest_fix(self, d: Device, now: float) -> Fix:
        in_cycle = (now - d.phase) % CYCLE_S
        # Driving: the last fix of the grid. Standing: parked since the end of the last drive.
        t = int(now - in_cycle % FIX_EVERY_S) if in_cycle < DRIVE_S else int(now - in_cycle + DRIVE_S)
        return self.fix_at(d, t)

    # --- reports ----------------------------------------------------------------------------------------------------

    def trip(self, d: Device, begin: int, end: int) -> dict[str, float | int]:
        first, last = self.fix_at(d, begin), self.fix_at(d, end)
        km = d.speed_kmh * DRIVE_S / 3600
        return {
            "start": begin, "end": end, "start_lat": first.lat, "start_lng": first.lng, "end_lat": last.lat,
            "end_lng": last.lng, "km": round(km, 3), "avg": d.speed_kmh, "max": round(d.speed_kmh + 5, 1),
            "seconds": DRIVE_S, "odometer_km": self.odometer_km(d, begin),
        }  # fmt: skip

    def trips(self, d: Device, start: float, end: float, now: float) -> list[dict[str, float | int]]:
        """Drives that ended in [start, end] (and before now)."""
        return [self.trip(d, b, e) for b, e in self.drives(d, start - DRIVE_S, end) if start <= e <= end and e <= now]

    def stops(self, d: Device, start: float, end: float, now: float) -> list[dict[str, float | int | str]]:
        """Idling (acc on) right after each drive, then parking (acc off) until the next: those that ended in
        [start, end] (and before now)."""
        found: list[dict[str, float | int | str]] = []
        for _, stop in self.drives(d, start - CYCLE_S, end):
            fix = self.fix_at(d, stop)
            for acc, begin, finish in (("on", stop, stop + IDLE_S), ("off", stop + IDLE_S, stop + CYCLE_S - DRIVE_S)):
                if start <= finish <= end and finish <= now:
                    found.append({"acc": acc, "start": begin, "end": finish, "lat": fix.lat, "lng": fix.lng})
        return found

    def alarms(self, d: Device, start: float, end: float, now: float) -> list[dict[str, float | int | str]]:
        """ACC on at each drive's start, ACC off at its end (the codes of Jimi's alarm-list example), and an overspeed
        halfway through every other drive of every third device."""
        found: list[dict[str, float | int | str]] = []
        for begin, stop in self.drives(d, start, end):
            events = [(begin, "1002", "ACC On"), (stop, "1001", "ACC Off")]
            if d.index % 3 == 0 and (begin // CYCLE_S) % 2 == 0:
                events.append((begin + DRIVE_S // 2, "overSpeed", "Overspeed alert"))
            for t, code, name in events:
                if start <= t <= end and t <= now:
                    fix = self.fix_at(d, t)
                    found.append({"time": t, "code": code, "name": name, "lat": fix.lat, "lng": fix.lng,
                                  "speed": fix.speed_kmh})  # fmt: skip
        return sorted(found, key=lambda a: (a["time"], a["code"]))

    def obd(self, d: Device, start: float, end: float, now: float) -> list[Fix]:
        if not d.obd:
            return []
        return [
            self.fix_at(d, t)
            for begin, stop in self.drives(d, start, end)
            for t in range(begin, stop, OBD_EVERY_S)
            if start <= t <= end and t <= now
        ]

    def faults(self, d: Device, start: float, end: float, now: float) -> list[int]:
        if not d.obd:
            return []
        return [
            begin + 600
            for begin, _ in self.drives(d, start, end)
            if (begin // CYCLE_S) % 4 == 0 and start <= begin + 600 <= end and begin + 600 <= now
        ]

    def odometer_km(self, d: Device, t: float) -> float:
        driven_s = self._driven_s(d, t) - self._driven_s(d, ODOMETER_FROM)
        return round(12_000 + d.index * 1_000 + driven_s * d.speed_kmh / 3600, 1)
