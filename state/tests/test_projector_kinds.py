"""The map "parsed kind → projector" exists twice by necessity — in the work-list trigger (state/sql/pending.sql,
which routes each new event at commit) and in Python (state/projectors/groups.py, which folds and replays) —
so this test ties the two: they must agree on every kind the parsers produce."""

from __future__ import annotations

import pytest
from django.db import connection

from events.parsers import KINDS
from state.projectors.groups import KINDS as PROJECTOR_KINDS

pytestmark = pytest.mark.django_db


def test_it_routes_every_parsed_kind_to_the_projector_python_folds_it_with():
    python = {kind: projector for projector, kinds in PROJECTOR_KINDS.items() for kind in kinds}
    with connection.cursor() as cursor:
        cursor.execute("SELECT k, state_projector_of(k) FROM unnest(%s::text[]) AS k", [list(KINDS)])
        sql = dict(cursor.fetchall())
    assert sql == {kind: python.get(kind) for kind in KINDS}
    assert set(python) <= set(KINDS), "groups.py folds a kind no parser produces"
