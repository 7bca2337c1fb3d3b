"""Admin for ops clerks: device lifecycle as actions, bulk CSV import, plate-aware search, full history.

Every write goes through domain.services (the database enforces the rules; the services name the refusal).
History comes from pghistory's trigger-written events, so changes made outside the admin show too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode
from django.utils.translation import ngettext
from django_stubs_ext import StrOrPromise, WithAnnotations
from pghistory.models import Events

from domain.access import ADMIN_FLEET, user_holds_scope
from domain.models import (
    Account,
    AssignedCity,
    CostCentre,
    Device,
    Driver,
    DriverAssignment,
    Lifecycle,
    Vehicle,
)
from domain.plates import normalize_plate
from domain.services import (
    IMPORT_OPTIONAL_COLUMNS,
    IMPORT_REQUIRED_COLUMNS,
    DeviceImportError,
    LifecycleTransitionError,
    RowAction,
    device_transition,
    devices_import_csv,
    lifecycle_allowed_from,
)

# --- History (pghistory events, with the user and reason from the context) -------------------------------


@dataclass
class HistoryEntry:
    when: datetime
    label: str
    user: str
    reason: str
    url: str
    changes: list[tuple[StrOrPromise, Any, Any]] = field(default_factory=list)


def _related_names(model: type[Model], events: list[Events]) -> dict[tuple[str, Any], str]:
    """{(attname, id): str(object)} for the foreign keys in the events, so a diff says a plate, not an id."""
    names: dict[tuple[str, Any], str] = {}
    for fk in (f for f in model._meta.concrete_fields if f.is_relation):
        ids = {e.pgh_data.get(fk.attname) for e in events} | {
            value for e in events for value in (e.pgh_diff or {}).get(fk.attname, [])
        }
        # A concrete relation's related_model is a model class once the app registry is ready ("self" resolved).
        related = cast("type[Model]", fk.related_model)
        objects = related._default_manager.in_bulk([i for i in ids if i is not None])
        names.update({(fk.attname, pk): str(obj) for pk, obj in objects.items()})
    return names


def _event_changes(event: Events) -> list[tuple[str, Any, Any]]:
    """(column, old, new) sorted by column; an insert has nothing to diff against, so its non-blank values."""
    if event.pgh_diff:
        return sorted((k, old, new) for k, (old, new) in event.pgh_diff.items())
    if event.pgh_label == "insert":
        return sorted((k, None, v) for k, v in event.pgh_data.items() if v not in ("", None))
    return []


def object_history(obj: Model) -> list[HistoryEntry]:
    """Newest first: every insert/update of `obj`, who made it (HistoryMiddleware or a service) and the diff."""
    events = list(Events.objects.tracks(obj).order_by("-pgh_created_at", "-pgh_id"))
    contexts = [e.pgh_context or {} for e in events]
    users = get_user_model()._default_manager.in_bulk([c["user"] for c in contexts if c.get("user")])
    names = _related_names(type(obj), events)
    verbose = {f.attname: f.verbose_name for f in type(obj)._meta.concrete_fields}

    def shown(attname: str, value: Any) -> Any:
        return names.get((attname, value), value)

    entries = []
    for event, context in zip(events, contexts, strict=True):
        changes = [(verbose.get(k, k), shown(k, old), shown(k, new)) for k, old, new in _event_changes(event)]
        user = users.get(context.get("user"))
        entries.append(
            HistoryEntry(
                when=event.pgh_created_at,
                label=event.pgh_label,
                user=str(user) if user else (f"user #{context['user']}" if context.get("user") else ""),
                reason=context.get("reason", ""),
                url=context.get("url", ""),
                changes=changes,
            )
        )
    return entries


class TrackedHistoryAdmin[M: Model](admin.ModelAdmin[M]):
    """The admin's "History" page shows pghistory events instead of the admin's own LogEntry rows."""

    object_history_template = "admin/domain/object_history.html"

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        extra: dict[str, Any] = {}
        if obj is not None and self.has_view_or_change_permission(request, obj):  # else super() refuses
            query = urlencode({"method": "tracks", "obj": f"{obj._meta.label}:{obj.pk}"})
            extra = {
                "history_entries": object_history(obj),
                "events_url": f"{reverse('admin:pghistory_events_changelist')}?{query}",
            }
        return super().history_view(request, object_id, extra_context={**extra, **(extra_context or {})})


# --- Plate search ----------------------------------------------------------------------------------------


class PlateSearchAdmin[M: Model](TrackedHistoryAdmin[M]):
    """Search also matches the normalised plate: "kca-123a" or "kca 123a" finds KCA123A."""

    plate_lookup = "plate"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[M], search_term: str
    ) -> tuple[QuerySet[M], bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            plate = normalize_plate(search_term)
        except ValueError:
            return results, may_have_duplicates
        return results | queryset.filter(**{f"{self.plate_lookup}__contains": plate}), may_have_duplicates


class DeviceCount(TypedDict):
    """The device count the account and vehicle lists annotate."""

    device_count: int


# --- Reference data --------------------------------------------------------------------------------------


@admin.register(Account)
class AccountAdmin(TrackedHistoryAdmin[Account]):
    list_display = ("name", "jimi_account", "api_node", "device_count", "created_at")
    list_filter = ("api_node",)
    search_fields = ("name", "jimi_account")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return super().get_queryset(request).annotate(device_count=Count("devices"))

    @admin.display(description="devices", ordering="device_count")
    def device_count(self, obj: WithAnnotations[Account, DeviceCount]) -> int:
        return obj.device_count


@admin.register(CostCentre)
class CostCentreAdmin(TrackedHistoryAdmin[CostCentre]):
    list_display = ("name", "code")
    search_fields = ("name", "code")


@admin.register(AssignedCity)
class AssignedCityAdmin(TrackedHistoryAdmin[AssignedCity]):
    list_display = ("name", "country_code")
    list_filter = ("country_code",)
    search_fields = ("name",)


# --- Vehicles and drivers --------------------------------------------------------------------------------


class VehicleForm(forms.ModelForm[Vehicle]):
    class Meta:
        model = Vehicle
        fields = ("plate", "model", "depot", "cost_centre", "assigned_city")

    def clean_plate(self) -> str:
        # Normalise before the unique check, or "kca 123a" would pass it and then collide on save.
        try:
            return normalize_plate(self.cleaned_data["plate"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class VehicleDeviceInline(admin.TabularInline[Device, Vehicle]):
    model = Device
    fields = ("imei", "name", "model", "account", "lifecycle")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Vehicle)
class VehicleAdmin(PlateSearchAdmin[Vehicle]):
    form = VehicleForm
    list_display = ("plate", "model", "depot", "cost_centre", "assigned_city", "device_count")
    list_filter = ("cost_centre", "assigned_city", "depot")
    list_select_related = ("cost_centre", "assigned_city")
    search_fields = ("plate", "model", "depot")
    inlines = [VehicleDeviceInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Vehicle]:
        return super().get_queryset(request).annotate(device_count=Count("devices"))

    @admin.display(description="devices", ordering="device_count")
    def device_count(self, obj: WithAnnotations[Vehicle, DeviceCount]) -> int:
        return obj.device_count


@admin.register(Driver)
class DriverAdmin(TrackedHistoryAdmin[Driver]):
    list_display = ("name", "phone", "hr_id", "licence_number", "active", "hr_synced_at")
    list_filter = ("active",)
    readonly_fields = ("hr_synced_at",)
    search_fields = ("name", "phone", "hr_id")


@admin.register(DriverAssignment)
class DriverAssignmentAdmin(PlateSearchAdmin[DriverAssignment]):
    # The model form validates the exclusion constraints, so an overlap is a form error, not a 500.
    plate_lookup = "vehicle__plate"
    list_display = ("driver", "vehicle", "start", "end", "source", "note")
    list_filter = ("source",)
    list_select_related = ("driver", "vehicle")
    search_fields = ("driver__name", "vehicle__plate")
    autocomplete_fields = ("driver", "vehicle")

    @admin.display(description="start")
    def start(self, obj: DriverAssignment) -> datetime | None:
        return obj.period.lower if obj.period else None

    @admin.display(description="end")
    def end(self, obj: DriverAssignment) -> datetime | str | None:
        return (obj.period.upper or "until further notice") if obj.period else None


# --- Devices ---------------------------------------------------------------------------------------------


# What the clerk does to reach each state, for the confirmation page.
LIFECYCLE_VERBS = {
    Lifecycle.ACTIVE: "Activate",
    Lifecycle.SUSPENDED: "Suspend",
    Lifecycle.DECOMMISSIONED: "Decommission",
}


class LifecycleReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=Device._meta.get_field("lifecycle_reason").max_length,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why (e.g. the ticket or the vehicle's situation); kept in each device's history.",
    )


class DeviceImportForm(forms.Form):
    csv_file = forms.FileField(
        label="CSV file",
        required=False,
        help_text=(
            f"Header: {','.join(IMPORT_REQUIRED_COLUMNS)} (optional: {','.join(IMPORT_OPTIONAL_COLUMNS)}). "
            'Account is the account\'s name; plate is normalised ("kca 123a" → KCA123A).'
        ),
    )
    # After a dry run the same text comes back from the result page, so the commit imports what was previewed.
    csv_text = forms.CharField(required=False, widget=forms.HiddenInput, strip=False)
    dry_run = forms.BooleanField(label="Dry run (preview only, write nothing)", required=False, initial=True)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # forms.Form.clean returns cleaned_data
        upload = cleaned.get("csv_file")
        if upload:
            try:
                cleaned["file_text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ValidationError("The file is not UTF-8 text; save it from the spreadsheet as CSV UTF-8.") from exc
        elif cleaned.get("csv_text"):
            cleaned["file_text"] = cleaned["csv_text"]
        else:
            raise ValidationError("Choose a CSV file.")
        return cleaned


@admin.register(Device)
class DeviceAdmin(PlateSearchAdmin[Device]):
    plate_lookup = "vehicle__plate"
    change_list_template = "admin/domain/device/change_list.html"
    list_display = ("imei", "name", "model", "account", "plate", "lifecycle", "lifecycle_changed_at")
    list_filter = ("lifecycle", "account", "vehicle__cost_centre", "vehicle__assigned_city")
    list_select_related = ("account", "vehicle")
    search_fields = ("imei", "vehicle__plate", "name", "iccid")
    autocomplete_fields = ("vehicle",)
    # The lifecycle moves only through the actions below (and so through device_transition).
    readonly_fields = ("lifecycle", "lifecycle_changed_at", "lifecycle_reason", "created_at")
    actions = ("activate", "suspend", "decommission")

    @admin.display(description="plate", ordering="vehicle__plate")
    def plate(self, obj: Device) -> str:
        return obj.vehicle.plate if obj.vehicle else ""

    def save_model(self, request: HttpRequest, obj: Device, form: forms.ModelForm[Device], change: bool) -> None:
        if not change:
            return super().save_model(request, obj, form, change)
        # Never write the lifecycle columns from a change form loaded before an action moved them: the
        # FSM trigger would refuse the stale value (or, worse, accept it as a transition).
        fields = [
            f.name for f in Device._meta.concrete_fields if not f.primary_key and f.name not in self.readonly_fields
        ]
        obj.save(update_fields=fields)

    # Lifecycle actions ---------------------------------------------------------------------------------

    def has_lifecycle_permission(self, request: HttpRequest) -> bool:
        """What the API's lifecycle endpoint needs: the admin:fleet scope (asked through domain.access, which the
        project answers), on top of changing devices."""
        return self.has_change_permission(request) and user_holds_scope(request.user, ADMIN_FLEET)

    @admin.action(description="Activate / re-activate selected devices", permissions=["lifecycle"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Device]) -> HttpResponse | None:
        return self._lifecycle_action(request, queryset, Lifecycle.ACTIVE)

    @admin.action(description="Suspend selected devices", permissions=["lifecycle"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Device]) -> HttpResponse | None:
        return self._lifecycle_action(request, queryset, Lifecycle.SUSPENDED)

    @admin.action(description="Decommission selected devices", permissions=["lifecycle"])
    def decommission(self, request: HttpRequest, queryset: QuerySet[Device]) -> HttpResponse | None:
        return self._lifecycle_action(request, queryset, Lifecycle.DECOMMISSIONED)

    def _lifecycle_action(self, request: HttpRequest, queryset: QuerySet[Device], to: Lifecycle) -> HttpResponse | None:
        """First an intermediate page asking for the reason; on confirm, each device moves or is refused."""
        form = LifecycleReasonForm(request.POST if "confirm" in request.POST else None)
        if form.is_valid():
            self._transition(request, queryset, to, form.cleaned_data["reason"])
            return None  # back to the change list, with the messages
        devices = list(queryset.select_related("vehicle"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{LIFECYCLE_VERBS[to]} {len(devices)} device{pluralize(len(devices))}",
            "verb": LIFECYCLE_VERBS[to],
            "opts": self.opts,
            "form": form,
            "to": to,
            "rows": [(device, to in lifecycle_allowed_from(device.lifecycle)) for device in devices],
            "action": request.POST.get("action", ""),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/domain/device/lifecycle_confirm.html", context)

    def _transition(self, request: HttpRequest, queryset: QuerySet[Device], to: Lifecycle, reason: str) -> None:
        moved = 0
        for device in queryset:
            try:
                device_transition(device=device, to=to, reason=reason, user=request.user)
            except LifecycleTransitionError as exc:
                self.message_user(request, f"Refused: {exc}", messages.ERROR)
                continue
            moved += 1
            self.log_change(request, device, f"Lifecycle → {to}: {reason}")
        if moved:
            message = ngettext("%(n)d device is now %(to)s.", "%(n)d devices are now %(to)s.", moved)
            self.message_user(request, message % {"n": moved, "to": to.label.lower()}, messages.SUCCESS)

    # CSV import ----------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        import_url = path(
            "import-csv/", self.admin_site.admin_view(self.import_csv_view), name="domain_device_import_csv"
        )
        # Before the defaults: their "<path:object_id>/" would swallow "import-csv/".
        return [import_url, *super().get_urls()]

    def import_csv_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        report, form = None, DeviceImportForm()
        if request.method == "POST":
            form = DeviceImportForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    report = devices_import_csv(
                        file_text=form.cleaned_data["file_text"],
                        dry_run=form.cleaned_data["dry_run"],
                        user=request.user,
                    )
                except DeviceImportError as exc:
                    form.add_error(None, str(exc))
        if report is not None and not report.dry_run:
            n = report.counts
            summary = f"{n['create']} created, {n['update']} updated, {n['unchanged']} unchanged"
            self.message_user(request, f"Import done: {summary}, {n['error']} skipped (errors).", messages.SUCCESS)
        writes = report is not None and report.count(RowAction.CREATE) + report.count(RowAction.UPDATE) > 0
        context = {
            **self.admin_site.each_context(request),
            "title": "Import devices from CSV",
            "opts": self.opts,
            "form": form,
            "report": report,
            "commit_form": (
                DeviceImportForm(initial={"csv_text": form.cleaned_data["file_text"]})
                if report is not None and report.dry_run and writes
                else None
            ),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/domain/device/import_csv.html", context)
