"""Backups and restores of the whole database (`manage.py backup`, `manage.py restore`; docs/operations.md, Backups).

A backup is a directory:

    manifest.json        what, when, from where, with which versions; row counts; partitions; the state_hash
    full.dump            pg_dump -Fc of the whole database
    events.dump          pg_dump -Fc --data-only of the source tables only: the log and what people and imports
                         wrote (SOURCE_TABLES); everything derived from them (DERIVED_TABLES) is rebuilt on restore
    ticket-alarms.json   the natural keys of the parsed events tickets name, to link them again after a re-parse

All three are read from one snapshot (pg_export_snapshot in a REPEATABLE READ transaction held open while both dumps
run), so the manifest's counts and state_hash describe exactly what the dumps hold. It is written under
`<dir>.partial` and renamed when complete: a directory without that suffix and with a manifest is a whole backup.

The PostgreSQL client programs are those of the installed PostgreSQL 15 (PGBIN, as bin/pg uses them). They connect
with Django's settings through the PG* environment variables, never a password on a command line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import django
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from events.models import RawEvent
from geo.matching.projector import match_fold
from geo.matching.worklist import match_drain
from ops.selectors import ticket_alarm_keys
from ops.services import ticket_alarms_renumber
from slo.thresholds import thresholds_forget
from state.selectors import state_digest_total, state_digests

FORMAT = "fleet-backup/1"
MANIFEST = "manifest.json"
FULL_DUMP = "full.dump"
SLICE_DUMP = "events.dump"
TICKET_ALARMS = "ticket-alarms.json"
PARTIAL = ".partial"

Say = Callable[[str], None]

# --- What is source, what is derived ------------------------------------------------------------------------------
# Every table of the schema is in exactly one of these three (fleet/tests/test_backup.py fails on a new table until it
# is placed). A partitioned table stands for all its partitions.

# The events-only slice: everything nothing else can recreate, which is everything the derived tables need.
SOURCE_TABLES: tuple[str, ...] = (
    # The log, and whose each raw row is (its source gives the parser's account). Poll cursors: where the Jimi polls
    # resume, consistent with the raw rows they wrote.
    "events_raw", "events_push_sources", "events_jimi_cursors",
    # The domain, and its change history (django-pghistory).
    "domain_accounts", "domain_cost_centres", "domain_assigned_cities", "domain_vehicles", "domain_devices",
    "domain_drivers", "domain_driver_assignments",
    "domain_accountevent", "domain_costcentreevent", "domain_assignedcityevent", "domain_vehicleevent",
    "domain_deviceevent", "domain_driverevent", "domain_driverassignmentevent", "pghistory_context",
    # SLO targets and every threshold that decides verdicts, trips and parking.
    "slo_targets",
    # People's work: tickets, comments, service and dispatch logs, cost rates, with their history. Not event-sourced
    # (unlike acknowledgements, odometer readings and driver assignments, which are ops events in events_raw).
    "ops_tickets", "ops_ticket_comments", "ops_service_logs", "ops_dispatch_logs", "ops_cost_rates",
    "ops_ticketevent", "ops_ticketcommentevent", "ops_servicelogevent", "ops_dispatchlogevent",
    # Imported or entered by people: the road graph (map matching and routing read it; its OSM file may be gone),
    # points of interest, and the geocoders' answers (third parties', slow to ask again: 1 request/s).
    "geo_ways", "geo_ways_vertices", "geo_graph_loads", "geo_pois", "geo_addresses",
    # Users, groups, permissions (and the content types they name), the admin's log, revoked logins.
    "auth_user", "auth_group", "auth_permission", "auth_group_permissions", "auth_user_groups",
    "auth_user_user_permissions", "django_content_type", "django_admin_log",
    "token_blacklist_outstandingtoken", "token_blacklist_blacklistedtoken", "fleet_revoked_token_families",
)  # fmt: skip

# Rebuilt on restore: events_parsed by re-parsing events_raw, state by replaying events_parsed, the map-matching
# tables by draining geo's work-list, which the re-parse fills.
DERIVED_TABLES: tuple[str, ...] = (
    "events_parsed",
    "state_position_history", "state_live_positions", "state_trips", "state_parking_events", "state_alarms",
    "state_heartbeats", "state_device_events", "state_obd_readings", "state_fuel_readings",
    "state_temperature_readings", "state_lbs_readings", "state_odometer_readings", "state_devices",
    "state_projector_checkpoints",
    "geo_segment_observations", "geo_segment_speed_band",
)  # fmt: skip

# Neither: work-lists and job queues (a restore refills what it needs), liveness, rate counters, sessions, and
# measurement history (SLO measurements and alerts, route request timings, push refusal counts, contract checks).
# They are in the full dump only.
TRANSIENT_TABLES: tuple[str, ...] = (
    "events_raw_pending", "state_projection_pending", "geo_match_pending",
    "procrastinate_jobs", "procrastinate_events", "procrastinate_workers", "procrastinate_periodic_defers",
    "fleet_role_heartbeats", "fleet_rate_limits", "django_session", "django_migrations",
    "slo_measurements", "slo_alerts", "geo_route_requests", "events_push_rejections", "events_contract_checks",
)  # fmt: skip

MONTHLY_PARTITION = re.compile(r"^(?P<parent>[a-z_]+)_y(?P<year>\d{4})m(?P<month>\d{2})$")


class BackupError(Exception):
    """A backup or restore that cannot go on, with what to do about it."""


# --- PostgreSQL client programs -------------------------------------------------------------------------------------


def pg_program(name: str) -> str:
    """pg_dump / pg_restore of the installed PostgreSQL 15: PGBIN (as bin/pg), its Debian directory, then PATH."""
    for directory in (os.environ.get("PGBIN"), "/usr/lib/postgresql/15/bin"):
        if directory and (Path(directory) / name).is_file():
            return str(Path(directory) / name)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install the PostgreSQL 15 client programs or set PGBIN")
    return found


# libpq's environment variable for each connection option Django may pass (DATABASES OPTIONS).
_LIBPQ_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
}


def pg_environment(*, options: str = "") -> dict[str, str]:
    """The environment that connects libpq programs where Django connects (the password stays off argv)."""
    s = connection.settings_dict
    env = dict(os.environ)
    for key, value in (
        ("PGHOST", s["HOST"]),
        ("PGPORT", str(s["PORT"] or "")),
        ("PGUSER", s["USER"]),
        ("PGPASSWORD", s["PASSWORD"]),
        ("PGDATABASE", s["NAME"]),
    ):
        if value:
            env[key] = value
    for option, variable in _LIBPQ_ENV.items():
        if s["OPTIONS"].get(option) not in (None, ""):
            env[variable] = str(s["OPTIONS"][option])
    if options:
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {options}".strip()
    return env


def _run(argv: list[str], *, env: dict[str, str], say: Say, what: str, total: int, item: re.Pattern[str]) -> None:
    """Run a pg_dump / pg_restore with --verbose and report its progress (items matching `item`) at most once a
    second; on failure raise with the program's last words."""
    started = time.monotonic()
    shown, done = started, 0
    tail: list[str] = []
    with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as proc:  # noqa: S603
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                tail = [*tail[-19:], line.rstrip()]
                if found := item.search(line):
                    done += 1
                    if time.monotonic() - shown >= 1.0:
                        shown = time.monotonic()
                        say(f"  {what}: {done}/{total} tables, {found.group(1)}")
        finally:
            if proc.poll() is None:
                proc.kill()
        code = proc.wait()
    if code != 0:
        errors = [line for line in tail if "error" in line.lower()] or tail[-5:]
        raise BackupError(f"{Path(argv[0]).name} failed (exit {code}): " + " | ".join(errors))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


