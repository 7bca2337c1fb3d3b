"""Operations admin: cost rates, and report exports as actions on the domain's vehicle and cost-centre admins.

The domain admin cannot know the reports (they read the state layer above it), so the export actions are
attached here, from ops, to the model admins domain registered (domain's admin loads first: INSTALLED_APPS).
An export action first asks for the date range (an intermediate page, the last EXPORT_DAYS days by default, times
in DISPLAY_TIME_ZONE), then downloads the XLSX.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
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


class ExportRangeForm(forms.Form):
    """The date range of an admin export; times are read in DISPLAY_TIME_ZONE."""

    since = forms.DateTimeField(label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until <= since:
            raise forms.ValidationError("The range is empty: “To” must be after “From”.")
        return cleaned


def _local_input(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE)).strftime("%Y-%m-%dT%H:%M")


def _export(name: str, filters: ReportFilters) -> FileResponse:
    return FileResponse(
        report_xlsx(REPORTS[name], filters),
        as_attachment=True,
        filename=f"{name}-{filters.since:%Y%m%d}-{filters.until:%Y%m%d}.xlsx",
    )


def _export_in_range(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    name: str,
    filters: Callable[[QuerySet[Any]], dict[str, tuple[str, ...]]],
) -> HttpResponseBase:
    """The intermediate page asking for the range (default: the last EXPORT_DAYS days); once it is posted back
    valid, the report of the selected rows in that range."""
    with timezone.override(ZoneInfo(settings.DISPLAY_TIME_ZONE)):
        if "export" in request.POST:
            form = ExportRangeForm(request.POST)
            if form.is_valid():
                since, until = form.cleaned_data["since"], form.cleaned_data["until"]
                return _export(name, ReportFilters(since=since, until=until, **filters(queryset)))
        else:
            now = timezone.now()
            form = ExportRangeForm(
                initial={"since": _local_input(now - timedelta(days=EXPORT_DAYS)), "until": _local_input(now)}
            )
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Export {REPORTS[name].title.lower()}",
        "opts": opts,
        "form": form,
        "objects": list(queryset),
        "report": REPORTS[name],
        "action": request.POST.get("action", ""),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "zone": settings.DISPLAY_TIME_ZONE,
        "default_days": EXPORT_DAYS,
    }
    return TemplateResponse(request, "admin/ops/export_range.html", context)


def _plates(queryset: QuerySet[Vehicle]) -> dict[str, tuple[str, ...]]:
    return {"vehicle_numbers": tuple(queryset.values_list("plate", flat=True))}


def _cost_centres(queryset: QuerySet[CostCentre]) -> dict[str, tuple[str, ...]]:
    return {"cost_centres": tuple(queryset.values_list("name", flat=True))}


def _vehicle_action(name: str) -> Any:
    def action(
        modeladmin: admin.ModelAdmin[Vehicle], request: HttpRequest, queryset: QuerySet[Vehicle]
    ) -> HttpResponseBase:
        return _export_in_range(modeladmin, request, queryset, name, _plates)

    action.__name__ = f"export_{name}"
    return admin.action(description=f"Export {REPORTS[name].title.lower()} (XLSX, choose the dates)")(action)


@admin.action(description="Export utilisation (XLSX, choose the dates)")
def export_utilisation(
    modeladmin: admin.ModelAdmin[CostCentre], request: HttpRequest, queryset: QuerySet[CostCentre]
) -> HttpResponseBase:
    return _export_in_range(modeladmin, request, queryset, "utilisation", _cost_centres)


def _attach(model: type, *actions: Any) -> None:
    model_admin = admin.site._registry.get(model)
    if model_admin is not None:
        model_admin.actions = (*(model_admin.actions or ()), *actions)


_attach(Vehicle, *(_vehicle_action(n) for n in ("trips", "daily_mileage", "parking", "alarms")))
_attach(CostCentre, export_utilisation)
