"""Backups and restores (fleet/backup.py, docs/operations.md "Backups").

The drill: a small but varied fleet history goes through the real parser and projectors, `manage.py backup` takes a
backup, and `manage.py restore` puts it into fresh databases — the whole dump, and the events-only slice with
everything derived rebuilt — each giving the original's state_hash. Then: a non-empty database is refused, every table
is either source, derived or transient, and retention keeps what its policy says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from devtools.testing.fixtures import ROOT
from devtools.testing.history import TRACKERS, fleet_history
from domain.models import Account
from fleet.backup import (
    DERIVED_TABLES,
    FORMAT,
    SOURCE_TABLES,
    TRANSIENT_TABLES,
    Stored,
    backups_health,
    backups_prune,
    last_daily,
    next_daily,
    pg_program,
    retention_keep,
    schema_tables,
)

# The months of the history (devtools/testing/history.py: March 2026): partitions as the daily task makes them.
MONTH_PARTITIONS = (("events_raw", "received_at", True), ("events_parsed", "occurred_at", False))


def conninfo(dbname: str) -> dict:
    s = connection.settings_dict
    return {"host": s["HOST"] or "127.0.0.1", "port": s["PORT"] or 5432, "user": s["USER"],
            "password": s["PASSWORD"] or None, "dbname": dbname, "autocommit": True}  # fmt: skip


def url_of(dbname: str) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgis://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{dbname}"


@contextmanager
def fresh_database() -> Iterator[str]:
    """An empty database on the test cluster, dropped afterwards; yields its name."""
    name = f"{connection.settings_dict['NAME']}_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**conninfo("postgres")) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**conninfo("postgres")) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def restore_into(dbname: str, backup: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`manage.py restore` as an operator runs it, against the fresh database."""
    env = {**os.environ, "DATABASE_URL": url_of(dbname), "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "manage.py", "restore", "--input", str(backup), "-v", "0", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def query(dbname: str, sql: str) -> list[tuple]:
    with psycopg.connect(**conninfo(dbname)) as conn:
        return conn.execute(sql).fetchall()


def state_hash_total() -> str:
    out = StringIO()
    call_command("state_hash", stdout=out)
    return out.getvalue().splitlines()[-1].split()[-1]


def partition_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relispartition AND relkind IN ('r', 'p')")
        return {r[0] for r in cursor.fetchall()}


@pytest.fixture
def march_partitions(db):
    """The history's month gets its partitions (as the daily task would have made them then); whatever partitions
    the test made are dropped afterwards, so the reused test database is left as it was."""
    before = partition_names()
    with connection.cursor() as cursor:
        for table, key, append_only in MONTH_PARTITIONS:
            cursor.execute("SELECT fleet_partition_month(%s, %s, '2026-03-01', %s)", [table, key, append_only])
    yield
    with connection.cursor() as cursor:
        for name in sorted(partition_names() - before):
            cursor.execute(f'DROP TABLE "{name}"')


def facts(dbname: str, ticket_id: int) -> dict:
    """What a user of the restored copy would look at."""
    return {
        "raw rows": query(dbname, "SELECT count(*) FROM events_raw")[0][0],
        "raw rows of March, in their partition": query(dbname, "SELECT count(*) FROM events_raw_y2026m03")[0][0],
        "SOS acknowledged by": query(dbname, "SELECT acknowledged_by FROM state_alarms WHERE code = '1'"),
        "the ticket's alarm": query(
            dbname,
            "SELECT a.code, a.normalised_name FROM ops_tickets t"
            f" JOIN state_alarms a ON a.parsed_id = t.alarm_parsed_id WHERE t.id = {ticket_id}",
        ),
        "driver assignments": query(dbname, "SELECT count(*) FROM domain_driver_assignments")[0][0],
        "devices": query(dbname, "SELECT imei FROM domain_devices ORDER BY imei"),
        "device history events": query(dbname, "SELECT count(*) FROM domain_deviceevent")[0][0],
        "ticket history events": query(dbname, "SELECT count(*) FROM ops_ticketevent")[0][0],
        "trips": query(dbname, "SELECT count(*) FROM state_trips")[0][0],
    }


@pytest.mark.django_db(transaction=True)
def test_it_restores_a_backup_fully_and_from_the_events_alone_to_the_same_state(account, march_partitions, tmp_path):
    history = fleet_history(account)
    original = state_hash_total()
    source = connection.settings_dict["NAME"]
    expected = facts(source, history.ticket_id)
    assert expected["SOS acknowledged by"] == [("history-clerk",)]
    assert expected["the ticket's alarm"] == [("2", "power_cut_off_alert")]
    assert expected["raw rows of March, in their partition"] > 0
    assert len(expected["devices"]) == len(TRACKERS)  # one of them provisioned by the parser

    older = write_backup(tmp_path, "last-week", datetime.now(UTC) - timedelta(days=7))
    out = StringIO()
    call_command(
        "backup", "--output", str(tmp_path / "nightly"), "--prune", "--keep-daily", "1", "--keep-weekly", "0",
        stdout=out,
    )  # fmt: skip
    backup = tmp_path / "nightly"
    assert f"backup: state_hash {original}" in out.getvalue()
    assert not older.exists()  # pruned: one day kept, and it is today's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nightly"]
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["format"] == FORMAT
    assert manifest["state_hash"]["total"] == original
    assert manifest["row_counts"]["events_raw"] == expected["raw rows"]
    assert "events_raw_y2026m03" in {p["name"] for p in manifest["partitions"]}
    assert manifest["migrations"]["events"]
    # The slice holds source rows only: no parsed event, no state.
    listing = subprocess.run(
        [pg_program("pg_restore"), "--list", str(backup / "events.dump")], capture_output=True, text=True, check=True
    ).stdout
    in_slice = set(re.findall(r"TABLE DATA public (\w+) ", listing))
    assert {"events_raw_y2026m03", "domain_devices", "ops_tickets", "slo_targets", "auth_user"} <= in_slice
    assert not in_slice & set(DERIVED_TABLES)
    assert not {t for t in in_slice if t.startswith(("events_parsed", "state_"))}

    seconds = {}
    for mode, args in (("full", ()), ("events-only", ("--events-only",))):
        with fresh_database() as restored:
            result = restore_into(restored, backup, *args)
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"restore: state_hash {original} matches the backup's" in result.stdout
            seconds[mode] = float(re.search(rf"restore: {mode} done in ([\d.]+) s", result.stdout).group(1))
            assert facts(restored, history.ticket_id) == expected, mode
            # New rows get new ids: the sequences went past the restored rows.
            for table, column in (("events_raw", "id"), ("domain_devices", "id"), ("ops_tickets", "id"),
                                  ("domain_deviceevent", "pgh_id")):  # fmt: skip
                ((fresh,),) = query(restored, f"SELECT nextval(pg_get_serial_sequence('{table}', '{column}'))")
                ((highest,),) = query(restored, f"SELECT max({column}) FROM {table}")
                assert fresh > highest, (mode, table)
            # The log's month partition kept its append-only guard.
            guard = query(restored, "SELECT 1 FROM pg_trigger WHERE tgname = 'events_raw_y2026m03_no_truncate'")
            assert guard == [(1,)], mode
    parsed = manifest["row_counts"]["events_parsed"]
    print(
        f"\nrestore-drill: full {seconds['full']:.1f} s, events-only {seconds['events-only']:.1f} s"
        f" for {expected['raw rows']} raw rows ({parsed} parsed events)"
    )


def test_it_refuses_to_restore_into_a_database_that_is_not_empty(db, tmp_path):
    Account.objects.create(name="Still here", jimi_account="x")
    (tmp_path / "manifest.json").write_text(
        json.dumps({"format": FORMAT, "taken_at": "2026-11-30T02:30:00+00:00", "database": {"name": "fleet"}})
    )
    with pytest.raises(CommandError, match=r"is not empty \(\d+ tables and other relations: .*\); restore only into"):
        call_command("restore", "--input", str(tmp_path), "--events-only")
    assert Account.objects.filter(name="Still here").exists()


def test_it_backs_up_only_into_a_new_or_empty_directory(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("someone's")
    with pytest.raises(CommandError, match="exists and is not an empty directory"):
        call_command("backup", "--output", str(tmp_path / "taken"), stdout=StringIO())
    assert (tmp_path / "taken" / "notes.txt").read_text() == "someone's"


@pytest.mark.django_db(transaction=True)
def test_it_leaves_nothing_behind_when_a_dump_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("fleet.backup.pg_program", lambda name: shutil.which("false"))  # a pg_dump that fails
    with pytest.raises(CommandError, match=r"false failed \(exit 1\)"):
        call_command("backup", "--output", str(tmp_path / "tonight"), stdout=StringIO())
    assert list(tmp_path.iterdir()) == []  # neither the backup nor its .partial directory


def test_it_refuses_what_is_not_a_backup(db, tmp_path):
    with pytest.raises(CommandError, match=r"holds no manifest\.json"):
        call_command("restore", "--input", str(tmp_path))


def test_it_places_every_table_as_source_derived_or_transient(db):
    groups = [set(SOURCE_TABLES), set(DERIVED_TABLES), set(TRANSIENT_TABLES)]
    placed: set[str] = set().union(*groups)
    assert sum(len(g) for g in groups) == len(placed), "a table is in two groups"
    tables = set(schema_tables())
    assert "events_raw" in tables
    assert not tables - placed, f"place these in fleet/backup.py: {sorted(tables - placed)}"
    assert not placed - tables, f"no such tables: {sorted(placed - tables)}"


# --- retention ----------------------------------------------------------------------------------------------------


def at(day: int, hour: int = 2, minute: int = 30) -> datetime:
    return datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=day - 1, hours=hour, minutes=minute)


def nightly(days: range) -> list[Stored]:
    return [Stored(Path(f"/b/{at(d):%Y-%m-%dT%H%M}"), at(d)) for d in days]


def test_it_keeps_the_newest_of_each_recent_day_and_week():
    backups = nightly(range(1, 31))  # November 2026: Sunday the 1st … Monday the 30th
    backups.append(Stored(Path("/b/2026-11-30-extra"), at(30, 14)))  # a second one on the last day
    keep = retention_keep(backups, keep_daily=7, keep_weekly=4)
    days = {p.name[:10] for p in keep}
    # The last 7 days with backups: the 24th to the 30th (the 30th by its newest backup only).
    assert Path("/b/2026-11-30-extra") in keep
    assert Path(f"/b/{at(30):%Y-%m-%dT%H%M}") not in keep
    # The last 4 ISO weeks, each by its newest backup: Sundays the 29th, 22nd and 15th, and the week of the 30th.
    assert days == {f"2026-11-{d:02d}" for d in (15, 22, 24, 25, 26, 27, 28, 29, 30)}
    assert len(keep) == 9
    assert retention_keep(backups, keep_daily=0, keep_weekly=0) == {Path("/b/2026-11-30-extra")}  # never none
    assert retention_keep([], keep_daily=7, keep_weekly=4) == set()


def write_backup(root: Path, name: str, taken_at: datetime) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"format": FORMAT, "taken_at": taken_at.isoformat()}))
    (path / "full.dump").write_bytes(b"dump")
    return path


