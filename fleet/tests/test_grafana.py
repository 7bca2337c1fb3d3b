"""Every Grafana dashboard query runs against the real schema (with Grafana's macros expanded)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.db import connection

DASHBOARDS = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "dashboards"

# Grafana's PostgreSQL macros, expanded as Grafana does for a one-hour range ending now.
MACROS = [
    (re.compile(r"\$__timeFilter\(([^)]+)\)"), r"\1 BETWEEN now() - interval '1 hour' AND now()"),
    (re.compile(r"\$__timeFrom\(\)"), "(now() - interval '1 hour')"),
    (re.compile(r"\$__timeTo\(\)"), "now()"),
    (re.compile(r"\$__timeGroupAlias\(([^,]+),[^)]+\)"), r"date_trunc('minute', \1) AS time"),
    (re.compile(r"\$__interval"), "'1 minute'"),
]


def _queries() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target["rawSql"]))
    return found


def _expand(sql: str) -> str:
    for pattern, replacement in MACROS:
        sql = pattern.sub(replacement, sql)
    assert "$__" not in sql, f"unexpanded Grafana macro in {sql}"
    return sql


def test_it_ships_the_slo_and_ingest_dashboards():
    names = {path.name for path in DASHBOARDS.glob("*.json")}
    assert {"slo.json", "ingest.json", "platform.json"} <= names


@pytest.mark.parametrize(("dashboard", "panel", "sql"), _queries(), ids=lambda v: v[:40] if isinstance(v, str) else v)
def test_it_runs_every_dashboard_query(db, dashboard, panel, sql):
    with connection.cursor() as cursor:
        cursor.execute(_expand(sql))
        cursor.fetchall()
