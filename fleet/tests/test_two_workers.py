"""Several worker processes on one database, as on several hosts (each its own connections and settings).

Under a steady push load through the real gateway, one of two workers is killed with SIGKILL in the middle of a
batch and started again as bin/role would: both take part, every acknowledged push is parsed once, every fix is
projected once, the state is what a full replay gives, and the dead worker's job is healed — none stays `doing`,
none fails. And workers started together apply the migrations one at a time."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from django.core.management import call_command
from django.db import connection

from devtools.testing.fixtures import RoleProcess, wait_until
from events.models import PushSource, SourceKind
from fleet.management.commands.worker import MIGRATE_LOCK
from fleet.tasks import jobs_heal_stalled

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "two-workers-hub"
DEVICES = 6
FIXES_PER_DEVICE = 450  # 2,700 fixes
HEARTBEAT_EVERY = 8  # every 8th push is a /pushhb of every device (the readings projector works too)
T0 = datetime(2026, 1, 13, 6, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)
LOAD_S = 6.0  # the pushes are spread evenly over this long (longer when the gateway answers more slowly)
KILL_AFTER = 0.3  # share of the pushes sent before the kill

# Two hosts are rarely configured alike: different concurrency and batch sizes.
WORKER_A = (("--concurrency", "3"), {"PARSE_BATCH_SIZE": "40", "PROJECT_BATCH_SIZE": "200"})
WORKER_B = (("--concurrency", "2"), {"PARSE_BATCH_SIZE": "100", "PROJECT_BATCH_SIZE": "500"})
WORK_QUEUES = ("parse", "project")


def imei(k: int) -> str:
    return f"8681202465{k:05d}"


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def fix_at(k: int, i: int) -> tuple[datetime, float, float]:
    """Device k's i-th fix: a slow straight drive (about 30 m per 10 s), one per device and device time."""
    return T0 + i * STEP, round(-1.29 + 0.01 * k + 2.5e-4 * i, 6), round(36.82 + 1e-4 * i, 6)


def pushes() -> list[tuple[str, list[dict[str, Any]]]]:
    """The load: /pushgps pushes of 1-3 devices' next 1-6 fixes each, in mixed order, and a /pushhb now and then."""
    rng = random.Random(7)
    sent = [0] * DEVICES
    out: list[tuple[str, list[dict[str, Any]]]] = []
    beats = 0
    while any(n < FIXES_PER_DEVICE for n in sent):
        if len(out) % HEARTBEAT_EVERY == HEARTBEAT_EVERY - 1:
            beats += 1
            gate = stamp(T0 + beats * timedelta(seconds=37))
            out.append(("pushhb", [{"deviceImei": imei(k), "gateTime": gate, "powerLevel": 5} for k in range(DEVICES)]))
            continue
        waiting = [k for k in range(DEVICES) if sent[k] < FIXES_PER_DEVICE]
        items = []
        for k in rng.sample(waiting, min(len(waiting), rng.randint(1, 3))):
            for _ in range(min(rng.randint(1, 6), FIXES_PER_DEVICE - sent[k])):
                at, lat, lng = fix_at(k, sent[k])
                items.append({"deviceImei": imei(k), "gpsTime": stamp(at), "lat": lat, "lng": lng, "gpsSpeed": 11,
                              "acc": 1})  # fmt: skip
                sent[k] += 1
        rng.shuffle(items)
        out.append(("pushgps", items))
    return out


