"""The ops API, two routers whose scopes are set at their mounts in the project's API root:

- `reports_router` (read:fleet): report exports under /api/reports/, CSV streamed or XLSX, with the dashboards'
  filters;
- `ops_router` (write:ops): /api/ops/ — acknowledge an alarm, open / update / comment a ticket, record an odometer
  reading or a service entry. Acknowledgements and odometer readings are appended to the log (ops.services).

In a handler, `request.auth` is the caller (fleet.auth.Principal: `.user`, `.scopes`).
"""

# No `from __future__ import annotations`: ninja reads the signatures (and their schema classes) at import.

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Query, Router, Status
from ninja.errors import HttpError
from pydantic import Field

from domain.models import Device, Driver, Vehicle
from domain.plates import normalize_plate
from domain.schemas import ErrorOut
from ops.models import Ticket
from ops.reports import REPORTS, ReportFilters, report_csv, report_xlsx
from ops.schemas import (
    AcknowledgeIn,
    ActionOut,
    CommentIn,
    CommentOut,
    OdometerIn,
    ServiceIn,
    ServiceOut,
    TicketIn,
    TicketOut,
    TicketUpdateIn,
)
from ops.selectors import alarm_refs
from ops.services import (
    OpsError,
    TicketTransitionError,
    alarms_acknowledge,
    odometer_record,
    service_log_record,
    ticket_comment,
    ticket_open,
    ticket_transition,
    ticket_update,
)
from state.dashboards.api import ViewIn, query_filters, query_moment

reports_router = Router(tags=["reports"])


class ReportIn(ViewIn):
    format: str = Field("csv", pattern="^(csv|xlsx)$")
    since: datetime | None = Field(None, description="start (ISO-8601; default: 7 days before `until`)")
    until: datetime | None = Field(None, description="end (ISO-8601; default: now)")


