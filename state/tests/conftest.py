"""Fixtures of the state tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from slo.thresholds import thresholds_forget


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    """Every projector reads slo_targets (rows re-seeded after each flush by slo's post_migrate hook): never let
    one test's cached thresholds leak into the next."""
    thresholds_forget()
    yield
    thresholds_forget()
