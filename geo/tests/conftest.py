"""Fixtures of the geo tests: the Monaco road graph, API callers, fresh thresholds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from devtools.testing.auth import access_for, bearer, make_api_user
from fleet.auth import READ_FLEET
from slo.thresholds import thresholds_forget

MONACO = Path(__file__).resolve().parents[1] / "data" / "monaco.osm.pbf"


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    """Code here reads slo_targets rows (re-seeded after each flush): no cached value leaks between tests."""
    thresholds_forget()
    yield
    thresholds_forget()


@pytest.fixture
def monaco(db: Any) -> None:
    """The vendored Monaco extract, loaded into the road graph."""
    call_command("load_osm", str(MONACO), verbosity=0)


@pytest.fixture
def reader(db: Any) -> dict[str, str]:
    """Authorization header of a user holding read:fleet."""
    return bearer(access_for(make_api_user("geo-reader", READ_FLEET)))


@pytest.fixture
def api_client() -> Client:
    return Client()