# --- The database's facts -------------------------------------------------------------------------------------------


def schema_tables() -> list[str]:
    """Every table of the public schema that is not a partition or an extension's (spatial_ref_sys)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            "                   AND d.objid = c.oid AND d.deptype = 'e')"
            " ORDER BY 1"
        )
        return [r[0] for r in cursor.fetchall()]


def partitions() -> list[dict[str, Any]]:
    """The attached partitions of every partitioned table: name, parent, bounds, and whether it has the append-only
    TRUNCATE guard (events/sql/partitions.sql adds one to each partition of an append-only table)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.relname, c.relname, pg_get_expr(c.relpartbound, c.oid),"
            "       EXISTS (SELECT 1 FROM pg_trigger t"
            "                WHERE t.tgrelid = c.oid AND t.tgname = c.relname || '_no_truncate')"
            "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
            "  JOIN pg_namespace n ON n.oid = p.relnamespace"
            " WHERE n.nspname = 'public' AND p.relkind = 'p' ORDER BY 1, 2"
        )
        return [{"parent": r[0], "name": r[1], "bound": r[2], "guarded": r[3]} for r in cursor.fetchall()]


def row_counts(tables: Sequence[str]) -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


def applied_migrations() -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
        applied: dict[str, list[str]] = {}
        for app, name in cursor.fetchall():
            applied.setdefault(app, []).append(name)
        return applied