class Load(threading.Thread):
    """Sends the pushes one at a time at a steady rate (LOAD_S for all of them), and keeps each answer."""

    def __init__(self, base_url: str, bodies: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.bodies = bodies
        self.answers: list[int | str] = []

    def run(self) -> None:
        every = LOAD_S / len(self.bodies)
        began = time.monotonic()
        with requests.Session() as session:
            for i, (path, body) in enumerate(self.bodies):
                time.sleep(max(0.0, began + i * every - time.monotonic()))
                try:
                    response = session.post(f"{self.base_url}/push/iothub/hub/{path}", data=body, timeout=30,
                                            headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
                    self.answers.append(response.status_code)
                except requests.RequestException as exc:
                    self.answers.append(type(exc).__name__)


def one(sql: str, params: Any = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def rows(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def worker_ids() -> set[int]:
    return {r[0] for r in rows("SELECT id FROM procrastinate_workers")}


def listening() -> int:
    return int(
        one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'fleet-worker' AND query LIKE 'LISTEN %%'"
        )
    )


def jobs_doing(worker_id: int) -> list[tuple[int, str]]:
    return rows(
        "SELECT id, task_name FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = %s"
        " AND queue_name = ANY(%s) ORDER BY id",
        [worker_id, list(WORK_QUEUES)],
    )


def backends(pid: int) -> list[int]:
    """The PostgreSQL backends serving a process's connections: those whose client port is one of its sockets'."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed meanwhile
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    ports = [
        int(fields[1].rsplit(":", 1)[1], 16)
        for table in ("tcp", "tcp6")
        for fields in (line.split() for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:])
        if fields[9] in inodes
    ]
    found = rows(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND client_port = ANY(%s)", [ports]
    )
    return [r[0] for r in found]


def claim_held(proc: RoleProcess, worker_id: int) -> tuple[list[int], str] | None:
    """While one of the worker's parse or project jobs is `doing`: its backends, and the statement of the one
    whose transaction has written (a batch holding its claim: the claim's DELETE is a batch's first write)."""
    if not jobs_doing(worker_id):
        return None
    assert proc.proc is not None
    pids = backends(proc.proc.pid)
    writing = rows(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 50) FROM pg_stat_activity"
        " WHERE pid = ANY(%s) AND backend_xid IS NOT NULL AND query NOT ILIKE '%%procrastinate%%'"
        " AND query NOT ILIKE '%%fleet_wake%%' AND query NOT ILIKE '%%fleet_role_heartbeats%%' AND query <> 'COMMIT'",
        [pids],
    )
    return (pids, writing[0][0]) if writing else None


def batches(log: Path) -> dict[str, list[int]]:
    """Committed batches in a worker's log: parse → rows per batch, each projector → events per batch."""
    out: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "parse.batch":
            out.setdefault("parse", []).append(record["rows"])
        elif record.get("event") == "project.batch":
            out.setdefault(record["projector"], []).append(record["events"])
    return out


def state_hash() -> str:
    out = io.StringIO()
    call_command("state_hash", stdout=out)
    [total] = [line.split()[-1] for line in out.getvalue().splitlines() if line.startswith("total")]
    return total


def test_two_workers_share_the_load_and_lose_or_double_nothing_across_a_kill_9(
    account: Any, role_process: Callable[..., RoleProcess], tmp_path: Path
) -> None:
    started = time.monotonic()
    PushSource.objects.create(name="hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret=SECRET)
    load_plan = pushes()
    bodies = [(path, urlencode({"token": SECRET, "data_list": json.dumps(items)})) for path, items in load_plan]
    first_job = one("SELECT coalesce(max(id), 0) FROM procrastinate_jobs")

    gateway = role_process("gateway", env={"RATE_LIMIT_PUSH_PER_MIN": "0"})
    logs: dict[str, Path] = {}
    procs: dict[str, RoleProcess] = {}
    ids: dict[str, int] = {}

    def start_worker(name: str, spec: tuple[tuple[str, ...], dict[str, str]]) -> None:
        """Start a worker process and learn its procrastinate worker id (the row it registers)."""
        before = worker_ids()
        logs[name] = tmp_path / f"worker-{name}.log"
        procs[name] = role_process("worker", *spec[0], env={**spec[1], "LOG_LEVEL": "INFO"}, log=logs[name])
        [ids[name]] = wait_until(lambda: worker_ids() - before, timeout=60)

    start_worker("A1", WORKER_A)
    start_worker("B", WORKER_B)
    gateway.wait_http()
    wait_until(lambda: listening() >= 2, timeout=60)

    load = Load(gateway.base_url, bodies)
    load_started = time.monotonic()
    load.start()

    # Kill A in the middle of a batch: once a share of the load is in, the moment one of its connections is seen
    # in a transaction that has claimed work, within a parse or project job. Once its connections are gone on the
    # server (any statement in flight has ended), the job still `doing` under its id is the one it died in; if
    # that transaction had just committed and the job ended, the next A is killed the same way. Each A is started
    # again at once, as bin/role restarts a role that exited.
    wait_until(lambda: len(load.answers) >= KILL_AFTER * len(bodies), timeout=120, every=0.02)
    killed: list[str] = []
    held: list[tuple[int, str]] = []
    while not held:
        assert len(killed) < 5, "worker A was never seen holding a claim when killed"
        victim = f"A{len(killed) + 1}"
        pids, claim = wait_until(partial(claim_held, procs[victim], ids[victim]), timeout=60, every=0.01)
        procs[victim].stop(signal.SIGKILL)
        killed_at, sent_at_kill = time.monotonic() - load_started, len(load.answers)
        killed.append(victim)
        start_worker(f"A{len(killed) + 1}", WORKER_A)
        wait_until(partial(one, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]), timeout=60)
        held = jobs_doing(ids[victim])
    killed_ids = [ids[name] for name in killed]

    load.join(timeout=180)
    assert not load.is_alive(), "the load did not finish"
    assert load.answers == [200] * len(bodies), Counter(load.answers)

    def drained() -> bool:
        return (
            one("SELECT count(*) FROM events_raw WHERE status = 'pending'") == 0
            and one("SELECT count(*) FROM events_raw_pending") == 0
            and one("SELECT count(*) FROM state_projection_pending") == 0  # every projector's, parked rows too
        )

    wait_until(drained, timeout=120, every=0.2)
    drained_s = time.monotonic() - load_started

    # Every acknowledged push has its raw row (and nothing else does), each parsed once, with all its items.
    stored = {
        bytes(body).decode(): (status, n)
        for body, status, n in rows("SELECT body, status, parsed_count FROM events_raw")
    }
    expected = {body: ("parsed", len(items)) for (_, body), (_, items) in zip(bodies, load_plan, strict=True)}
    assert len(stored) == one("SELECT count(*) FROM events_raw") == len(bodies)
    assert stored == expected

    # events_parsed holds exactly the pushed events: one per dedup key, none missing, none twice.
    fixes = {(imei(k), fix_at(k, i)[0]) for k in range(DEVICES) for i in range(FIXES_PER_DEVICE)}
    beats = {(item["deviceImei"], item["gateTime"]) for path, items in load_plan if path == "pushhb" for item in items}
    parsed = rows(
        "SELECT p.kind, d.imei, p.occurred_at FROM events_parsed p JOIN domain_devices d ON d.id = p.device_id"
    )
    assert len(parsed) == one("SELECT count(DISTINCT dedup_key) FROM events_parsed") == len(fixes) + len(beats)
    assert {(i, at) for kind, i, at in parsed if kind == "position_fix"} == fixes
    assert {(i, stamp(at)) for kind, i, at in parsed if kind == "heartbeat"} == beats

    # One history row per fix; each device's live position is its last fix.
    assert one("SELECT count(*) FROM state_position_history") == len(fixes)
    assert one("SELECT count(DISTINCT parsed_id) FROM state_position_history") == len(fixes)
    live = rows(
        "SELECT d.imei, l.occurred_at, round(ST_Y(l.point::geometry)::numeric, 6)::float8,"
        " round(ST_X(l.point::geometry)::numeric, 6)::float8"
        " FROM state_live_positions l JOIN domain_devices d ON d.id = l.device_id"
    )
    assert sorted(live) == [(imei(k), *fix_at(k, FIXES_PER_DEVICE - 1)) for k in range(DEVICES)]

    # The dead worker's jobs: once its heartbeat is as old as ROLE_HEARTBEAT_MAX_AGE_S (set back here rather than
    # waited for), cron's minute task re-queues them and the live workers finish them; none stays `doing`.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = ANY(%s)",
            [killed_ids],
        )
    jobs_heal_stalled(int(time.time()))
    held_ids = [job_id for job_id, _ in held]
    left = "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(%s) OR (worker_id = ANY(%s) AND status = 'doing')"
    wait_until(lambda: one(left, [held_ids, killed_ids]) == 0, timeout=60, every=0.2)
    failed = rows(
        "SELECT id, task_name FROM procrastinate_jobs WHERE id > %s AND status IN ('failed', 'aborted')", [first_job]
    )
    assert failed == [], "\n".join(log.read_text()[-3000:] for log in logs.values())

    # Both workers took part, and no committed batch was done twice (a row parsed by both would be counted twice
    # in their logs; the last batch of the killed worker rolled back and is not in its log).
    for proc in procs.values():  # all at once: each waits for its running jobs
        if proc.proc and proc.proc.poll() is None:
            os.killpg(proc.proc.pid, signal.SIGTERM)
    for proc in procs.values():
        proc.stop()
    done = {name: batches(log) for name, log in logs.items()}

    def count(names: list[str], kinds: tuple[str, ...], *, what: Callable[[list[int]], int] = len) -> int:
        return sum(what(done[name].get(kind, [])) for name in names for kind in kinds)

    projectors = ("positions", "readings")
    workers = {"A": [name for name in done if name.startswith("A")], "B": ["B"]}
    for names in workers.values():
        assert count(names, ("parse",)) > 0, f"{names} parsed nothing: {done}"
        assert count(names, projectors) > 0, f"{names} projected nothing: {done}"
    parsed_rows = count(list(done), ("parse",), what=sum)
    assert parsed_rows <= len(bodies), f"{parsed_rows} rows parsed for {len(bodies)} pushes"
    positions = count(list(done), ("positions",), what=sum)
    assert positions <= len(fixes), f"{positions} fixes projected for {len(fixes)} pushed"

    # The state the two workers built is the state a full replay builds.
    projected = state_hash()
    call_command("replay", verbosity=0, stdout=io.StringIO())
    assert state_hash() == projected

    def did(names: list[str]) -> str:
        return f"{count(names, ('parse',))} parse and {count(names, projectors)} projector batches"

    print(
        f"two-workers: {len(bodies)} pushes ({len(fixes)} fixes, {len(beats)} heartbeats, {parsed_rows} rows and"
        f" {positions} fixes in logged batches); A {did(killed)} before the kill and {did(workers['A'][-1:])} after"
        f" its restart, B {did(['B'])}; A killed at t={killed_at:.1f} s (push {sent_at_kill} of {len(bodies)}, in"
        f" {', '.join(task for _, task in held)} at `{claim}…`, attempt {len(killed)}), drained at"
        f" t={drained_s:.1f} s, whole test {time.monotonic() - started:.1f} s"
    )


def test_workers_started_together_apply_the_migrations_one_at_a_time(role_process: Callable[..., RoleProcess]) -> None:
    """Worker processes started together (several hosts after a deploy) each migrate on start: one that finds another
    migrating (here the test holds that one's lock) waits for it, and starts its worker only after migrating."""
    lock = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
    with connection.cursor() as cursor:
        cursor.execute(lock, [MIGRATE_LOCK])
        try:
            role_process("worker", migrate=True)
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'advisory'"
                " AND query LIKE 'SELECT pg_advisory_lock(%%'"
            )
            wait_until(partial(one, waiting), timeout=60)
            assert listening() == 0  # blocked before migrating, so before its worker started
        finally:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [MIGRATE_LOCK])
    wait_until(lambda: listening() == 1, timeout=60)
