"""Fixtures shared by every app's tests: domain factories and real role processes on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from domain.models import Account, Device, Vehicle

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def account(db: Any) -> Account:
    return Account.objects.create(name="Nairobi", jimi_account="rahama_nbo")


@pytest.fixture
def make_device(account: Account) -> Callable[..., Device]:
    counter = iter(range(10**6))

    def make(imei: str | None = None, plate: str | None = None, **kwargs: Any) -> Device:
        vehicle = Vehicle.objects.create(plate=plate) if plate else None
        return Device.objects.create(
            imei=imei or f"86012106{next(counter):07d}",
            account=kwargs.pop("account", account),
            vehicle=vehicle,
            **kwargs,
        )

    return make


def test_database_url() -> str:
    """DATABASE_URL of the database the tests run against (the per-xdist-worker test database)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgis://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # pytest's marker; functions declare no such attribute


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RoleProcess:
    """A real role (`manage.py gateway|worker|cron`) running against the test database."""

    def __init__(
        self, role: str, *args: str, env: dict[str, str] | None = None, log: Path | None = None, migrate: bool = False
    ) -> None:
        self.role = role
        self.migrate = migrate  # a worker applies migrations on start only when asked (the test database has them)
        self.log = log  # the role's stdout (its structlog lines) goes here instead of the test's output
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "GATEWAY_BIND": f"127.0.0.1:{self.port}",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RoleProcess:
        argv = [sys.executable, "manage.py", self.role, *self.args]
        if self.role == "worker" and not self.migrate:
            argv.append("--no-migrate")
        if self.role in ("gateway", "cron"):
            argv.append("--no-wait")
        stdout = self.log.open("ab") if self.log else None
        try:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, start_new_session=True, stdout=stdout)  # noqa: S603
        finally:
            if stdout:
                stdout.close()  # the child holds its own descriptor
        return self

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()

    def wait_http(self, path: str = "/health/gateway", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(self.base_url + path, timeout=20)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise TimeoutError(f"{self.role} did not answer on {self.base_url}")


@pytest.fixture
def role_process() -> Iterator[Callable[..., RoleProcess]]:
    started: list[RoleProcess] = []

    def start(
        role: str, *args: str, env: dict[str, str] | None = None, log: Path | None = None, migrate: bool = False
    ) -> RoleProcess:
        proc = RoleProcess(role, *args, env=env, log=log, migrate=migrate).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def wait_until(predicate: Callable[[], Any], timeout: float = 20, every: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


@receiver(connection_created)
def _allow_log_truncate_in_tests(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Django's test flush TRUNCATEs every table between transactional tests; the append-only guard on the log
    tables lets a session through only when it says so. Only test connections do; a test proving the guard
    works turns it off again (SET LOCAL fleet.allow_truncate = 'off')."""
    with connection.cursor() as cursor:
        cursor.execute("SET fleet.allow_truncate = 'on'")


@pytest.fixture
def jimi_sandbox(settings: Any) -> Iterator[Any]:
    """A local Jimi Open API (devtools/jimi_sandbox) with four devices (one an OBD dongle); JIMI_API_URL points at it
    and no token from an earlier test is kept."""
    from devtools.jimi_sandbox.server import JimiSandbox
    from events.jimi.client import TOKENS

    TOKENS.clear()
    settings.JIMI_RETRY_BACKOFF_S = 0.05
    with JimiSandbox(devices=4) as sandbox:
        settings.JIMI_API_URL = sandbox.url
        yield sandbox
    TOKENS.clear()


@pytest.fixture
def jimi_account(db: Any, jimi_sandbox: Any, tmp_path: Path, settings: Any) -> Account:
    """The account polled from the sandbox: its credentials in a file (credential_ref file:…), never in the database;
    also the contract check's account."""
    credentials = tmp_path / "jimi-sandbox.credentials"
    credentials.write_text(jimi_sandbox.credentials_text())
    settings.JIMI_CONTRACT_ACCOUNT = "Jimi sandbox"
    return Account.objects.create(
        name="Jimi sandbox", jimi_account=jimi_sandbox.user_id, credential_ref=f"file:{credentials}"
    )
