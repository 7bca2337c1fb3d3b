"""Each state table has exactly one writer (an invariant: docs/architecture.md): the source is scanned for writes.

SQL writes (INSERT INTO / UPDATE / DELETE FROM / TRUNCATE / COPY naming a state_* table) and ORM writes on the
state models (`Model.objects.create/update/delete/...`) are allowed only in the module that owns the table.
Migrations and tests are not scanned: migrations create the tables, tests set up and break things on purpose.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
APPS = ("fleet", "domain", "slo", "events", "state", "geo", "ops")

READINGS = (
    "state_alarms",
    "state_heartbeats",
    "state_device_events",
    "state_obd_readings",
    "state_fuel_readings",
    "state_temperature_readings",
    "state_lbs_readings",
    "state_odometer_readings",
)
OWNERS: dict[str, set[str]] = {
    "state_projection_pending": {"state/projectors/runner.py", "state/sql/pending.sql"},
    "state_projector_checkpoints": {"state/projectors/runner.py"},
    "state_position_history": {"state/projectors/history.py"},
    "state_live_positions": {"state/projectors/live.py"},
    "state_trips": {"state/projectors/trips.py"},
    "state_parking_events": {"state/projectors/trips.py"},
    "state_devices": {"state/projectors/devices.py"},
    **{table: {"state/projectors/readings.py"} for table in READINGS},
}

SQL_WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|COPY)\s+(?:ONLY\s+)?\"?(state_[a-z_]+)",
    re.IGNORECASE,
)
# A write whose table name is built at run time: allowed only in owner modules, which say which tables they mean.
DYNAMIC_SQL_WRITE = re.compile(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE)\s*\"?\s*[{+]", re.IGNORECASE)
ORM_WRITES = {"create", "bulk_create", "get_or_create", "update_or_create", "update", "delete", "bulk_update", "raw"}


def scanned_files() -> list[Path]:
    files = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if path.suffix not in (".py", ".sql") or "/migrations/" in rel or "/tests/" in rel:
                continue
            if rel.startswith("devtools/testing/"):
                continue
            files.append(path)
    return files


def state_models() -> dict[str, str]:
    """Model class name → table, for every model of the state app."""
    return {model.__name__: model._meta.db_table for model in apps.get_app_config("state").get_models()}


def sql_writes(text: str) -> set[str]:
    return {m.group(1).lower() for m in SQL_WRITE.finditer(text)}


def _manager_model(node: ast.AST, models: dict[str, str]) -> str | None:
    """The state model a queryset chain starts from (`Model.objects.filter(...)...`), if any."""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute) and node.attr == "objects" and isinstance(node.value, ast.Name):
            return models.get(node.value.id)
        node = node.func if isinstance(node, ast.Call) else node.value
    return None


def orm_writes(source: str, models: dict[str, str]) -> set[str]:
    """Tables written through `<StateModel>.objects…<write>(…)` or `<StateModel>(...).save()`."""
    tables = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        target = node.func.value
        if node.func.attr in ORM_WRITES and (table := _manager_model(target, models)):
            tables.add(table)
        called = target.func if isinstance(target, ast.Call) else None
        if node.func.attr == "save" and isinstance(called, ast.Name) and called.id in models:
            tables.add(models[called.id])
    return tables


def writes_in(path: Path, models: dict[str, str]) -> set[str]:
    text = path.read_text()
    found = sql_writes(text)
    if path.suffix == ".py":
        found |= orm_writes(text, models)
    return found


def test_it_knows_every_state_table() -> None:
    assert set(state_models().values()) == set(OWNERS)


def test_it_finds_the_owners_writes() -> None:
    """The scan works: every owner's literal writes are found where they are."""
    models = state_models()
    found: dict[str, set[str]] = {}
    for path in scanned_files():
        for table in writes_in(path, models):
            found.setdefault(table, set()).add(path.relative_to(ROOT).as_posix())
    literal = set(OWNERS) - set(READINGS)  # the reading tables are written through one generic statement
    assert literal <= set(found), f"no write found for {sorted(literal - set(found))}"

    from state.projectors.readings import TABLES

    assert {spec.table for spec in TABLES} == set(READINGS)


def test_it_finds_no_writer_but_the_owner() -> None:
    models = state_models()
    strangers = []
    for path in scanned_files():
        rel = path.relative_to(ROOT).as_posix()
        for table in writes_in(path, models):
            if rel not in OWNERS.get(table, set()):
                strangers.append(f"{rel} writes {table}")
    assert not strangers, "single writer broken:\n" + "\n".join(strangers)


def test_it_allows_dynamic_table_names_only_in_owner_modules() -> None:
    owners = {module for modules in OWNERS.values() for module in modules}
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in scanned_files()
        if path.relative_to(ROOT).as_posix().startswith("state/")
        and path.relative_to(ROOT).as_posix() not in owners
        and DYNAMIC_SQL_WRITE.search(path.read_text())
    ]
    assert not offenders


@pytest.mark.parametrize(
    "snippet",
    [
        'cursor.execute("UPDATE state_live_positions SET speed_kmh = 0")',
        "cursor.execute('DELETE FROM state_trips WHERE id = %s', [1])",
        'cursor.execute("TRUNCATE TABLE state_alarms")',
        "LivePosition.objects.filter(device_id=1).update(speed_kmh=0)",
        "Trip.objects.create(device_id=1)",
        "ParkingEvent(device_id=1).save()",
    ],
)
def test_it_catches_a_stray_write(snippet: str) -> None:
    assert writes_in_text(snippet, state_models())


def writes_in_text(text: str, models: dict[str, str]) -> set[str]:
    return sql_writes(text) | orm_writes(text, models)
