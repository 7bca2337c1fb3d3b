"""bin/role, the Procfile's wrapper of each role: a role that exits is restarted with a growing pause, and a stop
(SIGTERM from honcho, Ctrl-C) ends the role and the wrapper with nothing left running and no restart.

The role is a stand-in (FLEET_ROLE_COMMAND): a small Python script that notes each start, then exits at once or
runs until stopped. No database is needed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.testing.fixtures import wait_until

ROOT = Path(__file__).resolve().parents[2]

FAKE_ROLE = """
import os, sys, time
with open(sys.argv[1], "a") as runs:
    runs.write(f"{os.getpid()}\\n")
if sys.argv[2] == "crash":
    sys.exit(3)
time.sleep(300)
"""


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid` (zombies waiting for their parent do not count)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class Wrapper:
    def __init__(self, tmp_path: Path, mode: str) -> None:
        script = tmp_path / "fake_role.py"
        script.write_text(FAKE_ROLE)
        self.runs_file = tmp_path / "runs"
        self.stderr_file = tmp_path / "stderr"
        env = {**os.environ, "FLEET_ROLE_COMMAND": f"{sys.executable} {script} {self.runs_file}"}
        with self.stderr_file.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [ROOT / "bin" / "role", mode], env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
            )

    def runs(self) -> list[int]:
        return [int(line) for line in self.runs_file.read_text().split()] if self.runs_file.exists() else []

    def stderr(self) -> str:
        return self.stderr_file.read_text()

    def stopped_cleanly(self, timeout: float = 5) -> float:
        """Wait for the wrapper to exit (status 0) and for its process group to be empty; return the seconds taken."""
        begun = time.monotonic()
        assert self.proc.wait(timeout=timeout) == 0
        wait_until(lambda: not group_members(self.proc.pid), timeout=timeout)
        return time.monotonic() - begun

    def kill(self) -> None:
        if self.proc.poll() is None or group_members(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def wrapper(tmp_path: Path) -> Iterator[Callable[[str], Wrapper]]:
    started: list[Wrapper] = []

    def start(mode: str) -> Wrapper:
        started.append(Wrapper(tmp_path, mode))
        return started[-1]

    yield start
    for w in started:
        w.kill()


def test_a_role_that_exits_is_restarted_after_a_pause_that_doubles(wrapper) -> None:
    role = wrapper("crash")
    wait_until(lambda: len(role.runs()) >= 3, timeout=15)
    lines = [line for line in role.stderr().splitlines() if "restarting" in line]
    assert lines[:2] == ["crash exited (status 3); restarting in 1s", "crash exited (status 3); restarting in 2s"]
    assert len(set(role.runs())) == len(role.runs())  # a new process each time

    # Now in its 4 s pause: a SIGTERM ends that pause at once, and nothing starts again.
    role.proc.send_signal(signal.SIGTERM)
    assert role.stopped_cleanly() < 2
    assert len(role.runs()) == 3


def test_sigterm_stops_a_running_role_and_the_wrapper_without_a_restart(wrapper) -> None:
    role = wrapper("serve")
    wait_until(lambda: role.runs(), timeout=10)
    (pid,) = role.runs()
    assert pid in group_members(role.proc.pid)
    role.proc.send_signal(signal.SIGTERM)  # to the wrapper alone: it stops the role itself
    role.stopped_cleanly()
    assert role.runs() == [pid]
    assert "restarting" not in role.stderr()


def test_ctrl_c_stops_everything_without_a_restart(wrapper) -> None:
    role = wrapper("serve")
    wait_until(lambda: role.runs(), timeout=10)
    os.killpg(role.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole foreground group
    role.stopped_cleanly()
    assert len(role.runs()) == 1
    assert "restarting" not in role.stderr()


def test_honchos_stop_reaches_the_whole_group_without_a_restart(wrapper) -> None:
    role = wrapper("serve")
    wait_until(lambda: role.runs(), timeout=10)
    os.killpg(role.proc.pid, signal.SIGTERM)  # honcho's terminate(): SIGTERM to the role's process group
    role.stopped_cleanly()
    assert len(role.runs()) == 1
    assert "restarting" not in role.stderr()
