"""The view endpoints under /api/views/ (read:fleet and the dashboards rate limit are set at the mount, in the
project's API root). The query helpers (filters, dates) are shared with the report exports (ops/api.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema
from ninja.errors import HttpError
from pydantic import Field

from state.dashboards.schemas import DispatchViewOut, HistoryViewOut, LiveViewOut, OverviewViewOut, fleet_moment
from state.dashboards.selectors import (
    MAX_HISTORY_DAYS,
    ViewFilters,
    dispatch_view,
    history_view,
    live_view,
    overview_view,
)

router = Router(tags=["views"])

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


def _payload(body: dict[str, Any]) -> HttpResponse:
    """A view payload as JSON, without a second pass through its schema: the response schemas document the
    contract (OpenAPI) and the tests validate every view's payload against them, but re-validating 10,000
    features per request cost more than building them."""
    return HttpResponse(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), content_type="application/json")


def query_filters(raw: str | None) -> ViewFilters:
    if raw and "\x00" in raw:
        raise HttpError(422, "filters: NUL characters are not allowed")
    try:
        return ViewFilters.from_json(raw)
    except ValueError as exc:
        raise HttpError(422, f"filters: {exc}") from None


# Fleet data lives between these years; anything outside is a typo, refused before date arithmetic overflows.


def query_moment(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        fleet_moment(moment)
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


@router.get("/live", response=LiveViewOut, summary="Every vehicle's live position and state")
def live(request: HttpRequest, query: Query[ViewIn]) -> HttpResponse:
    return _payload(live_view(query_filters(query.filters)))


@router.get("/history", response=HistoryViewOut, summary="Trips, stops and alarms over a date range (≤ 31 days)")
def history(request: HttpRequest, query: Query[HistoryIn]) -> HttpResponse:
    until = query_moment(query.until) or timezone.now()
    since = query_moment(query.since) or until - timedelta(days=query.days)
    try:
        return _payload(
            history_view(query_filters(query.filters), since=since, until=until, tolerance_m=query.tolerance_m)
        )
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None


@router.get("/dispatch", response=DispatchViewOut, summary="The vehicles nearest a point, with their state")
def dispatch(request: HttpRequest, query: Query[DispatchIn]) -> HttpResponse:
    return _payload(dispatch_view(query_filters(query.filters), lat=query.lat, lng=query.lng, limit=query.limit))


@router.get("/overview", response=OverviewViewOut, summary="Fleet overview per cost centre, today and alarms")
def overview(request: HttpRequest, query: Query[ViewIn]) -> HttpResponse:
    return _payload(overview_view(query_filters(query.filters)))
