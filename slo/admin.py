"""Targets and thresholds are edited here; a save applies everywhere within SLO_TARGET_CACHE_S."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from slo.models import SloAlert, SloMeasurement, SloTarget
from slo.thresholds import thresholds_forget


@admin.register(SloTarget)
class SloTargetAdmin(admin.ModelAdmin[SloTarget]):
    list_display = ["metric", "kind", "comparison", "threshold", "unit", "window", "business_hours_only", "updated_at"]
    list_editable = ["threshold"]
    list_filter = ["kind", "business_hours_only"]
    search_fields = ["metric", "description"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        thresholds_forget()


@admin.register(SloMeasurement)
class SloMeasurementAdmin(admin.ModelAdmin[SloMeasurement]):
    list_display = ["measured_at", "metric", "value", "threshold", "met", "sample_size"]
    list_filter = ["metric", "met"]
    ordering = ["-measured_at"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SloAlert)
class SloAlertAdmin(admin.ModelAdmin[SloAlert]):
    list_display = ["metric", "opened_at", "closed_at", "threshold", "opened_value", "last_value", "notified"]
    list_filter = ["metric", ("closed_at", admin.EmptyFieldListFilter)]
    ordering = ["-opened_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
