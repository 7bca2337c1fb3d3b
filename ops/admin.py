"""Operations admin: the clerks' alarms list, tickets, the service log and what is due, the dispatch log, odometer
readings and driver assignments (both through the log), cost rates, and report exports as actions on the domain's
vehicle and cost-centre admins.

Ops actions that change derived state — acknowledging an alarm, recording an odometer reading, assigning a driver —
write an event to the log through ops.services, never a state (or domain) table; a replay keeps them. The admin asks
for the scope the API asks for (write:ops, through domain.access) on top of the model permissions.

The domain admin cannot know the reports (they read the state layer above it), so the export actions are
attached here, from ops, to the model admins domain registered (domain's admin loads first: INSTALLED_APPS).
An export action first asks for the date range (an intermediate page, the last EXPORT_DAYS days by default, times
in DISPLAY_TIME_ZONE), then downloads the XLSX.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pghistory
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Model, OuterRef, Q, QuerySet, Subquery
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import ngettext

from domain.access import WRITE_OPS, user_holds_scope
from domain.admin import DriverAssignmentAdmin, PlateSearchAdmin
from domain.models import CostCentre, Device, Driver, DriverAssignment, Vehicle
from domain.plates import normalize_plate
from ops.models import (
    TICKET_OPEN_STATUSES,
    CostRate,
    DispatchLog,
    ServiceLog,
    Ticket,
    TicketCategory,
    TicketComment,
    TicketPriority,
    TicketStatus,
)
from ops.reports import REPORTS, ReportFilters, report_xlsx
from ops.selectors import maintenance_plan
from ops.services import (
    OpsError,
    TicketTransitionError,
    alarms_acknowledge,
    driver_assign,
    odometer_record,
    service_log_record,
    ticket_comment,
    ticket_open,
    ticket_transition,
    ticket_update,
)
from slo.thresholds import threshold
from state.models import Alarm, OdometerReading


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


# --- Shared: times in the display zone, counts that never scan a big table ------------------------------------------

COUNT_CAP = 10_000


class BoundedCountPaginator(Paginator[Model]):
    """Counts exactly up to COUNT_CAP rows (a bounded query), past that from the table's statistics: the alarms and
    readings tables grow with the fleet, and a changelist must not count them (events/admin.py does the same)."""

    @cached_property
    def count(self) -> int:
        rows = cast("QuerySet[Model]", self.object_list)
        bounded = rows[: COUNT_CAP + 1].count()
        if bounded <= COUNT_CAP:
            return bounded
        with connection.cursor() as cursor:
            cursor.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass",
                           [rows.model._meta.db_table])  # fmt: skip
            return max(bounded, int(cursor.fetchone()[0]))


def local(moment: datetime | None) -> str:
    """A time as the clerks read it: in DISPLAY_TIME_ZONE, with the zone's name."""
    if moment is None:
        return "—"
    return moment.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE)).strftime("%Y-%m-%d %H:%M %Z")


def span(seconds: float) -> str:
    """1 d 3 h, 2 h 5 min, 12 min."""
    minutes = int(abs(seconds) // 60)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"


def writes_ops(request: HttpRequest) -> bool:
    """The admin's ops actions need what the API's need: the write:ops scope (domain.access asks the project)."""
    return user_holds_scope(request.user, WRITE_OPS)


# --- Alarms: open / acknowledged, acknowledge, open a ticket ------------------------------------------------------

RECENT = timedelta(days=7)
SEVERITY_PRIORITY = {"critical": TicketPriority.URGENT, "warning": TicketPriority.HIGH, "info": TicketPriority.NORMAL}


class AlarmStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "open (not acknowledged)"), ("acknowledged", "acknowledged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alarm]) -> QuerySet[Alarm]:
        if self.value() == "open":
            return queryset.filter(acknowledged_at__isnull=True)
        if self.value() == "acknowledged":
            return queryset.filter(acknowledged_at__isnull=False)
        return queryset


class AlarmAgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    AGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"), ("older", "older than 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alarm]) -> QuerySet[Alarm]:
        now = timezone.now()
        if self.value() in self.AGES:
            return queryset.filter(occurred_at__gte=now - self.AGES[str(self.value())])
        if self.value() == "older":
            return queryset.filter(occurred_at__lt=now - self.AGES["7d"])
        return queryset


