"""The ops overview page in the admin: roles, queues, ingest per source and minute, SLO status, open alerts, and the
push health of the accounts polled from Jimi's Open API (pushes flowing, or silent with the location poll covering).

Role health belongs to the project (fleet/health.py, above ops): the project's URL map hands this view a function
that reports it (`role_statuses`), so ops never imports fleet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from events.jimi.selectors import push_health
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
            ("geo: map matching (windows settle first)", "geo_match_pending", "occurred_at", "failed_at IS NULL"),
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


def ops_overview(request: HttpRequest, *, role_statuses: Callable[[], list[dict[str, Any]]]) -> HttpResponse:
    now = timezone.now()
    context = {
        **admin.site.each_context(request),
        "title": "Ops overview",
        "roles": role_statuses(),
        "queues": _queues(),
        "ingest": _ingest(now),
        "minutes": OVERVIEW_MINUTES,
        "slo": slo_status(now=now),
        "alerts": SloAlert.objects.filter(closed_at__isnull=True),
        "jimi": push_health(now=now, since=now - timedelta(minutes=OVERVIEW_MINUTES)),
    }
    return TemplateResponse(request, "admin/ops/overview.html", context)
