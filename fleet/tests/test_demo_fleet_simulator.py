"""The demo fleet simulator without HTTP (devtools/simulator): the generator on the vendored Monaco road graph — the
same seed gives the same pushes, fixes lie on roads, speeds fit the road class, parked vehicles have the ignition
off, duplicates and late bursts come at the configured rates, every push reads with the real parsers — then the
poster's retries against a small local server, the clock, the command's refusals and the demo provisioning."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from devtools.simulator.demo import demo_imei, demo_imeis, provision_demo_fleet
from devtools.simulator.fleet import LOW_BATTERY, OVERSPEED, SOS, Config, FleetSimulator, Mode, Push
from devtools.simulator.poster import Poster, PushRefused
from devtools.simulator.roads import PgRoadGraph
from devtools.simulator.runner import run, simulated_start
from domain.models import Device, DriverAssignment, Lifecycle, Vehicle
from events.models import PushSource
from events.parsers import parse_raw
from events.parsers.alarm_codes import NUMERIC_ALARMS
from state.geometry import haversine_m

MONACO = Path(__file__).resolve().parents[2] / "geo" / "data" / "monaco.osm.pbf"
START = int(datetime(2026, 3, 2, 6, 0, tzinfo=UTC).timestamp())
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def roads(db) -> PgRoadGraph:
    call_command("load_osm", str(MONACO), verbosity=0)
    return PgRoadGraph()


def simulate(roads, *, vehicles: int, minutes: int, seed: int = 7, config: Config | None = None):
    config = config or Config()
    sim = FleetSimulator(roads, demo_imeis(vehicles), seed=seed, config=config, start=START)
    ticks = [sim.tick(START + k * config.every_s) for k in range(minutes * 60 // config.every_s + 1)]
    return sim, ticks


def items_of(ticks, *kinds: str) -> list[dict]:
    return [item for t in ticks for p in t.pushes if p.kind in kinds and not p.copy for item in json.loads(p.data_list)]


def fixes_of(ticks) -> dict[tuple[str, str], dict]:
    return {(f["deviceImei"], f["gpsTime"]): f for f in items_of(ticks, "gps", "burst")}


def epoch(jimi: str) -> float:
    return datetime.strptime(jimi, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def road_distances_m(points: list[tuple[float, float]]) -> list[float]:
    """Each point's distance in metres to the nearest road piece of geo_ways."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT min(ST_Distance(w.geom::geography, p::geography)) FROM"
            "        (SELECT geom FROM geo_ways ORDER BY geom <-> p LIMIT 8) w)"
            "  FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS f(lat, lng, n),"
            "       LATERAL (SELECT ST_SetSRID(ST_MakePoint(f.lng, f.lat), 4326) AS p) q ORDER BY f.n",
            [[p[0] for p in points], [p[1] for p in points]],
        )
        return [float(r[0]) for r in cursor.fetchall()]


# --- the generator ----------------------------------------------------------------------------------------------------


def test_it_drives_the_same_way_with_the_same_seed(roads):
    _, first = simulate(roads, vehicles=5, minutes=20, seed=11)
    _, again = simulate(roads, vehicles=5, minutes=20, seed=11)
    _, other = simulate(roads, vehicles=5, minutes=20, seed=12)
    assert [p for t in first for p in t.pushes] == [p for t in again for p in t.pushes]
    assert [p.data_list for t in first for p in t.pushes] != [p.data_list for t in other for p in t.pushes]


def test_it_reports_fixes_on_the_roads_within_a_few_metres(roads):
    _, ticks = simulate(roads, vehicles=8, minutes=40)
    fixes = list(fixes_of(ticks).values())
    assert len(fixes) > 8 * 40 * 6 * 0.9
    distances = road_distances_m([(f["lat"], f["lng"]) for f in fixes])
    assert max(distances) < 10.0  # the noise is capped at 7 m
    assert statistics.median(distances) < 4.0
    # The noise is there: fixes of a standing vehicle wander, a few metres at most.
    standing = [f for f in fixes if f["gpsSpeed"] == 0]
    assert len({(f["lat"], f["lng"]) for f in standing}) > 0.9 * len(standing)


