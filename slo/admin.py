"""Targets and thresholds are edited here; a save applies everywhere within SLO_TARGET_CACHE_S."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from slo.models import SloTarget
from slo.thresholds import thresholds_forget


@admin.register(SloTarget)
class SloTargetAdmin(admin.ModelAdmin):
    list_display = ["metric", "kind", "comparison", "threshold", "unit", "window", "business_hours_only", "updated_at"]
    list_editable = ["threshold"]
    list_filter = ["kind", "business_hours_only"]
    search_fields = ["metric", "description"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        thresholds_forget()
