"""Contracts of the view endpoints: {summary, geojson, slo_status}, render-ready."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import AfterValidator

from slo.schemas import SloStatusOut

# Fleet data lives between these years; a time outside them, or with a UTC offset PostgreSQL cannot store (more
# than 15:59), is a client's error (422), never a 500 from the database.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


def fleet_moment(moment: datetime) -> datetime:
    offset = moment.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise ValueError("a UTC offset must be within ±15:59")
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ValueError(f"dates must fall between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return moment


# A time a client sends: use it for every datetime field of an input schema.
FleetMoment = Annotated[datetime, AfterValidator(fleet_moment)]


class PointOut(Schema):
    type: Literal["Point"]
    coordinates: list[float]


class GeometryOut(Schema):
    type: str
    coordinates: list[Any]


class LiveVehicleOut(Schema):
    vehicle_id: int | None
    device_id: int
    imei: str
    device_model: str | None
    plate: str | None
    plate_tail: str
    driver: str | None
    cost_centre: str | None
    cost_centre_colour: str
    assigned_city: str | None
    account: str
    operational_state: Literal["moving", "idling", "parked", "offline", "unknown"]
    freshness: Literal["fresh", "stale", "late", "none"]
    suspended: bool
    lifecycle: Literal["active", "suspended", "provisioned"]
    style_class: str
    speed_kmh: float | None
    heading: float | None
    device_time: str | None
    age_s: int | None
    address: str | None
    distance_m: int | None = None
    available: bool | None = None


class LiveFeatureOut(Schema):
    type: Literal["Feature"]
    id: int | str
    geometry: PointOut | None
    properties: LiveVehicleOut


class LiveCollectionOut(Schema):
    type: Literal["FeatureCollection"]
    features: list[LiveFeatureOut]


class LiveSummaryOut(Schema):
    vehicles: int
    by_state: dict[str, int]
    by_freshness: dict[str, int]
    suspended: int
    freshness_line: str
    generated_at: str
    time_zone: str


class LiveViewOut(Schema):
    summary: LiveSummaryOut
    geojson: LiveCollectionOut
    slo_status: SloStatusOut


class LiveMomentOut(Schema):
    generated_at: str
    time_zone: str


class LiveDeltaOut(Schema):
    """The answer to `since=<cursor>`: only the vehicles whose features changed since that answer (whole features;
    merge them by `id`), the ids of vehicles that changed and no longer match the filters (drop them), the SLO block,
    and the next cursor. The counts of `summary` are those of the merged collection; a delta does not repeat them."""

    delta: Literal[True]
    cursor: str
    summary: LiveMomentOut
    geojson: LiveCollectionOut
    removed: list[int | str]
    slo_status: SloStatusOut


class HistoryFeatureOut(Schema):
    type: Literal["Feature"]
    geometry: GeometryOut | None
    properties: dict[str, Any]


class HistoryCollectionOut(Schema):
    type: Literal["FeatureCollection"]
    features: list[HistoryFeatureOut]


class HistorySummaryOut(Schema):
    vehicles: int
    distance_km: float
    driving_s: int
    idle_s: int
    trips: int
    stops: int
    alarms: int
    max_speed_kmh: float | None
    since: str
    until: str
    time_zone: str


class HistoryViewOut(Schema):
    summary: HistorySummaryOut
    geojson: HistoryCollectionOut
    slo_status: SloStatusOut


class DispatchFeatureOut(Schema):
    type: Literal["Feature"]
    id: int | str | None = None
    geometry: PointOut | None
    properties: dict[str, Any]


class DispatchCollectionOut(Schema):
    type: Literal["FeatureCollection"]
    features: list[DispatchFeatureOut]


class DispatchSummaryOut(Schema):
    origin: dict[str, float]
    vehicles: int
    available: int
    nearest_available_m: int | None
    generated_at: str


class DispatchViewOut(Schema):
    summary: DispatchSummaryOut
    geojson: DispatchCollectionOut
    slo_status: SloStatusOut


class RecentAlarmOut(Schema):
    vehicle_id: int | None
    plate: str
    occurred_at: str | None
    code: str | None
    name: str | None
    severity: str
    cleared: bool | None


class OverviewSummaryOut(LiveSummaryOut):
    today: dict[str, Any]
    alarms_24h: dict[str, int]
    recent_alarms: list[RecentAlarmOut]
    cost_centres: list[dict[str, Any]]


class OverviewViewOut(Schema):
    summary: OverviewSummaryOut
    geojson: LiveCollectionOut
    slo_status: SloStatusOut


class OverviewDeltaOut(Schema):
    """The overview's answer to `since=<cursor>`: its whole summary, and the vehicles as a live delta."""

    delta: Literal[True]
    cursor: str
    summary: OverviewSummaryOut
    geojson: LiveCollectionOut
    removed: list[int | str]
    slo_status: SloStatusOut
