"""The view endpoints under /api/views/ (read:fleet and the dashboards rate limit, set at the mount in
fleet/api.py) and the report exports under /api/reports/."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema
from ninja.errors import HttpError
from pydantic import Field

from fleet.reports import REPORTS, ReportFilters, report_csv, report_xlsx
from fleet.schemas import DispatchViewOut, HistoryViewOut, LiveViewOut, OverviewViewOut
from fleet.serve import MAX_HISTORY_DAYS, ViewFilters, dispatch_view, history_view, live_view, overview_view

router = Router(tags=["views"])
reports_router = Router(tags=["reports"])

FILTERS_HELP = (
    'JSON object, all keys optional: {"cost_centre": [..], "assigned_city": [..], "vehicle_numbers": [..], '
    '"account": [..], "operational_state": ["moving", "idling", "parked", "offline", "unknown"]}'
)


class ViewIn(Schema):
    filters: str | None = Field(None, description=FILTERS_HELP, max_length=4000)


class HistoryIn(ViewIn):
    since: datetime | None = Field(None, description="start (ISO-8601; default: `until` minus `days`)")
    until: datetime | None = Field(None, description="end (ISO-8601; default: now)")
    days: int = Field(1, ge=1, le=MAX_HISTORY_DAYS, description="length of the range when `since` is not given")
    tolerance_m: float = Field(10.0, ge=0, le=1000, description="line simplification tolerance in metres")


class DispatchIn(ViewIn):
    lat: float = Field(..., ge=-90, le=90)
    lng: float = Field(..., ge=-180, le=180)
    limit: int = Field(10, ge=1, le=100)


class ReportIn(ViewIn):
    format: str = Field("csv", pattern="^(csv|xlsx)$")
    since: datetime | None = Field(None, description="start (ISO-8601; default: 7 days before `until`)")
    until: datetime | None = Field(None, description="end (ISO-8601; default: now)")


def _payload(body: dict) -> HttpResponse:
    """A view payload as JSON, without a second pass through its schema: the response schemas document the
    contract (OpenAPI) and the tests validate every view's payload against them, but re-validating 10,000
    features per request cost more than building them."""
    return HttpResponse(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), content_type="application/json")


def _filters(raw: str | None) -> ViewFilters:
    if raw and "\x00" in raw:
        raise HttpError(422, "filters: NUL characters are not allowed")
    try:
        return ViewFilters.from_json(raw)
    except ValueError as exc:
        raise HttpError(422, f"filters: {exc}") from None


# Fleet data lives between these years; anything outside is a typo, refused before date arithmetic overflows.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise HttpError(422, f"dates must fall between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


@router.get("/live", response=LiveViewOut, summary="Every vehicle's live position and state")
def live(request: HttpRequest, query: Query[ViewIn]) -> HttpResponse:
    return _payload(live_view(_filters(query.filters)))


@router.get("/history", response=HistoryViewOut, summary="Trips, stops and alarms over a date range (≤ 31 days)")
def history(request: HttpRequest, query: Query[HistoryIn]) -> HttpResponse:
    until = _aware(query.until) or timezone.now()
    since = _aware(query.since) or until - timedelta(days=query.days)
    try:
        return _payload(history_view(_filters(query.filters), since=since, until=until, tolerance_m=query.tolerance_m))
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None


@router.get("/dispatch", response=DispatchViewOut, summary="The vehicles nearest a point, with their state")
def dispatch(request: HttpRequest, query: Query[DispatchIn]) -> HttpResponse:
    return _payload(dispatch_view(_filters(query.filters), lat=query.lat, lng=query.lng, limit=query.limit))


@router.get("/overview", response=OverviewViewOut, summary="Fleet overview per cost centre, today and alarms")
def overview(request: HttpRequest, query: Query[ViewIn]) -> HttpResponse:
    return _payload(overview_view(_filters(query.filters)))


@reports_router.get(
    "/{name}",
    summary="Export a report as CSV (streamed) or XLSX: trips, parking, alarms, daily_mileage, utilisation",
    response={200: None},
)
def report(request: HttpRequest, name: str, query: Query[ReportIn]) -> FileResponse | StreamingHttpResponse:
    if name not in REPORTS:
        raise HttpError(404, f"no report {name!r}; reports: {', '.join(REPORTS)}")
    view = _filters(query.filters)
    until = _aware(query.until) or timezone.now()
    since = _aware(query.since) or until - timedelta(days=7)
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
