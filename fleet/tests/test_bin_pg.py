"""bin/pg, the private cluster of a checkout: a second checkout on the same machine gets a port of its own.

Each test runs a copy of bin/pg from a temporary checkout layout (`<tmp>/bin/pg`, so its root is `<tmp>`) while
something listens on 54329: this checkout's own cluster, or a socket the test opens when that port is free.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from devtools.testing.fixtures import free_port
from fleet.settings import embedded_pg_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 54329
LAST_PORT = 54399


def taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def listen(port: int, stack: ExitStack) -> socket.socket:
    s = stack.enter_context(socket.socket())
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


class Checkout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bin").mkdir()
        shutil.copy2(ROOT / "bin" / "pg", root / "bin" / "pg")
        self.port_file = root / ".var" / "pg.port"

    def pg(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if k not in ("FLEET_PG_PORT", "FLEET_PG_DB")}
        return subprocess.run(
            [self.root / "bin" / "pg", *args], env={**environ, **env}, capture_output=True, text=True, timeout=120
        )

    def data_dir(self) -> Path:
        return Path(re.match(r"\w+: (\S+)", self.pg("status").stdout).group(1))


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Checkout]:
    checkout = Checkout(tmp_path)
    yield checkout
    checkout.pg("clean")


def postgres_processes_of(data: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(data).encode() in argv:
            pids.append(int(proc.name))
    return pids


def test_a_second_checkout_picks_a_free_port_records_it_and_cleans_up(checkout: Checkout) -> None:
    with ExitStack() as stack:
        if not taken(DEFAULT_PORT):
            listen(DEFAULT_PORT, stack)  # as another checkout's cluster would
        skipped = next(p for p in range(DEFAULT_PORT + 1, LAST_PORT + 1) if not taken(p))
        listen(skipped, stack)  # a taken port past 54329 is skipped too
        expected = next(p for p in range(skipped + 1, LAST_PORT + 1) if not taken(p))

        started = checkout.pg("start")
        assert started.returncode == 0, started.stderr
        assert f"port {DEFAULT_PORT} is taken by " in started.stderr

    port = int(checkout.port_file.read_text())
    assert expected <= port <= LAST_PORT
    assert checkout.pg("url").stdout == f"postgis://postgres@127.0.0.1:{port}/fleet\n"
    status = checkout.pg("status")
    assert status.returncode == 0
    assert status.stdout.endswith(f"(port {port})\n")
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="fleet", connect_timeout=5) as conn:
        assert conn.execute("SHOW port").fetchone() == (str(port),)

    # A cluster from before the port was recorded: the port is read from its configuration, and recorded.
    data = checkout.data_dir()
    assert checkout.pg("stop").returncode == 0
    checkout.port_file.unlink()
    assert checkout.pg("url").stdout == f"postgis://postgres@127.0.0.1:{port}/fleet\n"
    assert int(checkout.port_file.read_text()) == port

    # Its port taken while it was stopped: start says by what, and what to do.
    with ExitStack() as stack:
        listen(port, stack)
        refused = checkout.pg("start")
    assert refused.returncode != 0
    assert f"bin/pg: port {port} is taken by " in refused.stderr
    assert "set FLEET_PG_PORT or stop it" in refused.stderr
    if shutil.which("ss"):
        assert f"(pid {os.getpid()})" in refused.stderr

    assert checkout.pg("start").returncode == 0
    assert postgres_processes_of(data)
    assert checkout.pg("stop").returncode == 0
    assert checkout.pg("clean").returncode == 0
    assert not data.exists()
    assert not checkout.port_file.exists()
    if data != checkout.root / ".var" / "pg":
        assert not data.parent.exists()  # its /var/tmp home too
    assert not postgres_processes_of(data)
    assert not taken(port)


def test_an_explicit_port_that_is_taken_is_refused_before_anything_is_created(checkout: Checkout) -> None:
    with ExitStack() as stack:
        port = free_port()
        listen(port, stack)
        refused = checkout.pg("start", FLEET_PG_PORT=str(port))
    assert refused.returncode != 0
    assert f"bin/pg: port {port} is taken by " in refused.stderr
    if shutil.which("ss"):
        assert f"(pid {os.getpid()})" in refused.stderr
    data = checkout.data_dir()
    assert not (data / "PG_VERSION").exists()
    assert not checkout.port_file.exists()


def test_an_explicit_port_wins(checkout: Checkout) -> None:
    checkout.port_file.parent.mkdir()
    checkout.port_file.write_text("54345\n")
    assert checkout.pg("url").stdout == "postgis://postgres@127.0.0.1:54345/fleet\n"
    assert checkout.pg("url", FLEET_PG_PORT="6543").stdout == "postgis://postgres@127.0.0.1:6543/fleet\n"


def test_settings_use_the_recorded_port_unless_one_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_PG_PORT", raising=False)
    assert embedded_pg_port(tmp_path) == DEFAULT_PORT
    (tmp_path / ".var").mkdir()
    (tmp_path / ".var" / "pg.port").write_text("54331\n")
    assert embedded_pg_port(tmp_path) == 54331
    monkeypatch.setenv("FLEET_PG_PORT", "6543")
    assert embedded_pg_port(tmp_path) == 6543
