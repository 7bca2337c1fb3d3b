"""SQL functions of the geo layer, one file each, loaded by migrations (each has a test that calls it)."""

from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent


def load_sql(name: str) -> str:
    return (SQL_DIR / name).read_text()
