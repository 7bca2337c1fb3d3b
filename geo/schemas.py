"""Contracts of the geo endpoints: routing (POST /api/routes), points of interest (GET /api/pois)."""

from __future__ import annotations

from typing import Any, Literal

from ninja import Schema
from pydantic import Field

from state.dashboards.schemas import FleetMoment


class LatLngIn(Schema):
    lat: float = Field(..., ge=-90, le=90)
    lng: float = Field(..., ge=-180, le=180)


class RouteIn(Schema):
    origin: LatLngIn
    destination: LatLngIn
    depart_at: FleetMoment | None = Field(
        None, description="departure (ISO-8601; default now); picks the observed speeds of its weekday and hour"
    )


class LineStringOut(Schema):
    type: Literal["LineString"]
    coordinates: list[list[float]]


class RouteSegmentOut(Schema):
    seq: int = Field(..., description="place on the route, from 1")
    way_id: int = Field(..., description="geo_ways.id of the road segment")
    osm_id: int
    name: str
    highway: str
    basis: Literal["observed", "maxspeed", "class_default"] = Field(
        ..., description="where the segment's speed came from"
    )
    speed_kmh: float
    length_m: float
    duration_s: float


class RouteFeatureOut(Schema):
    type: Literal["Feature"]
    geometry: LineStringOut
    properties: RouteSegmentOut


class RouteCollectionOut(Schema):
    type: Literal["FeatureCollection"]
    features: list[RouteFeatureOut]


class ObservedBasisOut(Schema):
    """Shares of the route's length (0 to 1, summing to 1) costed at each kind of speed."""

    observed: float = Field(..., description="map-matched speeds of the departure's weekday and hour")
    maxspeed: float = Field(..., description="OSM maxspeed tags")
    class_default: float = Field(..., description="the default speed of the road class")


class RouteOut(Schema):
    route_geojson: RouteCollectionOut
    eta_sec: float
    distance_m: float
    observed_basis: ObservedBasisOut


def route_payload(route: Any) -> dict[str, Any]:
    return {
        "route_geojson": {"type": "FeatureCollection", "features": route.features},
        "eta_sec": route.eta_sec,
        "distance_m": route.distance_m,
        "observed_basis": route.observed_basis,
    }


class PointGeometryOut(Schema):
    type: Literal["Point"]
    coordinates: list[float]


class PoiPropertiesOut(Schema):
    name: str
    kind: Literal["hq", "depot", "customer"]
    account: str
    style_class: str


class PoiFeatureOut(Schema):
    type: Literal["Feature"]
    id: str
    geometry: PointGeometryOut
    properties: PoiPropertiesOut


class PoiCollectionOut(Schema):
    type: Literal["FeatureCollection"]
    features: list[PoiFeatureOut]