def versions() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
        cursor.execute("SELECT extname, extversion FROM pg_extension ORDER BY 1")
        extensions = dict(cursor.fetchall())
        cursor.execute("SELECT parser_version, count(*) FROM events_raw GROUP BY 1 ORDER BY 1")
        parsers = {version or "(not parsed)": n for version, n in cursor.fetchall()}
    pg_dump = subprocess.run([pg_program("pg_dump"), "--version"], capture_output=True, text=True, check=True)  # noqa: S603
    return {
        "postgresql": server,
        "extensions": extensions,
        "pg_dump": pg_dump.stdout.strip(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "parser_versions": parsers,  # of the raw rows, as last parsed: a re-parse uses the current parsers
    }


def state_hash() -> dict[str, Any]:
    digests = state_digests()
    return {"total": state_digest_total(digests), "tables": {t: [rows, d] for t, (rows, d) in digests.items()}}


# --- Backup ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupOutcome:
    path: Path
    manifest: dict[str, Any]
    seconds: float


def _slice_tables(parts: list[dict[str, Any]]) -> list[str]:
    """The slice's tables as pg_dump must name them: a partitioned table's rows live in its partitions."""
    partitioned = {p["parent"] for p in parts}
    names = []
    for table in SOURCE_TABLES:
        if table in partitioned:
            names += [p["name"] for p in parts if p["parent"] == table]
        names.append(table)  # for a partitioned table: its sequence's value
    return names


@contextmanager
def _snapshot() -> Iterator[str]:
    """A REPEATABLE READ, read-only transaction on Django's connection, exported for pg_dump --snapshot."""
    connection.ensure_connection()  # connection set-up statements run before the transaction, not in it
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        yield cursor.fetchone()[0]


def backup(output: Path, *, say: Say) -> BackupOutcome:
    """Write a backup into `output` (which must not exist, or be empty). A failed one leaves nothing behind."""
    if output.name.endswith(PARTIAL):
        raise BackupError(f"{output}: a backup directory may not end in {PARTIAL}")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BackupError(f"{output} exists and is not an empty directory: give a new one")
    partial = output.with_name(output.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        return _backup(output, partial, say=say)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _backup(output: Path, partial: Path, *, say: Say) -> BackupOutcome:
    started = time.monotonic()
    taken_at = datetime.now(UTC)
    s = connection.settings_dict
    say(f"backup: database {s['NAME']} on {s['HOST'] or 'local socket'}:{s['PORT'] or 5432} → {output}")
    env = pg_environment()
    pg_dump = pg_program("pg_dump")
    with _snapshot() as snapshot:
        tables = schema_tables()
        parts = partitions()
        counts = row_counts(tables)
        say(f"backup: snapshot {snapshot}: {len(tables)} tables, {sum(counts.values()):,} rows")
        digest = state_hash()
        say(f"backup: state_hash {digest['total']}")
        links = [[i, key, at.isoformat()] for i, key, at in ticket_alarm_keys()]
        (partial / TICKET_ALARMS).write_text(json.dumps(links))
        item = re.compile(r'dumping contents of table "([^"]+)"')
        t = time.monotonic()
        _run(
            [pg_dump, "--format=custom", "--no-password", "--verbose", f"--snapshot={snapshot}",
             f"--file={partial / FULL_DUMP}"],
            env=env, say=say, what="full dump", total=len(tables) + len(parts), item=item,
        )  # fmt: skip
        full_bytes = (partial / FULL_DUMP).stat().st_size
        say(f"backup: full dump {_megabytes(full_bytes)} in {time.monotonic() - t:.1f} s")
        slice_tables = _slice_tables(parts)
        t = time.monotonic()
        _run(
            [pg_dump, "--format=custom", "--no-password", "--verbose", f"--snapshot={snapshot}", "--data-only",
             "--load-via-partition-root", f"--file={partial / SLICE_DUMP}",
             *[f"--table=public.{name}" for name in slice_tables]],
            env=env, say=say, what="events-only slice", total=len(slice_tables), item=item,
        )  # fmt: skip
        slice_bytes = (partial / SLICE_DUMP).stat().st_size
        slice_rows = sum(counts.get(table, 0) for table in SOURCE_TABLES)
        say(
            f"backup: events-only slice {_megabytes(slice_bytes)} ({slice_rows:,} rows) in {time.monotonic() - t:.1f} s"
        )
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "taken_at": taken_at.isoformat(),
            "database": {"name": s["NAME"], "host": s["HOST"], "port": str(s["PORT"] or ""), "user": s["USER"]},
            "versions": versions(),
            "migrations": applied_migrations(),
            "files": {
                name: {"bytes": (partial / name).stat().st_size, "sha256": _sha256(partial / name)}
                for name in (FULL_DUMP, SLICE_DUMP, TICKET_ALARMS)
            },
            "source_tables": list(SOURCE_TABLES),
            "derived_tables": list(DERIVED_TABLES),
            "row_counts": counts,
            "partitions": parts,
            "state_hash": digest,
        }
    seconds = time.monotonic() - started
    manifest["seconds"] = round(seconds, 3)
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if output.exists():
        output.rmdir()  # empty, checked above
    partial.rename(output)
    say(f"backup: done in {seconds:.1f} s: {output}")
    return BackupOutcome(output, manifest, seconds)


# --- Retention ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    path: Path
    taken_at: datetime


def manifest_read(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise BackupError(f"{path} holds no {MANIFEST}: not a backup (or one that did not finish)") from exc
    except ValueError as exc:
        raise BackupError(f"{path / MANIFEST} is not JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path / MANIFEST}: format {manifest.get('format')!r}, not {FORMAT!r}")
    return manifest


def stored_backups(root: Path) -> list[Stored]:
    """The whole backups directly under `root`, newest first (anything else there is not ours and left alone)."""
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not path.is_dir() or path.name.endswith(PARTIAL):
            continue
        try:
            found.append(Stored(path, datetime.fromisoformat(manifest_read(path)["taken_at"])))
        except (BackupError, KeyError, ValueError):
            continue
    return sorted(found, key=lambda b: (b.taken_at, b.path.name), reverse=True)


def retention_keep(backups: Sequence[Stored], *, keep_daily: int, keep_weekly: int) -> set[Path]:
    """Which backups a daily / weekly policy keeps: the newest of each of the last `keep_daily` UTC days that have a
    backup, the newest of each of the last `keep_weekly` ISO weeks that have one, and the newest of all."""
    newest = sorted(backups, key=lambda b: (b.taken_at, b.path.name), reverse=True)
    keep = {newest[0].path} if newest else set()
    periods: tuple[tuple[Callable[[datetime], object], int], ...] = (
        (lambda t: t.date(), keep_daily),
        (lambda t: t.isocalendar()[:2], keep_weekly),
    )
    for period, count in periods:
        seen: set[object] = set()
        for b in newest:
            bucket = period(b.taken_at.astimezone(UTC))
            if bucket in seen:
                continue
            if len(seen) >= count:
                break
            seen.add(bucket)
            keep.add(b.path)
    return keep


def backups_prune(root: Path, *, keep_daily: int, keep_weekly: int, say: Say) -> list[Path]:
    """Delete the backups under `root` the policy does not keep, and unfinished ones a day old; returns them."""
    backups = stored_backups(root)
    keep = retention_keep(backups, keep_daily=keep_daily, keep_weekly=keep_weekly)
    removed = [b.path for b in backups if b.path not in keep]
    stale = time.time() - timedelta(days=1).total_seconds()
    removed += [p for p in root.glob(f"*{PARTIAL}") if p.is_dir() and _newest_mtime(p) < stale]
    for path in removed:
        shutil.rmtree(path)
        say(f"backup: pruned {path}")
    say(f"backup: keeping {len(keep)} backups in {root} ({keep_daily} daily, {keep_weekly} weekly)")
    return removed


def _newest_mtime(path: Path) -> float:
    return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.iterdir())])


