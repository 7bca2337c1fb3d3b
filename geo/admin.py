"""geo admin: points of interest, edited on a map; the map-matching work-list and its parked fixes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin
from django.http import HttpRequest

from geo.matching.worklist import match_requeue_parked
from geo.models import MatchPending, Poi
from state.admin import WorkListStateFilter


@admin.register(Poi)
class PoiAdmin(GISModelAdmin):
    list_display = ("name", "kind", "account", "created_at")
    list_filter = ("kind", "account")
    search_fields = ("name", "notes")
    gis_widget_kwargs = {"attrs": {"default_lat": 43.7384, "default_lon": 7.4246, "default_zoom": 13}}


@admin.register(MatchPending)
class MatchPendingAdmin(admin.ModelAdmin[MatchPending]):
    """The map-matching work-list. Parked rows are fixes whose windows the matcher failed on alone, again and again;
    the error says why. Re-queue them once the cause is fixed."""

    list_display = ("id", "device_id", "occurred_at", "parsed_id", "attempts", "failed_at")
    list_filter = (WorkListStateFilter,)
    readonly_fields = ("last_error",)
    show_full_result_count = False
    actions = ("requeue",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("geo.change_matchpending")

    @admin.action(description="Re-queue the selected parked fixes", permissions=["requeue"])
    def requeue(self, request: HttpRequest, queryset: Any) -> None:
        n = match_requeue_parked(ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{n} parked fix(es) re-queued; the matcher retries them now.")