def test_it_prunes_only_its_own_backups_beyond_the_policy(tmp_path):
    made = {d: write_backup(tmp_path, f"{at(d):%Y-%m-%dT%H%M%SZ}", at(d)) for d in range(1, 11)}
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (tmp_path / "README").write_text("not a backup")
    stale = tmp_path / "2026-10-01T023000Z.partial"
    stale.mkdir()
    (stale / "full.dump").write_bytes(b"half")
    old = time.time() - 2 * 86400
    os.utime(stale / "full.dump", (old, old))
    os.utime(stale, (old, old))
    running = tmp_path / "2026-11-11T023000Z.partial"  # a backup being written now
    running.mkdir()
    (running / "full.dump").write_bytes(b"half")
    lines: list[str] = []

    removed = backups_prune(tmp_path, keep_daily=3, keep_weekly=3, say=lines.append)

    # The 8th to the 10th (daily), and the newest of each of the last three ISO weeks: the 10th, Sunday the 8th and
    # Sunday the 1st.
    kept = {made[d] for d in (1, 8, 9, 10)}
    assert {p for p in tmp_path.iterdir() if p.name in {m.name for m in made.values()}} == kept
    assert set(removed) == {made[d] for d in range(2, 8)} | {stale}
    assert foreign.is_dir()
    assert (tmp_path / "README").is_file()
    assert running.is_dir()
    assert any(line.startswith("backup: keeping 4 backups") for line in lines)