def test_it_drives_at_speeds_that_fit_each_road_class_and_slows_at_junctions(roads):
    _, ticks = simulate(roads, vehicles=10, minutes=60)
    moving = [s for t in ticks for s in t.snapshots if s.mode is Mode.DRIVING and s.speed_kmh > 0]
    assert moving
    for s in moving:
        assert s.speed_kmh <= s.way_speed_kmh * 1.35 * 1.05 + 0.5, s
    by_class: dict[str, list[float]] = {}
    for s in moving:
        by_class.setdefault(s.highway, []).append(s.speed_kmh)
    mean = {k: statistics.mean(v) for k, v in by_class.items() if len(v) >= 20}
    assert mean["primary"] > mean["residential"] > mean["service"], mean
    # Junctions: slower within 15 m of a vertex where three or more road pieces meet than 60 m or more from any.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT min(ST_Distance(v.geom::geography, p::geography)) FROM"
            "        (SELECT geom FROM geo_ways_vertices v WHERE (SELECT count(*) FROM geo_ways w"
            "          WHERE w.source = v.id OR w.target = v.id) >= 3 ORDER BY geom <-> p LIMIT 5) v)"
            "  FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS f(lat, lng, n),"
            "       LATERAL (SELECT ST_SetSRID(ST_MakePoint(f.lng, f.lat), 4326) AS p) q ORDER BY f.n",
            [[s.lat for s in moving], [s.lng for s in moving]],
        )
        to_junction = [float(r[0]) for r in cursor.fetchall()]
    near = [s.speed_kmh / s.way_speed_kmh for s, d in zip(moving, to_junction, strict=True) if d < 15]
    far = [s.speed_kmh / s.way_speed_kmh for s, d in zip(moving, to_junction, strict=True) if d > 60]
    assert min(len(near), len(far)) > 50
    assert statistics.mean(near) < 0.8 * statistics.mean(far)
    # No fix implies a teleport: consecutive fixes of a vehicle are a plausible drive apart.
    fixes = sorted(fixes_of(ticks).values(), key=lambda f: (f["deviceImei"], f["gpsTime"]))
    for a, b in itertools.pairwise(fixes):
        if a["deviceImei"] == b["deviceImei"]:
            metres = haversine_m(a["lat"], a["lng"], b["lat"], b["lng"])
            assert metres / (epoch(b["gpsTime"]) - epoch(a["gpsTime"])) * 3.6 < 160, (a, b)


def test_it_parks_with_the_ignition_off_idles_with_it_on_and_stands_at_speed_zero(roads):
    _, ticks = simulate(roads, vehicles=10, minutes=60)
    fixes = fixes_of(ticks)
    seen: Counter[Mode] = Counter()
    for s in (s for t in ticks for s in t.snapshots):
        fix = fixes.get((s.imei, datetime.fromtimestamp(s.at, UTC).strftime("%Y-%m-%d %H:%M:%S")))
        if fix is None:
            assert not s.reported  # still buffered when the simulation ended
            continue
        seen[s.mode] += 1
        if s.mode is Mode.PARKED:
            assert (fix["acc"], fix["gpsSpeed"]) == (0, 0)
        elif s.mode is Mode.IDLING:
            assert (fix["acc"], fix["gpsSpeed"]) == (1, 0)
        else:
            assert fix["acc"] == 1
    assert seen[Mode.PARKED] > 100, seen
    assert seen[Mode.IDLING] > 20, seen
    assert seen[Mode.DRIVING] > 1000, seen
    # A parked vehicle's fixes wander around where it stands: within the noise's cap of its true position.
    parked = [s for t in ticks for s in t.snapshots if s.mode is Mode.PARKED and s.reported]
    for s in parked:
        fix = fixes[(s.imei, datetime.fromtimestamp(s.at, UTC).strftime("%Y-%m-%d %H:%M:%S"))]
        assert abs(fix["lat"] - s.lat) * 111_320 < 7.5