@reports_router.get(
    "/{name}",
    summary="Export a report as CSV (streamed) or XLSX: trips, parking, alarms, daily_mileage, utilisation",
    response={200: None},
)
def report(request: HttpRequest, name: str, query: Query[ReportIn]) -> FileResponse | StreamingHttpResponse:
    if name not in REPORTS:
        raise HttpError(404, f"no report {name!r}; reports: {', '.join(REPORTS)}")
    view = query_filters(query.filters)
    until = query_moment(query.until) or timezone.now()
    since = query_moment(query.since) or until - timedelta(days=7)
    if until <= since:
        raise HttpError(422, "the date range is empty: `until` must be after `since`")
    filters = ReportFilters(
        since=since, until=until, cost_centres=view.cost_centres, assigned_cities=view.assigned_cities,
        vehicle_numbers=view.vehicle_numbers, accounts=view.accounts,
    )  # fmt: skip
    stem = f"{name}-{since:%Y%m%d}-{until:%Y%m%d}"
    if query.format == "xlsx":
        return FileResponse(report_xlsx(REPORTS[name], filters), as_attachment=True, filename=f"{stem}.xlsx")
    response = StreamingHttpResponse(report_csv(REPORTS[name], filters), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
    return response


# --- The write:ops API: /api/ops/ (the scope is set at the mount, in the project's API root) ------------------------

ops_router = Router(tags=["ops"])

NOT_FOUND = 404


def _user(request: HttpRequest) -> Any:
    return request.auth.user  # type: ignore[attr-defined]  # ninja sets request.auth on authentication


def _error(status: int, code: str, detail: str) -> Any:
    return Status(status, {"detail": detail, "code": code})


def _vehicle(plate: str) -> Vehicle | None:
    try:
        return Vehicle.objects.filter(plate=normalize_plate(plate)).first()
    except ValueError:
        return None


def _ticket(ticket_id: int) -> Ticket | None:
    related = ("vehicle", "device", "driver", "assignee")
    return Ticket.objects.select_related(*related).filter(pk=ticket_id).first()


def _assignee(username: str) -> Any:
    return get_user_model()._default_manager.filter(username=username, is_active=True).first()


@ops_router.post(
    "/alarms/{alarm_id}/acknowledge",
    response={202: ActionOut, 404: ErrorOut, 409: ErrorOut},
    summary="Acknowledge an alarm",
)
def alarm_acknowledge(request: HttpRequest, alarm_id: int, payload: AcknowledgeIn) -> Any:
    """Written to the log as an `alarm_ack` event (so a replay keeps it): the alarm shows acknowledged, by whom and
    when, once the worker has folded it (within a second or so). 409 when it already is."""
    written, skipped = alarms_acknowledge(parsed_ids=[alarm_id], user=_user(request), note=payload.note)
    if written:
        return Status(202, {"raw_id": written[0], "detail": f"alarm #{alarm_id}: acknowledgement recorded"})
    if skipped and "no such alarm" in skipped[0]:
        return _error(NOT_FOUND, "not_found", skipped[0])
    return _error(409, "already_acknowledged", skipped[0])


@ops_router.post("/tickets", response={201: TicketOut, 404: ErrorOut, 422: ErrorOut}, summary="Open a ticket")
def ticket_create(request: HttpRequest, payload: TicketIn) -> Any:
    """The SLA deadline follows from the priority; a vehicle, device, driver and alarm may be linked."""
    vehicle = device = driver = assignee = None
    if payload.plate and (vehicle := _vehicle(payload.plate)) is None:
        return _error(NOT_FOUND, "not_found", f"no vehicle {payload.plate!r}")
    if payload.imei and (device := Device.objects.filter(imei=payload.imei).first()) is None:
        return _error(NOT_FOUND, "not_found", f"no device with IMEI {payload.imei}")
    if payload.driver_id is not None and (driver := Driver.objects.filter(pk=payload.driver_id).first()) is None:
        return _error(NOT_FOUND, "not_found", f"no driver #{payload.driver_id}")
    if payload.assignee and (assignee := _assignee(payload.assignee)) is None:
        return _error(NOT_FOUND, "not_found", f"no active user {payload.assignee!r}")
    alarm_type = ""
    if payload.alarm_id is not None:
        ref = alarm_refs(parsed_ids=[payload.alarm_id]).get(payload.alarm_id)
        if ref is None:
            return _error(NOT_FOUND, "not_found", f"no alarm #{payload.alarm_id}")
        alarm_type = ref.normalised_name
    ticket = ticket_open(
        title=payload.title, category=payload.category, priority=payload.priority, description=payload.description,
        vehicle=vehicle, device=device, driver=driver, alarm_parsed_id=payload.alarm_id, alarm_type=alarm_type,
        assignee=assignee, due_at=payload.due_at, user=_user(request),
    )  # fmt: skip
    return Status(201, _ticket(ticket.pk))


@ops_router.patch(
    "/tickets/{ticket_id}",
    response={200: TicketOut, 404: ErrorOut, 409: ErrorOut},
    summary="Update a ticket: fields, assignee, status",
)
def ticket_change(request: HttpRequest, ticket_id: int, payload: TicketUpdateIn) -> Any:
    """Fields first, then the status move (open → in_progress ⇄ waiting → resolved → closed; the database refuses
    any other: 409, with the moves allowed from where the ticket is)."""
    ticket = _ticket(ticket_id)
    if ticket is None:
        return _error(NOT_FOUND, "not_found", f"no ticket #{ticket_id}")
    user = _user(request)
    changes: dict[str, Any] = payload.dict(exclude_unset=True, exclude={"status", "note"})
    if "assignee" in changes:
        username = changes["assignee"]
        changes["assignee"] = _assignee(username) if username else None
        if username and changes["assignee"] is None:
            return _error(NOT_FOUND, "not_found", f"no active user {username!r}")
    with transaction.atomic():
        ticket_update(
            ticket=ticket, user=user, **{k: v for k, v in changes.items() if v is not None or k == "assignee"}
        )
        if payload.status is not None and payload.status != ticket.status:
            try:
                ticket_transition(ticket=ticket, to=payload.status, user=user, note=payload.note)
            except TicketTransitionError as exc:
                transaction.set_rollback(True)
                return _error(409, "transition_refused", str(exc))
        elif payload.note:
            ticket_comment(ticket=ticket, body=payload.note, user=user)
    return Status(200, _ticket(ticket.pk))


@ops_router.post(
    "/tickets/{ticket_id}/comments", response={201: CommentOut, 404: ErrorOut}, summary="Comment on a ticket"
)
def ticket_comment_add(request: HttpRequest, ticket_id: int, payload: CommentIn) -> Any:
    ticket = _ticket(ticket_id)
    if ticket is None:
        return _error(NOT_FOUND, "not_found", f"no ticket #{ticket_id}")
    return Status(201, ticket_comment(ticket=ticket, body=payload.body, user=_user(request)))


@ops_router.post(
    "/vehicles/{plate}/odometer",
    response={202: ActionOut, 404: ErrorOut, 422: ErrorOut},
    summary="Record (or correct) a vehicle's odometer",
)
def vehicle_odometer(request: HttpRequest, plate: str, payload: OdometerIn) -> Any:
    """Written to the log as an `odometer_reading` event; the vehicle's latest reading by `read_at` is what
    counts, so a correction dated now supersedes a wrong reading."""
    vehicle = _vehicle(plate)
    if vehicle is None:
        return _error(NOT_FOUND, "not_found", f"no vehicle {plate!r}")
    try:
        raw_id = odometer_record(
            vehicle=vehicle, odometer_km=payload.odometer_km, read_at=payload.read_at or timezone.now(),
            user=_user(request), source=payload.source, note=payload.note,
        )  # fmt: skip
    except OpsError as exc:
        return _error(422, "refused", str(exc))
    return Status(202, {"raw_id": raw_id, "detail": f"{vehicle.plate}: {payload.odometer_km:g} km recorded"})


@ops_router.post(
    "/vehicles/{plate}/service",
    response={201: ServiceOut, 404: ErrorOut, 422: ErrorOut},
    summary="Record a service entry (and when the next one is due)",
)
def vehicle_service(request: HttpRequest, plate: str, payload: ServiceIn) -> Any:
    """The entry goes to the service log; its odometer, when given, is also recorded as an odometer reading."""
    vehicle = _vehicle(plate)
    if vehicle is None:
        return _error(NOT_FOUND, "not_found", f"no vehicle {plate!r}")
    try:
        entry = service_log_record(vehicle=vehicle, user=_user(request), **payload.dict())
    except OpsError as exc:
        return _error(422, "refused", str(exc))
    return Status(201, entry)
