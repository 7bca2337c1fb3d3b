"""The ops overview page in the admin: roles, queues, ingest per source and minute, SLO status, open alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from fleet.health import role_status
from fleet.roles import ROLES
from slo.models import SloAlert
from slo.selectors import slo_status

OVERVIEW_MINUTES = 60


def _queues() -> list[dict[str, Any]]:
    """Work waiting per queue; the projectors' parked events (failed alone, again and again) apart."""
    queues = []
    with connection.cursor() as cursor:
        for name, table, column, where in (
            ("parse", "events_raw_pending", "received_at", "true"),
            ("project", "state_projection_pending", "occurred_at", "failed_at IS NULL"),
            ("project: parked events (admin: projection work-list)", "state_projection_pending", "occurred_at",
             "failed_at IS NOT NULL"),
        ):  # fmt: skip
            if table not in connection.introspection.table_names(cursor):
                continue
            cursor.execute(f"SELECT count(*), min({column}) FROM {table} WHERE {where}")
            depth, oldest = cursor.fetchone()
            queues.append({"name": name, "depth": depth, "oldest": oldest})
    return queues


def _ingest(now: Any) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT source, kind, sum(accepted), sum(refused), sum(parse_failures), max(minute)"
            "  FROM events_ingest_health(%s, %s) GROUP BY source, kind ORDER BY source, kind",
            [now - timedelta(minutes=OVERVIEW_MINUTES), now],
        )
        columns = ["source", "kind", "accepted", "refused", "parse_failures", "last_minute"]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def ops_overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {
        **admin.site.each_context(request),
        "title": "Ops overview",
        "roles": [role_status(role)[1] for role in ROLES],
        "queues": _queues(),
        "ingest": _ingest(now),
        "minutes": OVERVIEW_MINUTES,
        "slo": slo_status(now=now),
        "alerts": SloAlert.objects.filter(closed_at__isnull=True),
    }
    return TemplateResponse(request, "admin/fleet/ops_overview.html", context)
