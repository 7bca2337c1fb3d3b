"""Report exports under /api/reports/ (read:fleet, set at the mount in the project's API root): CSV streamed or
XLSX, with the dashboards' filters."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Query, Router
from ninja.errors import HttpError
from pydantic import Field

from ops.reports import REPORTS, ReportFilters, report_csv, report_xlsx
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
