"""Operations admin: cost rates."""

from __future__ import annotations

from django.contrib import admin

from ops.models import CostRate


@admin.register(CostRate)
class CostRateAdmin(admin.ModelAdmin):
    list_display = ["cost_centre", "valid_from", "per_km", "currency", "note"]
    list_filter = ["cost_centre", "currency"]
    ordering = ["cost_centre", "-valid_from"]
