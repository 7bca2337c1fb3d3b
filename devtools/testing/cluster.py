"""A throwaway PostgreSQL cluster of its own, for tests that stop and start the server (an outage must not take
the other tests' databases down with it). Same binaries and settings as `bin/pg`; migrated like production."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.testing.fixtures import ROOT, free_port

PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(*argv: str | Path) -> list[str]:
    # initdb refuses root; the cluster runs as the postgres user, as bin/pg runs it.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return [*prefix, *map(str, argv)]


class Cluster:
    def __init__(self, data: Path, port: int) -> None:
        self.data = data
        self.port = port
        self.url = f"postgis://postgres@127.0.0.1:{port}/fleet"
        self.dsn = f"host=127.0.0.1 port={port} user=postgres dbname=fleet"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(  # noqa: S603
            _as_postgres(PGBIN / "pg_ctl", "-D", self.data, "-l", self.data / "server.log", "-w", *args),
            check=True, cwd="/", stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "stop")

    def start(self) -> None:
        self.pg_ctl("start")


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """initdb + start + createdb + migrate; stopped and deleted afterwards, whatever happened."""
    base = Path(tempfile.mkdtemp(prefix="fleet-test-pg-", dir="/var/tmp"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    cluster = Cluster(data, free_port())
    subprocess.run(  # noqa: S603
        _as_postgres(PGBIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                     "--locale=C.UTF-8"),
        check=True, cwd="/", stdout=subprocess.DEVNULL,
    )  # fmt: skip
    conf = f"port = {cluster.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n"
    subprocess.run(_as_postgres("tee", "-a", data / "postgresql.auto.conf"), input=conf.encode(), check=True,  # noqa: S603
                   cwd="/", stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        cluster.start()
        subprocess.run(_as_postgres(PGBIN / "createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "fleet"),  # noqa: S603
                       check=True, cwd="/")  # fmt: skip
        env = {**os.environ, "DATABASE_URL": cluster.url, "LOG_LEVEL": "WARNING"}
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
        yield cluster
    finally:
        subprocess.run(  # noqa: S603
            _as_postgres(PGBIN / "pg_ctl", "-D", data, "-m", "immediate", "stop"), cwd="/",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