def backups_health(root: Path, *, max_age: timedelta, now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Healthy when the newest whole backup under `root` is younger than `max_age`, or one is being written (its
    partial directory written to within the last ten minutes)."""
    now = now or datetime.now(UTC)
    backups = stored_backups(root)
    newest = backups[0] if backups else None
    writing = [p for p in root.glob(f"*{PARTIAL}") if p.is_dir() and time.time() - _newest_mtime(p) < 600]
    age = (now - newest.taken_at).total_seconds() if newest else None
    ok = (age is not None and age <= max_age.total_seconds()) or bool(writing)
    return ok, {
        "ok": ok,
        "backups": len(backups),
        "newest": str(newest.path) if newest else None,
        "newest_age_s": round(age) if age is not None else None,
        "max_age_s": round(max_age.total_seconds()),
        "writing": [str(p) for p in writing],
    }


def next_daily(at: str, *, after: datetime) -> datetime:
    """The first HH:MM (UTC) strictly after `after`."""
    hour, minute = (int(part) for part in at.split(":"))
    moment = after.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return moment if moment > after else moment + timedelta(days=1)


def last_daily(at: str, *, now: datetime) -> datetime:
    """The latest HH:MM (UTC) at or before `now`: the run a backup taken since then counts as."""
    return next_daily(at, after=now) - timedelta(days=1)


# --- Restore --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreOutcome:
    seconds: float
    state_hash: dict[str, Any]
    matches: bool
    differing: list[str]


def database_objects() -> list[str]:
    """Relations a restore would collide with: anything outside the system schemas that no extension owns."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
            "   AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            "   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
            "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            "                   AND d.objid = c.oid AND d.deptype = 'e')"
            " ORDER BY 1"
        )
        return [r[0] for r in cursor.fetchall()]