class AlarmTypeFilter(admin.SimpleListFilter):
    """The types of the last 7 days (a bounded read of the time index), and the types automations watch."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = Alarm.objects.filter(occurred_at__gte=timezone.now() - RECENT)
        names = set(recent.values_list("normalised_name", flat=True).distinct()[:50])
        if self.value():
            names.add(str(self.value()))
        return [(name, name.replace("_", " ")) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alarm]) -> QuerySet[Alarm]:
        return queryset.filter(normalised_name=self.value()) if self.value() else queryset


class AlarmVehicleFilter(admin.SimpleListFilter):
    """The vehicles with alarms in the last 7 days (a row's plate links here too)."""

    title = "vehicle"
    parameter_name = "vehicle"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = Alarm.objects.filter(occurred_at__gte=timezone.now() - RECENT, device_id__isnull=False)
        device_ids = set(recent.values_list("device_id", flat=True).distinct()[:200])
        vehicles = Vehicle.objects.filter(Q(devices__id__in=device_ids) | Q(plate=self.value() or "")).distinct()
        return [(v.plate, v.plate) for v in vehicles.order_by("plate")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alarm]) -> QuerySet[Alarm]:
        if not self.value():
            return queryset
        devices = Device.objects.filter(vehicle__plate=self.value()).values_list("id", flat=True)
        return queryset.filter(device_id__in=list(devices))


def _device_subquery(field: str) -> Subquery:
    return Subquery(Device.objects.filter(pk=OuterRef("device_id")).values(field)[:1])


class TicketForAlarmForm(forms.Form):
    """Nothing to fill: the confirmation that opens the tickets."""