def test_it_reports_health_by_the_newest_backup_or_one_being_written(tmp_path):
    now = at(10, 12)
    assert backups_health(tmp_path / "none yet", max_age=timedelta(hours=26), now=now)[0] is False
    write_backup(tmp_path, "old", now - timedelta(hours=30))
    ok, body = backups_health(tmp_path, max_age=timedelta(hours=26), now=now)
    assert (ok, body["newest_age_s"]) == (False, 30 * 3600)
    (tmp_path / "next.partial").mkdir()
    (tmp_path / "next.partial" / "full.dump").write_bytes(b"being written")
    assert backups_health(tmp_path, max_age=timedelta(hours=26), now=now)[0] is True
    write_backup(tmp_path, "new", now - timedelta(hours=2))
    assert backups_health(tmp_path, max_age=timedelta(hours=26), now=now)[1]["newest"] == str(tmp_path / "new")


def test_it_answers_the_healthcheck_with_its_exit_status(tmp_path):
    template = str(tmp_path / "%Y-%m-%dT%H%M%SZ")
    with pytest.raises(CommandError) as refused:
        call_command("backup", "--output", template, "--check", stdout=StringIO())
    assert refused.value.returncode == 1
    write_backup(tmp_path, "fresh", datetime.now(UTC) - timedelta(hours=1))
    out = StringIO()
    call_command("backup", "--output", template, "--check", stdout=out)
    assert json.loads(out.getvalue())["ok"] is True


def test_it_schedules_the_nightly_run_in_utc():
    now = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    assert next_daily("02:30", after=now) == datetime(2026, 11, 30, 2, 30, tzinfo=UTC)
    assert last_daily("02:30", now=now) == datetime(2026, 11, 29, 2, 30, tzinfo=UTC)
    later = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)
    assert next_daily("02:30", after=later) == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert last_daily("02:30", now=later) == later
