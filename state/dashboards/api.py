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

from state.dashboards import sync
from state.dashboards.schemas import (
    DispatchViewOut,
    HistoryViewOut,
    LiveDeltaOut,
    LiveViewOut,
    OverviewDeltaOut,
    OverviewViewOut,
    fleet_moment,
)
from state.dashboards.selectors import (
    MAX_HISTORY_DAYS,
    ViewFilters,
    dispatch_view,
    history_view,
    live_moment,
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


class LiveIn(ViewIn):
    since: str | None = Field(
        None,
        max_length=256,
        description="the cursor of an earlier answer (its X-Fleet-Cursor header, or a delta's `cursor`): only what "
        "changed since then. A cursor of other filters, another user or older than LIVE_CURSOR_MAX_AGE_S gets the "
        "whole view.",
    )


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


# --- The live feature set on the wire (state/dashboards/sync.py; docs/architecture.md, "The live view on the wire")

CURSOR_HEADER = "X-Fleet-Cursor"


def _user_key(request: HttpRequest) -> str:
    principal = getattr(request, "auth", None)
    return str(getattr(getattr(principal, "user", None), "pk", ""))


def _validators(request: HttpRequest) -> list[str]:
    """The entity tags of If-None-Match, without W/ and quotes (ours are weak; comparison is weak)."""
    header = request.headers.get("If-None-Match", "")
    return [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",") if tag.strip()][:8]


def _synced(response: HttpResponse, cursor: sync.Cursor) -> HttpResponse:
    """An answer with its validator and cursor. `private, no-cache`: a browser may keep it but asks first every time;
    no shared cache keeps it."""
    token = cursor.token()
    response["ETag"] = f'W/"{token}"'
    response[CURSOR_HEADER] = token
    response["Cache-Control"] = "private, no-cache"
    return response


def _not_modified(request: HttpRequest, scope: bytes, now: datetime) -> HttpResponse | None:
    for token in _validators(request):
        cursor = sync.Cursor.read(token, scope)
        if cursor is not None and sync.unchanged(cursor, now=now):
            return _synced(HttpResponse(status=304), cursor)
    return None


@router.get(
    "/live",
    response={200: LiveViewOut | LiveDeltaOut, 304: None},
    summary="Every vehicle's live position and state",
    description="With `If-None-Match` (the ETag of an earlier answer): 304 while nothing it shows has changed. With "
    "`since`: only what changed since that answer (a delta), else the whole view.",
)
def live(request: HttpRequest, query: Query[LiveIn]) -> HttpResponse:
    filters = query_filters(query.filters)
    scope = sync.view_scope(filters, _user_key(request))
    now = timezone.now()
    since = sync.Cursor.read(query.since, scope)
    if since is None and (unchanged := _not_modified(request, scope, now)) is not None:
        return unchanged
    if since is not None and (changes := sync.delta(filters, since, scope=scope, now=now)) is not None:
        if changes.unchanged and query.since in _validators(request):
            return _synced(HttpResponse(status=304), changes.cursor)
        body = {
            "delta": True,
            "cursor": changes.cursor.token(),
            "summary": live_moment(now),
            "geojson": {"type": "FeatureCollection", "features": changes.features},
            "removed": changes.removed,
            "slo_status": changes.slo_status,
        }
        return _synced(_payload(body), changes.cursor)
    body, cursor = sync.full(scope, now=now, build=lambda: live_view(filters, now=now))
    return _synced(_payload(body), cursor)


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


@router.get(
    "/overview",
    response={200: OverviewViewOut | OverviewDeltaOut},
    summary="Fleet overview per cost centre, today and alarms",
    description="With `since` (a cursor of the live view or of this one): the whole summary, and the vehicles as a "
    "live delta.",
)
def overview(request: HttpRequest, query: Query[LiveIn]) -> HttpResponse:
    filters = query_filters(query.filters)
    scope = sync.view_scope(filters, _user_key(request))
    now = timezone.now()
    since = sync.Cursor.read(query.since, scope)
    build = lambda: overview_view(filters, now=now)  # noqa: E731 - one builder, two callers
    if since is not None and (changes := sync.delta(filters, since, scope=scope, now=now, also=build)) is not None:
        whole = changes.also
        body = {
            "delta": True,
            "cursor": changes.cursor.token(),
            "summary": whole["summary"],
            "geojson": {"type": "FeatureCollection", "features": changes.features},
            "removed": changes.removed,
            "slo_status": whole["slo_status"],
        }
        return _synced(_payload(body), changes.cursor)
    body, cursor = sync.full(scope, now=now, build=build)
    return _synced(_payload(body), cursor)
