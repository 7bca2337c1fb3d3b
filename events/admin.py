"""Admin for the log: browse raw rows (never count the whole table), see parse failures, re-parse, sources."""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import parse_qs

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html
from procrastinate.types import JSONDict

from events.models import ParsedEvent, PushRejection, PushSource, RawEvent
from events.reparse import raw_rows_reparse
from events.tasks import reparse_rows

# Past this many rows a filtered changelist says "10,000+" instead of counting on.
COUNT_CAP = 10_000
# "Re-parse selected": a selection of at most this many rows is re-parsed in the request (the clerk sees the
# outcome at once; a few rows take milliseconds). A larger one is queued as jobs of REPARSE_JOB_ROWS rows for the
# worker (parse queue), so no request parses thousands of rows. At most COUNT_CAP rows are taken per action.
REPARSE_INLINE_MAX = 20
REPARSE_JOB_ROWS = 500


class EstimatedCountPaginator(Paginator[Model]):
    """Counts from table statistics when unfiltered, and caps filtered counts: the log has millions of rows."""

    @cached_property
    def count(self) -> int:
        rows = cast("QuerySet[Model]", self.object_list)  # the admin paginates its changelist's queryset
        if not rows.query.where:
            return self._estimate(rows.model._meta.db_table)
        return rows[: COUNT_CAP + 1].count()

    @staticmethod
    def _estimate(table: str) -> int:
        with connection.cursor() as cursor:
            # A partitioned parent has no rows of its own; sum its partitions' estimates.
            cursor.execute(
                "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                [table],
            )
            return int(cursor.fetchone()[0])


def _pretty_body(body: bytes, content_type: str) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"(not UTF-8, {len(body)} bytes)\n{body[:4096].hex(' ')}"
    if "x-www-form-urlencoded" in content_type:
        fields = parse_qs(text, keep_blank_values=True)
        shown = {}
        for key, values in fields.items():
            value = "…" if key == "token" else values[0]
            try:
                shown[key] = json.loads(value)
            except ValueError:
                shown[key] = value
        return json.dumps(shown, indent=2, ensure_ascii=False)
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


@admin.register(RawEvent)
class RawEventAdmin(admin.ModelAdmin[RawEvent]):
    list_display = ["id", "received_at", "source", "source_kind", "push_kind", "status", "parsed_count", "error_head"]
    list_filter = [
        "status",
        "source_kind",
        ("received_at", admin.DateFieldListFilter),
        ("source", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["=id", "push_kind"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    date_hierarchy = None
    ordering = ["-received_at", "-id"]
    actions = ["reparse_selected"]
    readonly_fields = (
        "id",
        "received_at",
        "source",
        "source_kind",
        "push_kind",
        "remote_addr",
        "content_type",
        "headers",
        "body_pretty",
        "status",
        "parser_version",
        "parsed_at",
        "parsed_count",
        "error",
        "parsed_events",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewable, never editable: saving would re-post received_at and move the row (and the DB refuses).
        return False

    @admin.display(description="error")
    def error_head(self, obj: RawEvent) -> str:
        return (obj.error or "")[:80]

    @admin.display(description="body")
    def body_pretty(self, obj: RawEvent) -> str:
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>", _pretty_body(bytes(obj.body), obj.content_type)
        )

    @admin.display(description="parsed events")
    def parsed_events(self, obj: RawEvent) -> str:
        rows = ParsedEvent.objects.filter(raw_id=obj.id).values_list("id", "kind", "occurred_at")[:50]
        return format_html(
            "<pre>{}</pre>", "\n".join(f"#{pk} {kind} {when:%Y-%m-%d %H:%M:%S}Z" for pk, kind, when in rows) or "—"
        )

    def has_reparse_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.reparse_{self.opts.model_name}")

    @admin.action(description="Re-parse selected raw events with the current parsers", permissions=["reparse"])
    def reparse_selected(self, request: HttpRequest, queryset: QuerySet[RawEvent]) -> None:
        keys = list(queryset.values_list("id", "received_at")[: COUNT_CAP + 1])
        if len(keys) > COUNT_CAP:
            keys = keys[:COUNT_CAP]
            self.message_user(
                request,
                f"Only the newest {COUNT_CAP:,} of the selection are taken; use manage.py reparse for a larger window.",
                messages.WARNING,
            )
        if len(keys) <= REPARSE_INLINE_MAX:
            outcome = raw_rows_reparse(raw_ids=[k[0] for k in keys], received_at=[k[1] for k in keys])
            summary = f"Re-parsed {outcome.rows} raw events: {outcome.after} events, {outcome.failed} failed."
            self.message_user(request, summary, messages.WARNING if outcome.failed else messages.SUCCESS)
            return
        chunks = [keys[i : i + REPARSE_JOB_ROWS] for i in range(0, len(keys), REPARSE_JOB_ROWS)]
        jobs: list[JSONDict] = [
            {"raw_ids": [k[0] for k in c], "received_at": [k[1].isoformat() for k in c]} for c in chunks
        ]
        reparse_rows.batch_defer(*jobs)
        self.message_user(request, f"{len(keys):,} rows queued for re-parse.", messages.SUCCESS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[RawEvent]:
        return super().get_queryset(request).select_related("source")


@admin.register(ParsedEvent)
class ParsedEventAdmin(admin.ModelAdmin[ParsedEvent]):
    list_display = ["id", "kind", "device", "occurred_at", "received_at", "parser_version", "raw_id"]
    list_filter = ["kind", ("occurred_at", admin.DateFieldListFilter), ("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=device__imei", "=raw_id"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    ordering = ["-occurred_at"]
    raw_id_fields = ["device", "account"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PushSource)
class PushSourceAdmin(admin.ModelAdmin[PushSource]):
    list_display = ["name", "kind", "account", "enabled", "created_at"]
    list_filter = ["kind", "enabled", "account"]
    search_fields = ["name"]


@admin.register(PushRejection)
class PushRejectionAdmin(admin.ModelAdmin[PushRejection]):
    list_display = ["minute", "source_name", "reason", "count"]
    list_filter = ["reason", "source_name"]
    ordering = ["-minute"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
