"""push → events_raw → (commit-time wake-up) → real worker → events_parsed. Nothing lost, nothing doubled."""

from __future__ import annotations

import json
import signal
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.db.models import Count

from devtools.testing.fixtures import wait_until
from domain.models import Device
from events.models import ParsedEvent, RawEvent
from events.tests.conftest import IOTHUB_SECRET

pytestmark = pytest.mark.django_db(transaction=True)

IMEI = "868120246598152"


def gps(i: int, imei: str = IMEI) -> dict:
    return {
        "deviceImei": imei,
        "gpsTime": f"2026-01-13 02:{i // 60:02d}:{i % 60:02d}",
        "lat": -1.2921 + i * 1e-4,
        "lng": 36.8219,
        "gpsSpeed": 30,
        "acc": 1,
    }


def _statuses() -> dict[str, int]:
    return dict(RawEvent.objects.values_list("status").annotate(n=Count("id")))


@pytest.fixture
def worker(role_process):
    # The sweeps are off (0): these tests prove the commit-time wake-up alone delivers.
    return role_process("worker", env={"PARSE_SWEEP_EVERY_S": "0", "PROJECT_SWEEP_EVERY_S": "0"})


def test_it_turns_a_push_into_parsed_rows_and_provisions_the_unknown_device(
    post_iothub, iothub_source, worker, account
):
    assert post_iothub("pushgps", [gps(1), gps(2)]).status_code == 200
    wait_until(lambda: ParsedEvent.objects.count() == 2, timeout=20)
    raw = RawEvent.objects.get()
    assert (raw.status, raw.parsed_count) == ("parsed", 2)
    assert raw.parser_version.startswith("jimi-iothub/pushgps@")
    device = Device.objects.get(imei=IMEI)
    assert (device.lifecycle, device.account_id) == ("provisioned", account.id)
    assert set(ParsedEvent.objects.values_list("kind", "device_id", "raw_id")) == {("position_fix", device.id, raw.id)}


def test_it_keeps_one_set_of_events_for_a_batch_pushed_twice(post_iothub, iothub_source, worker):
    batch = [gps(i) for i in range(5)]
    post_iothub("pushgps", batch)
    post_iothub("pushgps", batch)
    wait_until(lambda: _statuses() == {"parsed": 2}, timeout=20)
    assert ParsedEvent.objects.count() == 5


@pytest.mark.parametrize(
    "data_list",
    [
        "[{not json",
        json.dumps([{"deviceImei": IMEI, "gpsTime": "2026-01-13 02:00:00", "lat": "abc", "lng": "x"}]),
        json.dumps([{"lat": 1.0}]),
    ],
    ids=["malformed-json", "wrong-types", "missing-fields"],
)
def test_it_marks_bad_bodies_failed_and_the_worker_lives_on(post_iothub, iothub_source, worker, data_list):
    assert post_iothub("pushgps", data_list).status_code == 200
    raw = wait_until(lambda: RawEvent.objects.exclude(status="pending").first(), timeout=20)
    assert raw.status == "failed"
    assert raw.error
    post_iothub("pushgps", [gps(7)])
    wait_until(lambda: ParsedEvent.objects.count() == 1, timeout=20)


def test_it_marks_non_utf8_bytes_failed(client, iothub_source, worker):
    body = b"token=" + IOTHUB_SECRET.encode() + b"&data_list=%5B%FF%FE"
    assert (
        client.post("/push/iothub/hub/pushgps", data=body, content_type="application/x-www-form-urlencoded").status_code
        == 200
    )
    raw = wait_until(lambda: RawEvent.objects.exclude(status="pending").first(), timeout=20)
    assert raw.status == "failed"


def test_it_wakes_for_rows_committed_while_a_drain_runs(iothub_source, worker):
    """The wake-up race (docs/architecture.md): rows inserted while a todo job exists must not wait for the sweep."""
    wait_until(lambda: _listening(), timeout=20)
    body = urlencode({"token": IOTHUB_SECRET, "data_list": json.dumps([gps(1)])}).encode()
    for _ in range(200):
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body)"
                " VALUES (%s, 'jimi-iothub', 'pushgps', 'application/x-www-form-urlencoded', %s)",
                [iothub_source.id, body],
            )
    wait_until(lambda: _statuses() == {"parsed": 200}, timeout=15)


def _listening() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fleet-worker' AND query LIKE 'LISTEN %'"
        )
        return cursor.fetchone()[0] > 0


def test_it_parses_every_row_exactly_once_across_a_kill_9(iothub_source, role_process):
    rows = 6000
    with connection.cursor() as cursor:
        # One event per raw row, each distinct (its own time), inserted as one backlog.
        cursor.execute(
            "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body)"
            " SELECT %s, 'jimi-iothub', 'pushgps', 'application/x-www-form-urlencoded',"
            "        convert_to('token=x&data_list=' || json_build_array(json_build_object("
            "          'deviceImei', %s, 'gpsTime', to_char(timestamp '2026-01-01' + i * interval '1 second',"
            "          'YYYY-MM-DD HH24:MI:SS'), 'lat', -1.29, 'lng', 36.82))::text, 'UTF8')"
            "   FROM generate_series(1, %s) AS i",
            [iothub_source.id, IMEI, rows],
        )
    first = role_process("worker", "--concurrency", "1", env={"PARSE_BATCH_SIZE": "100"})
    wait_until(lambda: RawEvent.objects.filter(status="parsed").count() >= 300, timeout=30, every=0.02)
    first.stop(signal.SIGKILL)
    midway = RawEvent.objects.filter(status="parsed").count()
    assert midway < rows, "the worker finished before it could be killed; make the backlog bigger"
    role_process("worker", env={"PARSE_BATCH_SIZE": "100"})
    wait_until(lambda: RawEvent.objects.filter(status="parsed").count() == rows, timeout=90, every=0.5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT raw_id) FROM events_parsed")
        assert cursor.fetchone() == (rows, rows)
        cursor.execute("SELECT count(*) FROM events_raw_pending")
        assert cursor.fetchone()[0] == 0