def _refuse_unless_empty() -> None:
    objects = database_objects()
    if objects:
        shown = ", ".join(objects[:5]) + (f" and {len(objects) - 5} more" if len(objects) > 5 else "")
        raise BackupError(
            f"database {connection.settings_dict['NAME']} is not empty ({len(objects)} tables and other relations:"
            f" {shown}); restore only into an empty database — create one (createdb NAME) and point DATABASE_URL at it"
        )


def _verify_files(path: Path, manifest: dict[str, Any], names: Sequence[str], say: Say) -> None:
    for name in names:
        expected = manifest["files"][name]["sha256"]
        if not (path / name).is_file():
            raise BackupError(f"{path / name} is missing")
        if _sha256(path / name) != expected:
            raise BackupError(f"{path / name} is damaged: its sha256 is not the manifest's")
    say(f"restore: {', '.join(names)} match the manifest's checksums")


def restore(path: Path, *, events_only: bool, say: Say, verbosity: int = 1) -> RestoreOutcome:
    manifest = manifest_read(path)
    started = time.monotonic()
    _refuse_unless_empty()
    what = "events-only" if events_only else "full"
    say(
        f"restore: {what} from {path} (taken {manifest['taken_at']} of {manifest['database']['name']})"
        f" into {connection.settings_dict['NAME']}"
    )
    if events_only:
        _verify_files(path, manifest, (SLICE_DUMP, TICKET_ALARMS), say)
        _restore_slice(path, manifest, say=say, verbosity=verbosity)
    else:
        _verify_files(path, manifest, (FULL_DUMP,), say)
        _pg_restore(path / FULL_DUMP, ["--no-owner", "--no-privileges"], total=_table_count(manifest), say=say)
        connection.close()  # the schema changed under this session's caches
    pending = _pending_migrations()
    if pending:
        say(f"restore: {len(pending)} migrations of this code are not applied yet (the worker applies them on start)")
    outcome = _compare(manifest, started=started, say=say, skip=bool(pending))
    say(f"restore: {what} done in {outcome.seconds:.1f} s")
    return outcome


