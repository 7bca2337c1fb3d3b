"""Read-only admin for the projections: operators look, projectors write (single writer)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from state.models import LivePosition, ProjectionPending, ProjectorCheckpoint, Trip
from state.projectors.runner import projection_failures_requeue


class ReadOnlyAdmin[M: Model](admin.ModelAdmin[M]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ProjectorCheckpoint)
class ProjectorCheckpointAdmin(ReadOnlyAdmin[ProjectorCheckpoint]):
    list_display = ("projector", "events_done", "batches_done", "last_run_at", "failures", "last_error_at")


@admin.register(LivePosition)
class LivePositionAdmin(ReadOnlyAdmin[LivePosition]):
    list_display = ("device_id", "occurred_at", "speed_kmh", "ignition", "updated_at")
    show_full_result_count = False


@admin.register(Trip)
class TripAdmin(ReadOnlyAdmin[Trip]):
    list_display = ("device_id", "source", "started_at", "ended_at", "distance_m", "closed", "matched_started_at")
    list_filter = ("source", "closed")
    show_full_result_count = False


class WorkListStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("parked", "parked (failed, not retried)"), ("retrying", "retrying after a failure"), ("due", "due")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "parked":
            return queryset.filter(failed_at__isnull=False)
        if self.value() == "retrying":
            return queryset.filter(attempts__gt=0, failed_at__isnull=True)
        if self.value() == "due":
            return queryset.filter(attempts=0)
        return queryset


@admin.register(ProjectionPending)
class ProjectionPendingAdmin(ReadOnlyAdmin[ProjectionPending]):
    """The projectors' work-list. Parked rows are the dead letters: events a projector failed on alone, again
    and again; the error says why. Re-queue them once the cause (a projector bug, a bad payload re-parsed) is
    fixed."""

    list_display = ("id", "projector", "kind", "device_id", "occurred_at", "parsed_id", "attempts", "failed_at")
    list_filter = (WorkListStateFilter, "projector", "kind")
    readonly_fields = ("last_error",)
    show_full_result_count = False
    actions = ("requeue",)

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("state.change_projectionpending")

    @admin.action(description="Re-queue the selected parked events", permissions=["requeue"])
    def requeue(self, request: HttpRequest, queryset: Any) -> None:
        n = projection_failures_requeue(ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{n} parked event(s) re-queued; the projector retries them now.")
