"""Shared machinery of the benchmark commands: a throw-away database, real role processes, wrk.

Benchmarks never write into the database they are pointed at: the raw log is append-only, so they create a
scratch database beside it, migrate it, and drop it at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import CommandError

ROOT = Path(__file__).resolve().parent.parent

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
function done(summary, latency, requests)
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %.3f, "errors": %d, "non2xx": %d, ' ..
    '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def _conninfo(dbname: str | None = None) -> dict[str, Any]:
    s = settings.DATABASES["default"]
    return {
        "host": s["HOST"] or "127.0.0.1",
        "port": s["PORT"] or 5432,
        "user": s["USER"],
        "password": s["PASSWORD"] or None,
        "dbname": dbname or s["NAME"],
        "autocommit": True,
    }


def conninfo_for(url: str) -> dict[str, Any]:
    """psycopg connection arguments for a DATABASE_URL made by database_url()."""
    return _conninfo(url.rsplit("/", 1)[1])


def database_url(dbname: str) -> str:
    s = settings.DATABASES["default"]
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgis://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{dbname}"


@contextlib.contextmanager
def scratch_database(prefix: str = "fleet_bench") -> Iterator[str]:
    """Create and migrate a database for one benchmark run; drop it afterwards. Yields its DATABASE_URL."""
    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(**_conninfo("postgres")) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(name)
    try:
        manage("migrate", "--no-input", "-v", "0", url=url)
        yield url
    finally:
        with psycopg.connect(**_conninfo("postgres")) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(*args: str, url: str) -> str:
    out = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=ROOT, env=role_env(url), check=True, capture_output=True, text=True
    )
    return out.stdout


def role_env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "DEBUG": "false", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def role(name: str, *args: str, url: str, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", name, *args],
        cwd=ROOT,
        env=role_env(url, **extra),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_http(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.ConnectionError):
            requests.get(url, timeout=20)
            return
        time.sleep(0.1)
    raise CommandError(f"nothing answered on {url}")


def wait_listening(info: dict[str, Any], timeout: float = 60, *, count: int = 1) -> None:
    """Wait until `count` worker roles' LISTEN connections are open on the database of `info`."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(**info) as conn:
        while time.monotonic() < deadline:
            if (
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'fleet-worker' AND query LIKE 'LISTEN %'"
                ).fetchone()[0]
                >= count
            ):
                return
            time.sleep(0.05)
    raise TimeoutError("the worker never started listening")


def wrk(url: str, *, body: str, seconds: int, concurrency: int, threads: int = 2) -> dict[str, float]:
    """POST `body` to `url` for `seconds` with `concurrency` connections; returns req/s and latency percentiles."""
    binary = shutil.which("wrk")
    if binary is None:
        raise CommandError("wrk is not installed: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        out = subprocess.run(  # noqa: S603
            [binary, "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "-s", script.name, url],
            env={**os.environ, "BENCH_BODY": body},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(line for line in out.splitlines() if line.startswith("WRK "))
    figures: dict[str, float] = json.loads(line[4:])
    figures["req_s"] = figures["requests"] / figures["seconds"]
    return figures


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]
