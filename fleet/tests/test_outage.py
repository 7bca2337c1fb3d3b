"""PostgreSQL stopped and started under a push load, through the real gateway and worker roles on a cluster of
the test's own: every 200 has its row, the rest were refused, and the same worker process parses every
acknowledged push soon after the database is back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs, urlencode

import psycopg
import pytest
import requests

from devtools.testing.cluster import throwaway_cluster
from devtools.testing.fixtures import ROOT, wait_until

SECRET = "outage-hub-token"
IMEI = "868120246598152"
RECOVERY_LIMIT_S = 30


def push_body(i: int) -> str:
    fix = {"deviceImei": IMEI, "gpsTime": f"2026-01-13 {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
           "lat": -1.29 + i * 1e-5, "lng": 36.82, "gpsSpeed": 30, "acc": 1}  # fmt: skip
    return urlencode({"token": SECRET, "data_list": json.dumps([fix])})


def pushed_index(body: bytes) -> int:
    fix = json.loads(parse_qs(body.decode())["data_list"][0])[0]
    h, m, s = map(int, fix["gpsTime"][11:].split(":"))
    return h * 3600 + m * 60 + s


class Load(threading.Thread):
    """Pushes one fix at a time, as fast as answers come (at most every 20 ms), and records every answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answers: dict[int, int | str] = {}
        self.done = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.done.is_set():
            i += 1
            try:
                response = requests.post(self.url, data=push_body(i), timeout=10,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
                self.answers[i] = response.status_code
            except requests.RequestException as exc:
                self.answers[i] = type(exc).__name__
            time.sleep(0.02)


def rows(dsn: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn, connect_timeout=3) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def cluster():
    with throwaway_cluster() as c:
        yield c


def test_it_parses_every_acknowledged_push_after_the_database_restarts(cluster, role_process):
    env = {"DATABASE_URL": cluster.url, "ROLE_RECONNECT_MAX_S": "2", "LOG_LEVEL": "WARNING"}
    subprocess.run(
        [sys.executable, "manage.py", "push_source", "hub", "--kind", "jimi-iothub", "--secret", SECRET,
         "--account", "Nairobi", "--create-account"],
        cwd=ROOT, env={**env, "PATH": "/usr/bin:/bin"}, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    gateway = role_process("gateway", env=env)
    worker = role_process("worker", env=env)
    gateway.wait_http()
    wait_until(lambda: requests.get(gateway.base_url + "/health/worker", timeout=5).status_code == 200, timeout=60)
    worker_pid = worker.proc.pid

    load = Load(f"{gateway.base_url}/push/iothub/hub/pushgps")
    load.start()
    time.sleep(2)
    cluster.stop("immediate")
    time.sleep(5)
    cluster.start()
    restarted, restarted_at = time.monotonic(), time.time()
    time.sleep(3)
    load.done.set()
    load.join()

    answers = load.answers
    acknowledged = {i for i, a in answers.items() if a == 200}
    refused = {i: a for i, a in answers.items() if a != 200}
    assert acknowledged, answers  # pushes went through before and after the outage…
    assert refused, answers  # …and were refused during it
    assert set(refused.values()) <= {503, "ConnectionError", "ReadTimeout"}, refused

    stored = {pushed_index(bytes(body)) for (body,) in rows(cluster.dsn, "SELECT body FROM events_raw")}
    assert acknowledged <= stored  # every 200 has its row

    def all_parsed() -> bool:
        pending = rows(cluster.dsn, "SELECT count(*) FROM events_raw WHERE status = 'pending'")[0][0]
        return pending == 0

    wait_until(all_parsed, timeout=RECOVERY_LIMIT_S, every=0.2)
    recovered_after = time.monotonic() - restarted
    ((backlog_done,),) = rows(
        cluster.dsn, "SELECT extract(epoch FROM max(parsed_at)) FROM events_raw WHERE received_at < to_timestamp(%s)",
        restarted_at,
    )  # fmt: skip
    backlog_s = float(backlog_done) - restarted_at
    print(f"outage: {len(acknowledged)} acknowledged, {len(refused)} refused; what was stored before the restart"
          f" was parsed {backlog_s:.1f} s after it, everything by {recovered_after:.1f} s")  # fmt: skip
    assert worker.proc.poll() is None  # the same process rode it out
    assert worker.proc.pid == worker_pid
    wait_until(lambda: requests.get(gateway.base_url + "/health/worker", timeout=5).status_code == 200, timeout=30)
    wait_until(
        lambda: (
            rows(cluster.dsn, "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('failed', 'doing')") == [(0,)]
        ),
        timeout=RECOVERY_LIMIT_S,
    )
    latest = rows(cluster.dsn, "SELECT occurred_at FROM state_live_positions")
    assert len(latest) == 1  # projected too: the device's live position