def test_it_sends_duplicates_and_late_bursts_at_the_configured_rates(roads):
    config = Config(
        every_s=30,
        duplicate_rate=0.2,
        outages_per_hour=1.5,
        outage_min=(2.0, 10.0),
        long_outage_share=0.3,
        long_outage_min=(60.0, 90.0),
        lbs_per_hour=2.0,
        sos_per_hour=0.5,
        low_battery_per_hour=0.5,
    )
    sim, ticks = simulate(roads, vehicles=8, minutes=240, config=config)
    pushes = [p for t in ticks for p in t.pushes]
    originals = [p for p in pushes if not p.copy]
    copies = [p for p in pushes if p.copy]
    # Duplicates: each the same data_list as the push before it, at the configured share (binomial, 4 sigma).
    for i, p in enumerate(pushes):
        if p.copy:
            before = pushes[i - 1]
            assert (p.path, p.data_list, before.copy) == (before.path, before.data_list, False)
    n = len(originals)
    assert abs(len(copies) - 0.2 * n) < 4 * (n * 0.2 * 0.8) ** 0.5
    # Outages: one per reported vehicle-hour at the configured rate (Poisson, 4 sigma); each ends in a burst.
    realtime = items_of(ticks, "gps")
    expected = len(realtime) * 1.5 * 30 / 3600
    assert abs(sim.stats["outages"] - expected) < 4 * expected**0.5 + 1
    assert sim.stats["bursts"] >= sim.stats["outages"] - 8  # an outage still open at the end has no burst yet
    late = items_of(ticks, "burst")
    assert late
    assert all(f["gpsMode"] == 1 for f in late)
    assert all(f["gpsMode"] == 0 for f in realtime)
    lateness_min = [(epoch(f["gateTime"]) - epoch(f["gpsTime"])) / 60 for f in late]
    assert 0 < min(lateness_min) < 15  # minutes late
    assert 60 < max(lateness_min) <= 90 + 1  # hours late
    assert not {(f["deviceImei"], f["gpsTime"]) for f in late} & {(f["deviceImei"], f["gpsTime"]) for f in realtime}
    # Never a fix dated after its tick; alarms of the three kinds, with codes of the alarm table.
    for t in ticks:
        for p in t.pushes:
            for item in json.loads(p.data_list):
                when = item["msg"]["alarmTime"] if p.path == "pushalarm" else item.get("gpsTime", item["gateTime"])
                assert epoch(when) <= t.at
    codes = Counter(a["msg"]["alertType"] for a in items_of(ticks, "alarm"))
    assert set(codes) == {OVERSPEED, SOS, LOW_BATTERY}, codes
    assert [NUMERIC_ALARMS[c] for c in (OVERSPEED, SOS, LOW_BATTERY)] == [
        "Overspeed alert(terminal)",
        "SOS alert",
        "Low battery alert",
    ]
    assert items_of(ticks, "lbs")


def test_it_posts_pushes_the_real_parsers_read_without_an_item_error(roads):
    config = Config(duplicate_rate=0.1, outages_per_hour=3, outage_min=(1, 3), lbs_per_hour=6, sos_per_hour=2)
    _, ticks = simulate(roads, vehicles=6, minutes=30, config=config)
    kinds: Counter[str] = Counter()
    for p in (p for t in ticks for p in t.pushes):
        result = parse_raw(
            source_kind="jimi-iothub",
            push_kind=p.path,
            content_type=FORM,
            body=f"token=x&data_list={p.data_list}".encode(),
            received_at=datetime.now(UTC),
        )
        assert not result.item_errors, (p.path, result.item_errors[:3])
        assert len(result.events) == p.items
        kinds.update(e.kind for e in result.events)
        if p.kind == "burst":
            assert all(e.payload["retransmitted"] for e in result.events)
    assert set(kinds) == {"position_fix", "alarm", "lbs"}


# --- the poster, the clock, the command ------------------------------------------------------------------------------