def _table_count(manifest: dict[str, Any]) -> int:
    return len(manifest["row_counts"]) + len(manifest["partitions"])


def _pg_restore(dump: Path, args: list[str], *, total: int, say: Say, options: str = "") -> None:
    t = time.monotonic()
    _run(
        [pg_program("pg_restore"), "--no-password", "--verbose", "--exit-on-error", "--single-transaction",
         f"--dbname={connection.settings_dict['NAME']}", *args, str(dump)],
        env=pg_environment(options=options), say=say, what=f"loading {dump.name}", total=total,
        item=re.compile(r'processing data for table "([^"]+)"'),
    )  # fmt: skip
    say(f"restore: {dump.name} loaded in {time.monotonic() - t:.1f} s")


def _pending_migrations() -> list[tuple[str, str]]:
    loader = MigrationLoader(connection)
    return [node for node in loader.graph.leaf_nodes() if node not in loader.applied_migrations]


def _migrate_to_backup(manifest: dict[str, Any], say: Say) -> None:
    """Bring the empty database to the schema the slice was dumped from: the backup's migrations, no more. No
    post-migrate signal: what those seed comes from the slice, and the final migrate (after the load) adds the rest."""
    connection.prepare_database()  # PostGIS, as the migrate command does first
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    backup_nodes = {(app, name) for app, names in manifest["migrations"].items() for name in names}
    unknown = backup_nodes - set(graph.nodes)
    if unknown:
        raise BackupError(
            f"the backup's schema is newer than this code ({len(unknown)} migrations it does not know, e.g."
            f" {sorted(unknown)[0]}): restore it with the code that took it"
        )
    parents = {parent for node in backup_nodes for parent in graph.node_map[node].parents}
    targets = sorted(backup_nodes - parents)
    newer = len(set(graph.nodes) - backup_nodes)
    say(
        "restore: migrating to the backup's schema"
        + (f" ({newer} migrations of this code are newer: applied after the load)" if newer else "")
    )
    executor.migrate(targets, plan=executor.migration_plan(targets))


def _partitions_create(parts: list[dict[str, Any]], say: Say) -> None:
    """The backup's partitions, before any row loads (a month without one would land in DEFAULT, and that month's
    partition could then never be created): monthly ones as the project creates them, with the append-only guard
    where the original had it; anything else with the original's bounds."""
    made = 0
    with connection.cursor() as cursor:
        for p in parts:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [p["name"]])
            if cursor.fetchone()[0]:
                continue
            monthly = MONTHLY_PARTITION.match(p["name"])
            if monthly and monthly["parent"] == p["parent"]:
                cursor.execute("SELECT pg_get_partkeydef(%s::regclass)", [p["parent"]])
                key = re.sub(r"^RANGE \((\w+)\)$", r"\1", cursor.fetchone()[0])
                month = date(int(monthly["year"]), int(monthly["month"]), 1)
                cursor.execute("SELECT fleet_partition_month(%s, %s, %s, %s)", [p["parent"], key, month, p["guarded"]])
            else:
                cursor.execute(f'CREATE TABLE "{p["name"]}" PARTITION OF "{p["parent"]}" {p["bound"]}')
            made += 1
    say(f"restore: {made} partitions created ({len(parts)} in the backup)")


