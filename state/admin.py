"""Read-only admin for the projections: operators look, projectors write (single writer)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from state.models import LivePosition, ProjectorCheckpoint, Trip


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ProjectorCheckpoint)
class ProjectorCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("projector", "events_done", "batches_done", "last_run_at", "failures", "last_error_at")


@admin.register(LivePosition)
class LivePositionAdmin(ReadOnlyAdmin):
    list_display = ("device_id", "occurred_at", "speed_kmh", "ignition", "updated_at")
    show_full_result_count = False


@admin.register(Trip)
class TripAdmin(ReadOnlyAdmin):
    list_display = ("device_id", "source", "started_at", "ended_at", "distance_m", "closed", "matched_started_at")
    list_filter = ("source", "closed")
    show_full_result_count = False
