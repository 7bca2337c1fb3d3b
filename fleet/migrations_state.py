"""Whether every migration is applied: the probe the gateway and cron roles wait on before serving."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

_complete = False


def migrations_complete(alias: str = DEFAULT_DB_ALIAS) -> bool:
    """True when the migration plan is empty. Once true it stays true for this process (cheap health checks)."""
    global _complete
    if _complete:
        return True
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    _complete = not plan
    return _complete
