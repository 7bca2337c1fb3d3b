"""Cursors for the projectors' hot statements.

Django's psycopg 3 cursors bind parameters on the client: every statement reaches the server as new text and is
planned from scratch. The projectors' statements touch every partition of state_position_history and plan in
~10 ms, several times their run time. A server-binding cursor on the same connection (same transaction) sends
the text once per session as a prepared statement, which is what bench_freshness's p95 needed.
"""

from __future__ import annotations

import psycopg
from django.db import connection


def bound_cursor() -> psycopg.Cursor:
    """A server-side-binding psycopg cursor on Django's connection; execute(..., prepare=True) to reuse plans."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)