@admin.register(Alarm)
class AlarmAdmin(admin.ModelAdmin[Alarm]):
    """The clerks' alarms list. Read-only (the readings projector writes state_alarms); acknowledging writes an
    `alarm_ack` event to the log, which the projector folds in — the row shows it within a second or so."""

    list_display = ("when", "plate_link", "imei", "type_name", "severity", "ack_status", "age", "ticket")
    list_filter = (AlarmStatusFilter, "severity", AlarmTypeFilter, AlarmVehicleFilter, AlarmAgeFilter)
    search_fields = ("=parsed_id",)
    ordering = ("-occurred_at", "-parsed_id")
    paginator = BoundedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # counts per filter value would scan the table
    list_per_page = 50
    actions = ("acknowledge", "open_ticket")
    readonly_fields = ("parsed_id", "when", "plate_link", "imei", "code", "name", "normalised_name", "severity",
                       "cleared", "speed_kmh", "acknowledged_at", "acknowledged_by", "ticket")  # fmt: skip
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alarm]:
        return (
            super()
            .get_queryset(request)
            .annotate(plate=_device_subquery("vehicle__plate"), imei_=_device_subquery("imei"))
            .defer("point")
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Alarm], search_term: str
    ) -> tuple[QuerySet[Alarm], bool]:
        """A plate (any spacing), an IMEI, or an alarm's id."""
        term = search_term.strip()
        if not term:
            return queryset, False
        devices = Device.objects.filter(imei=term)
        with contextlib.suppress(ValueError):
            devices = devices | Device.objects.filter(vehicle__plate__contains=normalize_plate(term))
        query = Q(device_id__in=list(devices.values_list("id", flat=True)[:500]))
        if term.isdigit():
            query |= Q(parsed_id=int(term))
        return queryset.filter(query), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_acknowledge_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request) and writes_ops(request)

    def has_ticket_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ops.add_ticket") and writes_ops(request)

    @admin.display(description="when", ordering="occurred_at")
    def when(self, obj: Alarm) -> str:
        return local(obj.occurred_at)

    @admin.display(description="vehicle")
    def plate_link(self, obj: Any) -> str:
        if not obj.plate:
            return "—"
        return format_html('<a href="?{}">{}</a>', urlencode({"vehicle": obj.plate}), obj.plate)

    @admin.display(description="IMEI")
    def imei(self, obj: Any) -> str:
        return str(obj.imei_ or "—")

    @admin.display(description="type", ordering="normalised_name")
    def type_name(self, obj: Alarm) -> str:
        return obj.name or obj.normalised_name.replace("_", " ")

    @admin.display(description="status", ordering="acknowledged_at")
    def ack_status(self, obj: Alarm) -> str:
        if obj.acknowledged_at is None:
            return format_html('<strong class="alarm-open">{}</strong>', "● open")
        return format_html(
            '<span class="alarm-acked">✓ acknowledged by {} at {}</span>',
            obj.acknowledged_by,
            local(obj.acknowledged_at),
        )

    @admin.display(description="age")
    def age(self, obj: Alarm) -> str:
        return span((timezone.now() - obj.occurred_at).total_seconds())

    @admin.display(description="ticket")
    def ticket(self, obj: Alarm) -> str:
        ticket = Ticket.objects.filter(alarm_parsed_id=obj.parsed_id).order_by("-opened_at").first()
        if ticket is None:
            return "—"
        url = reverse("admin:ops_ticket_change", args=[ticket.pk])
        return format_html('<a href="{}">#{} {}</a>', url, ticket.pk, ticket.get_status_display())

    @admin.action(description="Acknowledge the selected alarms", permissions=["acknowledge"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alarm]) -> None:
        ids = list(queryset.values_list("parsed_id", flat=True)[:COUNT_CAP])
        written, skipped = alarms_acknowledge(parsed_ids=ids, user=request.user)
        if written:
            self.message_user(
                request,
                ngettext(
                    "%(n)d acknowledgement recorded; the list shows it within seconds.",
                    "%(n)d acknowledgements recorded; the list shows them within seconds.",
                    len(written),
                )
                % {"n": len(written)},
                messages.SUCCESS,
            )
        for reason in skipped[:10]:
            self.message_user(request, f"Skipped {reason}.", messages.WARNING)

    @admin.action(description="Open a ticket for each selected alarm", permissions=["ticket"])
    def open_ticket(self, request: HttpRequest, queryset: QuerySet[Alarm]) -> None:
        opened = []
        for alarm in queryset.annotate(vehicle_id=_device_subquery("vehicle_id"))[:100]:
            existing = Ticket.objects.filter(alarm_parsed_id=alarm.parsed_id).first()
            if existing is not None:
                self.message_user(
                    request, f"Alarm #{alarm.parsed_id} already has ticket #{existing.pk}.", messages.WARNING
                )
                continue
            device = Device.objects.select_related("vehicle").filter(pk=alarm.device_id or 0).first()
            subject = device.vehicle if device and device.vehicle else device
            ticket = ticket_open(
                title=f"{alarm.name or alarm.normalised_name} on {subject}",
                category=TicketCategory.ALARM,
                priority=SEVERITY_PRIORITY.get(alarm.severity, TicketPriority.NORMAL),
                device=device,
                alarm_parsed_id=alarm.parsed_id,
                alarm_type=alarm.normalised_name,
                description=f"Alarm #{alarm.parsed_id} at {local(alarm.occurred_at)} ({alarm.severity}).",
                user=request.user,
            )
            opened.append(ticket)
        if opened:
            links = format_html_join(
                ", ", '<a href="{}">#{}</a>', ((reverse("admin:ops_ticket_change", args=[t.pk]), t.pk) for t in opened)
            )
            self.message_user(request, format_html("Opened ticket(s) {}.", links), messages.SUCCESS)


# --- Tickets ---------------------------------------------------------------------------------------------------------


class TicketStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("unresolved", "open, in progress or waiting"), *TicketStatus.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> QuerySet[Ticket]:
        if self.value() == "unresolved":
            return queryset.filter(status__in=TICKET_OPEN_STATUSES)
        return queryset.filter(status=self.value()) if self.value() else queryset


class SlaFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", "overdue (unresolved, past its deadline)"), ("running", "running (unresolved, on time)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> QuerySet[Ticket]:
        unresolved = queryset.filter(status__in=TICKET_OPEN_STATUSES)
        if self.value() == "overdue":
            return unresolved.filter(sla_due_at__lt=timezone.now())
        if self.value() == "running":
            return unresolved.filter(sla_due_at__gte=timezone.now())
        return queryset


class TicketCommentInline(admin.TabularInline[TicketComment, Ticket]):
    """The thread, oldest first; a new comment is added with the ticket's save (author: the clerk)."""

    model = TicketComment
    fields = ("created", "author", "body")
    readonly_fields = ("created", "author")
    extra = 1
    can_delete = False
    verbose_name_plural = "comments"

    @admin.display(description="when")
    def created(self, obj: TicketComment) -> str:
        return local(obj.created_at) if obj.pk else ""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a thread is kept as written

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("ops.add_ticketcomment") and writes_ops(request)


class TicketForm(forms.ModelForm[Ticket]):
    class Meta:
        model = Ticket
        fields = ("title", "category", "priority", "description", "vehicle", "device", "driver", "assignee", "due_at")
        widgets = {"description": forms.Textarea(attrs={"rows": 3, "cols": 80})}


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        queryset=get_user_model()._default_manager.filter(is_active=True, is_staff=True).order_by("username"),
        required=False,
        help_text="Empty: unassign.",
    )


# What the clerk does to reach each status, for the actions.
TICKET_VERBS = {
    TicketStatus.IN_PROGRESS: "Start work on",
    TicketStatus.WAITING: "Put on hold (waiting)",
    TicketStatus.RESOLVED: "Resolve",
    TicketStatus.CLOSED: "Close",
}


