"""`manage.py health ROLE`: the container healthcheck of a role. Prints the JSON of GET /health/<role>.

Exit 0 when the role is healthy, 1 when not (the database is unreachable, migrations are pending for the
gateway, or the worker's / cron's own heartbeat is stale). The worker and cron containers run no HTTP server,
so their compose healthcheck is this command; it reads the same database facts the gateway's endpoint reads.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from fleet.health import role_status
from fleet.roles import ROLES


class Command(BaseCommand):
    help = "Print a role's health as JSON; exit 0 when healthy, 1 when not (container healthcheck)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("role", choices=ROLES)

    def handle(self, *args: Any, **opts: Any) -> None:
        role = opts["role"]
        try:
            ok, body = role_status(role)
        except DatabaseError as exc:
            # role_status catches an unreachable database; a query failing later (a table not migrated yet,
            # a connection dropped mid-check) must also end as "unhealthy", not as a traceback.
            ok, body = False, {"role": role, "ok": False, "database": "error", "error": str(exc).strip()[:200]}
        self.stdout.write(json.dumps(body, default=str, sort_keys=True))
        if not ok:
            raise CommandError(f"{role} is unhealthy", returncode=1)
