"""GET /health/<role>: the database answers **and** the role's own heartbeat is fresh. 200 or 503, JSON.

- gateway: the database answers and every migration is applied (this process is the one answering).
- worker: its heartbeat job ran recently and its LISTEN connection to the parse queue is open.
- cron: its periodic tick ran recently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from fleet.migrations_state import migrations_complete
from fleet.roles import ROLES, role_application_name

# The worker's procrastinate listener runs `LISTEN "procrastinate_queue_v1#<queue>"` and then idles on it; its
# connection carries the role's application name.
WORKER_APPLICATION_NAME = role_application_name("worker")


def _database_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now: datetime = cursor.fetchone()[0]
        return now


def _heartbeat_age_s(role: str, now: datetime) -> float | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT beat_at FROM fleet_role_heartbeats WHERE role = %s", [role])
        row = cursor.fetchone()
    return None if row is None else max(0.0, (now - row[0]).total_seconds())


def _worker_listeners() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s AND query LIKE 'LISTEN %%'",
            [WORKER_APPLICATION_NAME],
        )
        listeners: int = cursor.fetchone()[0]
        return listeners


def role_status(role: str) -> tuple[bool, dict[str, Any]]:
    body: dict[str, Any] = {"role": role, "checked_at": timezone.now().isoformat()}
    try:
        now = _database_now()
    except DatabaseError as exc:
        body.update(ok=False, database="unreachable", error=str(exc).strip()[:200])
        return False, body
    body["database"] = "ok"
    checks: dict[str, bool] = {}
    if role == "gateway":
        checks["migrations_complete"] = migrations_complete()
    else:
        age = _heartbeat_age_s(role, now)
        body["heartbeat_age_s"] = None if age is None else round(age, 1)
        body["heartbeat_max_age_s"] = settings.ROLE_HEARTBEAT_MAX_AGE_S
        checks["heartbeat_fresh"] = age is not None and age <= settings.ROLE_HEARTBEAT_MAX_AGE_S
    if role == "worker":
        listeners = _worker_listeners()
        body["listen_connections"] = listeners
        checks["listening"] = listeners > 0
    body["checks"] = checks
    body["ok"] = all(checks.values())
    return body["ok"], body


@never_cache
@require_GET
def role_health(request: HttpRequest, role: str) -> JsonResponse:
    if role not in ROLES:
        raise Http404("unknown role")
    ok, body = role_status(role)
    return JsonResponse(body, status=200 if ok else 503)