def _ticket_move(to: TicketStatus) -> Any:
    def action(modeladmin: TicketAdmin, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        modeladmin.move(request, queryset, to)

    action.__name__ = f"move_{to}"
    return admin.action(description=f"{TICKET_VERBS[to]} the selected tickets", permissions=["work"])(action)


@admin.register(Ticket)
class TicketAdmin(PlateSearchAdmin[Ticket]):
    """Tickets: the status moves only by the actions (ticket_transition: the database decides, a refusal is named),
    and every change is in the object's history (pghistory)."""

    form = TicketForm
    plate_lookup = "vehicle__plate"
    list_display = ("number", "title", "status_badge", "priority", "category", "vehicle", "assignee", "sla", "opened")
    list_display_links = ("number", "title")
    list_filter = (
        TicketStatusFilter,
        SlaFilter,
        "priority",
        "category",
        ("assignee", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("vehicle", "assignee")
    search_fields = ("title", "description", "vehicle__plate", "device__imei", "driver__name", "=id")
    autocomplete_fields = ("vehicle", "device", "driver", "assignee")
    ordering = ("-opened_at",)
    show_full_result_count = False
    inlines = (TicketCommentInline,)
    readonly_fields = ("status", "sla", "opened", "status_changed", "resolved", "closed", "alarm_link", "auto_key",
                       "occurrences", "last_seen", "created_by")  # fmt: skip
    fieldsets = (
        (None, {"fields": ("title", "category", "priority", "description")}),
        ("About", {"fields": ("vehicle", "device", "driver", "alarm_link")}),
        ("Work", {"fields": ("status", "assignee", "due_at", "sla", "opened", "status_changed", "resolved", "closed",
                             "created_by")}),
        ("Automation", {"fields": ("auto_key", "occurrences", "last_seen"), "classes": ("collapse",)}),
    )  # fmt: skip
    actions = (
        "assign",
        *(_ticket_move(to) for to in (TicketStatus.IN_PROGRESS, TicketStatus.WAITING, TicketStatus.RESOLVED)),
        _ticket_move(TicketStatus.CLOSED),
    )

    def has_work_permission(self, request: HttpRequest) -> bool:
        return self.has_change_permission(request) and writes_ops(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and writes_ops(request)

    @admin.display(description="#", ordering="id")
    def number(self, obj: Ticket) -> str:
        return f"#{obj.pk}"

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Ticket) -> str:
        marks = {"open": "●", "in_progress": "▶", "waiting": "‖", "resolved": "✓", "closed": "■"}
        return format_html(
            '<span class="ticket-{}">{} {}</span>', obj.status, marks[obj.status], obj.get_status_display()
        )

    @admin.display(description="opened", ordering="opened_at")
    def opened(self, obj: Ticket) -> str:
        return local(obj.opened_at)

    @admin.display(description="status changed")
    def status_changed(self, obj: Ticket) -> str:
        return local(obj.status_changed_at)

    @admin.display(description="resolved")
    def resolved(self, obj: Ticket) -> str:
        return local(obj.resolved_at)

    @admin.display(description="closed")
    def closed(self, obj: Ticket) -> str:
        return local(obj.closed_at)

    @admin.display(description="cause last seen")
    def last_seen(self, obj: Ticket) -> str:
        return local(obj.last_seen_at)

    @admin.display(description="SLA", ordering="sla_due_at")
    def sla(self, obj: Ticket) -> str:
        """A timer: time left (or overdue) while unresolved; met or missed once resolved."""
        if obj.sla_due_at is None:
            return "—"
        if obj.status in TICKET_OPEN_STATUSES:
            left = (obj.sla_due_at - timezone.now()).total_seconds()
            paused = " (paused: waiting)" if obj.status == TicketStatus.WAITING else ""
            if left < 0:
                return format_html('<strong class="sla-overdue">⚠ overdue by {}</strong>{}', span(left), paused)
            return format_html('<span class="sla-running">◷ {} left</span>{}', span(left), paused)
        done = obj.resolved_at or obj.closed_at
        met = done is not None and done <= obj.sla_due_at
        return format_html('<span class="sla-{}">{}</span>', "met" if met else "missed", "✓ met" if met else "✗ missed")

    @admin.display(description="alarm")
    def alarm_link(self, obj: Ticket) -> str:
        if obj.alarm_parsed_id is None:
            return "—"
        url = reverse("admin:state_alarm_change", args=[obj.alarm_parsed_id])
        return format_html('<a href="{}">#{} {}</a>', url, obj.alarm_parsed_id, obj.alarm_type.replace("_", " "))

    def save_model(self, request: HttpRequest, obj: Ticket, form: forms.ModelForm[Ticket], change: bool) -> None:
        data: dict[str, Any] = {name: form.cleaned_data.get(name) for name in TicketForm.Meta.fields}
        if not change:
            data["description"] = data["description"] or ""
            ticket = ticket_open(**data, user=request.user)
            obj.pk = ticket.pk
            obj.refresh_from_db()
            return
        current = Ticket.objects.get(pk=obj.pk)
        ticket_update(ticket=current, user=request.user, **{k: data[k] for k in form.changed_data if k in data})

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        for comment in formset.save(commit=False):
            if comment.pk is None and comment.body.strip():
                ticket_comment(ticket=form.instance, body=comment.body, user=request.user)

    def move(self, request: HttpRequest, queryset: QuerySet[Ticket], to: TicketStatus) -> None:
        moved = 0
        for ticket in queryset:
            try:
                ticket_transition(ticket=ticket, to=to, user=request.user)
            except TicketTransitionError as exc:
                self.message_user(request, f"Refused: {exc}", messages.ERROR)
                continue
            moved += 1
        if moved:
            self.message_user(request, f"{moved} ticket(s) now {to.label.lower()}.", messages.SUCCESS)

    @admin.action(description="Assign the selected tickets to…", permissions=["work"])
    def assign(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> HttpResponse | None:
        form = AssignForm(request.POST if "confirm" in request.POST else None)
        if form.is_valid():
            assignee = form.cleaned_data["assignee"]
            for ticket in queryset:
                ticket_update(ticket=ticket, user=request.user, assignee=assignee)
            who = assignee.get_username() if assignee else "nobody"
            self.message_user(request, f"{queryset.count()} ticket(s) assigned to {who}.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Assign {queryset.count()} ticket(s)",
            "opts": self.opts,
            "form": form,
            "objects": list(queryset),
            "action": request.POST.get("action", ""),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/ops/ticket/assign.html", context)


# --- Service log, maintenance due, dispatch log -----------------------------------------------------------------


class ServiceLogForm(forms.ModelForm[ServiceLog]):
    class Meta:
        model = ServiceLog
        fields = ("vehicle", "service_date", "odometer_km", "work_done", "cost", "currency", "next_due_km",
                  "next_due_date")  # fmt: skip


@admin.register(ServiceLog)
class ServiceLogAdmin(PlateSearchAdmin[ServiceLog]):
    form = ServiceLogForm
    plate_lookup = "vehicle__plate"
    change_list_template = "admin/ops/servicelog/change_list.html"
    list_display = ("vehicle", "service_date", "odometer_km", "work_done", "cost", "currency", "next_due_km",
                    "next_due_date", "recorded_by")  # fmt: skip
    list_filter = (("service_date", admin.DateFieldListFilter), "vehicle__cost_centre")
    list_select_related = ("vehicle", "recorded_by")
    search_fields = ("vehicle__plate", "work_done")
    autocomplete_fields = ("vehicle",)
    readonly_fields = ("recorded_by", "created_at")
    show_full_result_count = False

    def save_model(
        self, request: HttpRequest, obj: ServiceLog, form: forms.ModelForm[ServiceLog], change: bool
    ) -> None:
        if change:  # a correction of the record itself (ops' own table); the odometer event stays what it was
            obj.save()
            return
        try:
            entry = service_log_record(user=request.user, **form.cleaned_data)
        except OpsError as exc:
            raise ValidationError(str(exc)) from exc
        obj.pk = entry.pk
        obj.refresh_from_db()

    def get_urls(self) -> list[URLPattern]:
        due = path("due/", self.admin_site.admin_view(self.maintenance_due_view), name="ops_servicelog_due")
        return [due, *super().get_urls()]

    def maintenance_due_view(self, request: HttpRequest) -> HttpResponse:
        """Vehicles due for a service, by km (odometer + derived distance) or by date; `?all=1` lists every plan."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        plan = maintenance_plan()
        show_all = request.GET.get("all") == "1"
        rows = plan if show_all else [row for row in plan if row.due]
        open_tickets = dict(
            Ticket.objects.filter(category=TicketCategory.MAINTENANCE, vehicle_id__in=[row.vehicle_id for row in rows],
                                  status__in=TICKET_OPEN_STATUSES).values_list("vehicle_id", "pk")
        )  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": "Maintenance due",
            "opts": self.opts,
            "rows": [(row, open_tickets.get(row.vehicle_id)) for row in rows],
            "show_all": show_all,
            "planned": len(plan),
            "soon_km": threshold("maintenance_due_soon_km"),
            "soon_days": threshold("maintenance_due_soon_days"),
            "can_open_ticket": request.user.has_perm("ops.add_ticket") and writes_ops(request),
            "zone": settings.DISPLAY_TIME_ZONE,
        }
        return TemplateResponse(request, "admin/ops/maintenance_due.html", context)


@admin.register(DispatchLog)
class DispatchLogAdmin(PlateSearchAdmin[DispatchLog]):
    plate_lookup = "vehicle__plate"
    list_display = ("vehicle", "driver", "destination", "planned_departure", "planned_arrival", "actual_departure",
                    "actual_arrival")  # fmt: skip
    list_filter = (("planned_departure", admin.DateFieldListFilter),)
    list_select_related = ("vehicle", "driver")
    search_fields = ("vehicle__plate", "driver__name", "destination")
    autocomplete_fields = ("vehicle", "driver")
    readonly_fields = ("created_by", "created_at")
    show_full_result_count = False

    def save_model(
        self, request: HttpRequest, obj: DispatchLog, form: forms.ModelForm[DispatchLog], change: bool
    ) -> None:
        if not change:
            obj.created_by_id = request.user.pk
        with pghistory.context(user=request.user.pk, reason="dispatch log"):
            obj.save()


# --- Odometer readings (state, written by the readings projector from ops events) ---------------------------------


class OdometerForm(forms.Form):
    vehicle = forms.ModelChoiceField(queryset=Vehicle.objects.order_by("plate"))
    odometer_km = forms.FloatField(label="Odometer (km)", min_value=0)
    read_at = forms.DateTimeField(label="Read at", help_text="When the odometer showed it (your local time).")
    source = forms.ChoiceField(choices=[("reading", "A reading"), ("correction", "A correction of a wrong reading")])
    note = forms.CharField(required=False, max_length=500)


@admin.register(OdometerReading)
class OdometerReadingAdmin(admin.ModelAdmin[OdometerReading]):
    """Read-only rows (the readings projector's); "Record a reading" writes an `odometer_reading` event to the log."""

    list_display = ("plate", "odometer_km", "source", "read", "recorded_by", "note")
    list_filter = ("source",)
    search_fields = ("plate",)
    ordering = ("-occurred_at",)
    paginator = BoundedCountPaginator
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        # "Add" records a reading: an event in the log, which the projector turns into a row.
        return super().has_add_permission(request) and writes_ops(request)

    @admin.display(description="read at", ordering="occurred_at")
    def read(self, obj: OdometerReading) -> str:
        return local(obj.occurred_at)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OdometerReading], search_term: str
    ) -> tuple[QuerySet[OdometerReading], bool]:
        with contextlib.suppress(ValueError):
            return queryset.filter(plate__contains=normalize_plate(search_term)), False
        return super().get_search_results(request, queryset, search_term)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        with timezone.override(ZoneInfo(settings.DISPLAY_TIME_ZONE)):
            form = OdometerForm(request.POST or None, initial={"vehicle": request.GET.get("vehicle")})
            if request.method == "POST" and form.is_valid():
                data = form.cleaned_data
                try:
                    odometer_record(vehicle=data["vehicle"], odometer_km=data["odometer_km"], read_at=data["read_at"],
                                    user=request.user, source=data["source"], note=data["note"])  # fmt: skip
                except OpsError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(
                        request, f"{data['vehicle']}: {data['odometer_km']:g} km recorded.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(reverse("admin:state_odometerreading_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Record an odometer reading",
            "opts": self.opts,
            "form": form,
            "intro": "Written to the log as an event (a replay keeps it); the latest reading by time is what counts, "
            "so a correction dated now supersedes a wrong reading.",
            "submit": "Record",
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/ops/action_form.html", context)


# --- Driver assignments: a new one is an ops event (the drivers projector applies it to the domain) ----------------


class AssignDriverForm(forms.Form):
    vehicle = forms.ModelChoiceField(queryset=Vehicle.objects.order_by("plate"))
    driver = forms.ModelChoiceField(queryset=Driver.objects.filter(active=True).order_by("name"))
    start = forms.DateTimeField(help_text="Your local time.")
    end = forms.DateTimeField(required=False, help_text="Empty: until further notice.")
    note = forms.CharField(required=False, max_length=150)


class OpsDriverAssignmentAdmin(DriverAssignmentAdmin):
    """The domain's assignment admin, with "add" writing a `driver_assignment` event instead of a row (the drivers
    projector applies it, so a replay restores it). An assignment ends by setting its end; it is never deleted (a
    replay would bring back what the log holds)."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and writes_ops(request)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        with timezone.override(ZoneInfo(settings.DISPLAY_TIME_ZONE)):
            form = AssignDriverForm(request.POST or None)
            if request.method == "POST" and form.is_valid():
                data = form.cleaned_data
                try:
                    driver_assign(vehicle=data["vehicle"], driver=data["driver"], start=data["start"], end=data["end"],
                                  user=request.user, note=data["note"])  # fmt: skip
                except OpsError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, f"{data['driver']} on {data['vehicle']}: recorded.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:domain_driverassignment_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Assign a driver",
            "opts": self.opts,
            "form": form,
            "intro": "Written to the log as an event, applied to the assignments within seconds (a replay keeps it).",
            "submit": "Assign",
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/ops/action_form.html", context)


admin.site.unregister(DriverAssignment)
admin.site.register(DriverAssignment, OpsDriverAssignmentAdmin)
