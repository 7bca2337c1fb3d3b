"""The demo fleet end to end: `manage.py simulate_fleet` posting real IoT Hub pushes to the real gateway role, the
real worker parsing and projecting them, on the test database with the vendored Monaco road graph — 5 vehicles for
15 simulated minutes at 90 times real speed. Midway the gateway answers 503 (events_raw is locked past the gateway's
lock_timeout) and then goes away and comes back (stopped and started again): the simulator retries, and every batch
it made is stored and parsed; the hub's duplicate batches are stored too and parsed into no second event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from devtools.simulator.demo import demo_imeis
from devtools.testing.fixtures import ROOT, test_database_url, wait_until
from domain.models import Device
from events.models import ParsedEvent, PushSource, RawEvent, SourceKind
from state.models import Alarm, LivePosition, PositionHistory, ProjectionPending, Trip

pytestmark = pytest.mark.django_db(transaction=True)

MONACO = ROOT / "geo" / "data" / "monaco.osm.pbf"
SOURCE, TOKEN = "sim-hub", "sim-hub-token-4d2a"
VEHICLES = 5


def raw_rows() -> int:
    return RawEvent.objects.count()


def log_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return lines


def hold_events_raw(seconds: float) -> None:
    """Lock the log against inserts: the gateway's INSERT waits its lock_timeout, fails, and answers 503."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE events_raw IN SHARE MODE")
        time.sleep(seconds)


def test_it_runs_a_simulated_fleet_through_the_real_gateway_and_worker(role_process, account, tmp_path):
    call_command("load_osm", str(MONACO), verbosity=0)
    PushSource.objects.create(name=SOURCE, kind=SourceKind.JIMI_IOTHUB, account=account, secret=TOKEN)
    database = test_database_url()
    gateway = role_process(
        "gateway", env={"DATABASE_URL": database + "?options=-c%20lock_timeout%3D200", "RATE_LIMIT_PUSH_PER_MIN": "0"}
    )
    role_process("worker")
    sim_log = tmp_path / "simulator.log"
    argv = [sys.executable, "manage.py", "simulate_fleet", "--vehicles", str(VEHICLES), "--speedup", "90",
            "--minutes", "15", "--every", "10", "--seed", "5", "--target", gateway.base_url, "--source", SOURCE,
            "--duplicates", "0.15", "--alarms", "8", "--outages", "4", "--lbs", "4"]  # fmt: skip
    env = {**os.environ, "DATABASE_URL": database, "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    with sim_log.open("wb") as out:
        simulator = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # 503s: the database refuses the gateway's INSERTs for 1.5 s.
        wait_until(lambda: raw_rows() >= 5, timeout=30)
        hold_events_raw(1.5)
        # No gateway at all: stopped, and started again 1 s later on the same port.
        stored = raw_rows()
        wait_until(lambda: raw_rows() >= stored + 5, timeout=15)
        assert simulator.poll() is None, "the simulator ended before the gateway went away"
        gateway.stop()
        time.sleep(1)
        gateway.start()
        assert simulator.wait(timeout=60) == 0, sim_log.read_text()[-3000:]
    finally:
        if simulator.poll() is None:
            simulator.kill()
            simulator.wait()
    lines = log_lines(sim_log)
    (summary,) = [line for line in lines if line["event"] == "simulator.done"]
    print("simulator:", json.dumps(summary))
    retries = Counter(line["status"] for line in lines if line["event"] == "simulator.push_retry")
    assert retries[503] >= 1, retries  # the gateway answered 503
    assert retries[None] >= 1, retries  # no gateway to answer
    assert (summary["unsent_posts"], summary["accepted"]) == (0, summary["posts"])
    assert min(summary["duplicate_posts"], summary["alarms"], summary["lbs"]) >= 1

    def drained() -> bool:
        return not RawEvent.objects.filter(status="pending").exists() and not ProjectionPending.objects.exists()

    wait_until(drained, timeout=20)
    # Every batch made is stored (the duplicates too), once per post; every raw row parsed.
    assert raw_rows() == summary["posts"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT body) FROM events_raw")
        assert cursor.fetchone()[0] == summary["posts"] - summary["duplicate_posts"]
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"parsed"}
    # One event per fix, alarm and LBS report made, however many times its batch was posted.
    kinds = Counter(ParsedEvent.objects.values_list("kind", flat=True))
    assert kinds == {"position_fix": summary["fixes"], "alarm": summary["alarms"], "lbs": summary["lbs"]}
    devices = {d.imei: d.id for d in Device.objects.filter(account=account)}
    assert set(devices) == set(demo_imeis(VEHICLES))
    # Five live positions, on roads, each away from where its vehicle started.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.device_id,"
            "       (SELECT min(ST_Distance(w.geom::geography, l.point)) FROM"
            "         (SELECT geom FROM geo_ways ORDER BY geom <-> l.point::geometry LIMIT 8) w),"
            "       (SELECT ST_Distance(h.point, l.point) FROM state_position_history h"
            "         WHERE h.device_id = l.device_id AND h.verdict = 'ok' ORDER BY h.occurred_at LIMIT 1)"
            "  FROM state_live_positions l"
        )
        live = cursor.fetchall()
    assert sorted(device for device, _, _ in live) == sorted(devices.values())
    assert all(to_road < 10 for _, to_road, _ in live), live
    assert all(from_start > 100 for _, _, from_start in live), live
    assert LivePosition.objects.count() == VEHICLES
    # Trips derived for every vehicle, alarms projected, late fixes kept as re-transmitted history.
    trips = Counter(Trip.objects.filter(source="derived", distance_m__gt=200).values_list("device_id", flat=True))
    assert set(trips) == set(devices.values()), trips
    assert Alarm.objects.count() == summary["alarms"]
    assert PositionHistory.objects.filter(retransmitted=True).count() == summary["fixes_late"] > 0
