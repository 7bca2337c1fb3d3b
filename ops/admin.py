"""Operations admin: cost rates, and report exports as actions on the domain's vehicle and cost-centre admins.

The domain admin cannot know the reports (they read the state layer above it), so the export actions are
attached here, from ops, to the model admins domain registered (domain's admin loads first: INSTALLED_APPS).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest
from django.utils import timezone

from domain.models import CostCentre, Vehicle
from ops.models import CostRate
from ops.reports import REPORTS, ReportFilters, report_xlsx


@admin.register(CostRate)
class CostRateAdmin(admin.ModelAdmin[CostRate]):
    list_display = ["cost_centre", "valid_from", "per_km", "currency", "note"]
    list_filter = ["cost_centre", "currency"]
    ordering = ["cost_centre", "-valid_from"]


EXPORT_DAYS = 30


def _export(name: str, filters: ReportFilters) -> FileResponse:
    return FileResponse(
        report_xlsx(REPORTS[name], filters),
        as_attachment=True,
        filename=f"{name}-{filters.since:%Y%m%d}-{filters.until:%Y%m%d}.xlsx",
    )


def _vehicle_action(name: str) -> Any:
    def action(
        modeladmin: admin.ModelAdmin[Vehicle], request: HttpRequest, queryset: QuerySet[Vehicle]
    ) -> FileResponse:
        until = timezone.now()
        plates = tuple(queryset.values_list("plate", flat=True))
        return _export(
            name, ReportFilters(since=until - timedelta(days=EXPORT_DAYS), until=until, vehicle_numbers=plates)
        )

    action.__name__ = f"export_{name}"
    return admin.action(description=f"Export {REPORTS[name].title.lower()}, last {EXPORT_DAYS} days (XLSX)")(action)


@admin.action(description=f"Export utilisation, last {EXPORT_DAYS} days (XLSX)")
def export_utilisation(
    modeladmin: admin.ModelAdmin[CostCentre], request: HttpRequest, queryset: QuerySet[CostCentre]
) -> Any:
    until = timezone.now()
    names = tuple(queryset.values_list("name", flat=True))
    return _export(
        "utilisation", ReportFilters(since=until - timedelta(days=EXPORT_DAYS), until=until, cost_centres=names)
    )


def _attach(model: type, *actions: Any) -> None:
    model_admin = admin.site._registry.get(model)
    if model_admin is not None:
        model_admin.actions = (*(model_admin.actions or ()), *actions)


_attach(Vehicle, *(_vehicle_action(n) for n in ("trips", "daily_mileage", "parking", "alarms")))
_attach(CostCentre, export_utilisation)