def _sequences_reset(tables: Sequence[str]) -> None:
    """Every id sequence of the loaded tables at least at the largest id loaded. The slice carries each sequence's
    value and pg_restore sets it; never lower one: an id a deleted row had, reused, would inherit that row's history."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attname, pg_get_serial_sequence(quote_ident(c.relname), a.attname)"
            "  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s) AND a.attnum > 0"
            "   AND NOT a.attisdropped AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL",
            [list(tables)],
        )
        for table, column, sequence in cursor.fetchall():
            cursor.execute(
                f'SELECT setval(%s, m) FROM (SELECT max("{column}") AS m FROM "{table}") AS loaded'
                f" WHERE m > (SELECT last_value FROM {sequence})",
                [sequence],
            )


def _restore_slice(path: Path, manifest: dict[str, Any], *, say: Say, verbosity: int) -> None:
    _migrate_to_backup(manifest, say)
    # The migrations seeded some source tables (content types, permissions, groups, SLO targets): the slice's rows
    # replace them. The log is empty and append-only, and is left out.
    seeded = [table for table in SOURCE_TABLES if table != RawEvent._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(f'"{table}"' for table in seeded) + " CASCADE")
    _partitions_create(manifest["partitions"], say)
    # Triggers off while loading (a superuser's session_replication_role): no pghistory events for rows that already
    # have theirs, no parse wake-ups (the re-parse below takes every row), foreign keys as they were.
    _pg_restore(
        path / SLICE_DUMP, ["--data-only"], total=len(_slice_tables(manifest["partitions"])), say=say,
        options="-c session_replication_role=replica",
    )  # fmt: skip
    _sequences_reset(SOURCE_TABLES)
    ContentType.objects.clear_cache()
    thresholds_forget()
    call_command("migrate", verbosity=0, interactive=False)  # anything newer than the backup; post-migrate seeds
    t = time.monotonic()
    say("restore: re-parsing the log with this code's parsers")
    call_command("reparse", verbosity=verbosity, stdout=_Prefixed(say), stderr=_progress_bars(verbosity))
    keys = [(i, key, datetime.fromisoformat(at)) for i, key, at in json.loads((path / TICKET_ALARMS).read_text())]
    relinked, unlinked = ticket_alarms_renumber(keys=keys)
    say(f"restore: re-parsed in {time.monotonic() - t:.1f} s; tickets linked to their alarm again: {relinked}"
        + (f", {unlinked} whose alarm event is gone" if unlinked else ""))  # fmt: skip
    t = time.monotonic()
    call_command("replay", verbosity=verbosity, stdout=_Prefixed(say), stderr=_progress_bars(verbosity))
    matched = match_drain(match_fold, batch_size=1000, woken=False, budget_s=float("inf"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM geo_match_pending WHERE failed_at IS NULL")
        waiting = cursor.fetchone()[0]
    say(
        f"restore: replayed in {time.monotonic() - t:.1f} s; map matching: {matched} fixes"
        + (f" ({waiting} of windows still open wait for the worker)" if waiting else "")
    )


def _progress_bars(verbosity: int) -> Any:
    """Where reparse's and replay's progress bars go: stderr, unless quiet."""
    return sys.stderr if verbosity else io.StringIO()


class _Prefixed:
    """A command's stdout as restore lines."""

    def __init__(self, say: Say) -> None:
        self.say = say

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                self.say(f"restore: {line.strip()}")

    def flush(self) -> None:
        pass


def _compare(manifest: dict[str, Any], *, started: float, say: Say, skip: bool) -> RestoreOutcome:
    if skip:
        say("restore: state_hash not compared: migrate first, then run manage.py state_hash")
        return RestoreOutcome(time.monotonic() - started, {}, False, [])
    digest = state_hash()
    seconds = time.monotonic() - started
    expected = manifest["state_hash"]
    differing = [t for t, value in digest["tables"].items() if expected["tables"].get(t) != value]
    matches = digest["total"] == expected["total"]
    verdict = "matches the backup's" if matches else f"differs from the backup's {expected['total']}"
    say(f"restore: state_hash {digest['total']} {verdict}")
    for table in differing:
        was, now = expected["tables"].get(table, [0, ""]), digest["tables"][table]
        say(f"restore:   {table}: {now[0]:,} rows (the backup's: {was[0]:,})")
    waiting = {t: manifest["row_counts"].get(t, 0) for t in ("events_raw_pending", "state_projection_pending")}
    if not matches and any(waiting.values()):
        say(
            f"restore: the backup was taken with {waiting['events_raw_pending']:,} raw rows not yet parsed and"
            f" {waiting['state_projection_pending']:,} parsed events not yet projected; a rebuild includes them"
        )
    return RestoreOutcome(seconds, digest, matches, differing)