class Gateway(BaseHTTPRequestHandler):
    """Answers the push paths with the statuses queued in `answers` (then 200) and records each body."""

    answers: list[int] = []
    bodies: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        status = type(self).answers.pop(0) if type(self).answers else 200
        if status == 0:  # drop the connection without an answer
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"code":0,"msg":"success"}' if status == 200 else b'{"error":"storage unavailable"}')

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway():
    Gateway.answers, Gateway.bodies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_it_retries_a_503_and_a_dropped_connection_until_the_push_is_accepted(gateway):
    Gateway.answers = [503, 0, 503]
    poster = Poster(gateway, "hub", "t0ken", min_backoff_s=0.01)
    push = Push("pushgps", '[{"deviceImei":"869120040000001"}]', 1, "gps")
    assert poster.post(push) == 4
    assert (len(Gateway.bodies), len(set(Gateway.bodies))) == (4, 1)  # the same body each time
    form = parse_qs(Gateway.bodies[0].decode())
    assert form == {"token": ["t0ken"], "data_list": [push.data_list]}
    assert (poster.stats["retries"], poster.stats["accepted"]) == (3, 1)
    Gateway.answers = [401]
    with pytest.raises(PushRefused, match="401"):
        poster.post(push)


def test_it_never_dates_a_fix_after_its_post_and_ends_a_bounded_run_at_now(roads):
    posted: list[tuple[float, Push]] = []

    class Collect:
        stats: Counter = Counter()

        def post(self, push):
            posted.append((time.time(), push))
            return 1

    now = time.time()
    start = simulated_start(now, minutes=10, speedup=600)
    assert now - start == pytest.approx(10 * 60 * (1 - 1 / 600), abs=1)
    sim = FleetSimulator(roads, demo_imeis(3), seed=3, config=Config(every_s=10), start=start)
    summary = run(sim, Collect(), start=start, speedup=600, minutes=10, stop=threading.Event())  # type: ignore[arg-type]
    assert summary["ticks"] == 61
    for at, push in posted:
        for item in json.loads(push.data_list):
            assert epoch(item.get("gpsTime") or item.get("msg", {}).get("alarmTime") or item["gateTime"]) <= at
    assert epoch(json.loads(posted[-1][1].data_list)[0]["gateTime"]) == pytest.approx(time.time(), abs=2)


def test_it_asks_for_a_road_graph_when_none_is_loaded(db):
    with pytest.raises(CommandError, match=r"no road graph is loaded: run `manage.py load_osm"):
        call_command("simulate_fleet", "--vehicles", "2", "--token", "x", "--minutes", "1")


def test_it_asks_for_the_push_source_it_posts_to(roads):
    with pytest.raises(CommandError, match=r"no push source 'nowhere'.*push_source nowhere --kind jimi-iothub"):
        call_command("simulate_fleet", "--source", "nowhere", "--minutes", "1")


# --- the demo fleet --------------------------------------------------------------------------------------------------


def test_it_provisions_the_demo_fleet_once_and_reuses_it(db):
    out = StringIO()
    first = provision_demo_fleet(out=out)
    assert "generated secret" in out.getvalue()
    assert "20 vehicles (20 new)" in out.getvalue()
    secret = PushSource.objects.get(name="demo-hub").secret
    again = provision_demo_fleet(out=StringIO())
    assert (first.vehicles_created, again.vehicles_created, again.devices_created) == (20, 0, 0)
    assert PushSource.objects.get(name="demo-hub").secret == secret
    devices = Device.objects.filter(imei__in=demo_imeis(20))
    assert sorted(devices.values_list("lifecycle", flat=True)) == [Lifecycle.ACTIVE] * 20
    assert {d.account.name for d in devices} == {"Demo fleet"}
    plates = set(Vehicle.objects.values_list("plate", flat=True))
    assert len(plates) == 20
    assert {"KDA101A", "UBA512C"} <= plates
    assert Vehicle.objects.filter(cost_centre=None).count() == 0
    assert Vehicle.objects.filter(assigned_city=None).count() == 0
    assert set(Vehicle.objects.values_list("assigned_city__country_code", flat=True)) == {"KE", "UG"}
    assert DriverAssignment.objects.count() == 6 == again.drivers_on_duty
    assert Device.objects.get(imei=demo_imei(1)).vehicle.plate == "KDA101A"
