"""events_parsed → (commit-time wake-up) → real worker → state. Out-of-order commits and kill -9: nothing lost or
doubled."""

from __future__ import annotations

import json
import signal
from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from devtools.testing.fixtures import wait_until
from state.tests.drives import T0, digest, drive, fix, insert, live_of
from state.tests.test_replay import scenario

pytestmark = pytest.mark.django_db(transaction=True)

S = timedelta(seconds=1)


def _count(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _pending() -> int:
    return _count("SELECT count(*) FROM state_projection_pending")


def _listening() -> bool:
    return bool(
        _count(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'fleet-worker' AND query LIKE 'LISTEN %'"
        )
    )


@pytest.fixture
def worker(role_process):
    # The sweeps are off (0): these tests prove the commit-time wake-up alone delivers.
    proc = role_process("worker", env={"PARSE_SWEEP_EVERY_S": "0", "PROJECT_SWEEP_EVERY_S": "0"})
    wait_until(_listening, timeout=30)
    return proc


def _raw_insert(conn: psycopg.Connection, ev, account_id: int) -> int:
    return conn.execute(
        "INSERT INTO events_parsed (raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at,"
        " parser_version, payload, dedup_key) VALUES (%s, %s, %s, %s, %s, %s, %s, 'test@1', %s, %s) RETURNING id",
        [ev.raw_id, ev.at, ev.kind, account_id, ev.device_id, ev.at, ev.at + 2 * S, json.dumps(ev.payload), ev.dedup()],
    ).fetchone()[0]


def _connect() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"], user=s["USER"], dbname=s["NAME"])


def test_it_projects_a_committed_fix_into_the_live_position(make_device, account, worker):
    d = make_device().id
    [parsed_id] = insert([fix(d, T0, -1.29, 36.82, 30.0)], account_id=account.id)
    assert wait_until(lambda: live_of(d), timeout=10)[0] == parsed_id


def test_it_never_skips_an_event_that_commits_out_of_id_order(make_device, account, worker):
    d = make_device().id
    with _connect() as early, _connect() as late:
        early_id = _raw_insert(early, fix(d, T0 + 60 * S, -1.2905, 36.82, 30.0), account.id)  # lower id, later fix
        late_id = _raw_insert(late, fix(d, T0, -1.29, 36.82, 30.0), account.id)
        assert early_id < late_id
        late.commit()
        wait_until(lambda: live_of(d) and live_of(d)[0] == late_id, timeout=10)
        early.commit()
    wait_until(lambda: live_of(d)[0] == early_id, timeout=10)
    assert _count("SELECT count(*) FROM state_position_history WHERE device_id = %s", [d]) == 2
    assert _pending() == 0


def test_it_loses_and_doubles_nothing_across_a_kill_9(make_device, account, role_process):
    devices = [make_device().id for _ in range(30)]
    events = [e for d in devices for e in scenario(d)]
    insert(events, account_id=account.id)
    first = role_process("worker", "--concurrency", "1", env={"PROJECT_BATCH_SIZE": "100"})
    wait_until(lambda: _count("SELECT count(*) FROM state_position_history") >= 1500, timeout=60, every=0.02)
    first.stop(signal.SIGKILL)
    assert _pending() > 0, "the worker finished before it could be killed; make the backlog bigger"
    role_process("worker", env={"PROJECT_BATCH_SIZE": "500"})
    wait_until(lambda: _pending() == 0, timeout=120, every=0.5)
    fixes = sum(e.kind == "position_fix" for e in events)
    assert _count("SELECT count(*) FROM state_position_history") == fixes
    assert _count("SELECT count(DISTINCT parsed_id) FROM state_position_history") == fixes
    assert _count("SELECT count(*) FROM state_live_positions") == len(devices)
    projected = digest()
    call_command("replay", verbosity=0)
    assert digest() == projected


def test_it_keeps_pace_with_a_drive_pushed_fix_by_fix(make_device, account, worker):
    d = make_device().id
    events = drive(d, T0, seconds=600)
    ids = [insert([e], account_id=account.id)[0] for e in events]
    wait_until(lambda: live_of(d) and live_of(d)[0] == ids[-1], timeout=20)
    wait_until(lambda: _count("SELECT count(*) FROM state_trips WHERE device_id = %s", [d]) == 1, timeout=10)
