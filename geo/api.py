"""The geo endpoints. Scopes and rate limits are set where the routers are mounted (fleet/api.py): routing is
read:fleet and the ROUTES limit per client IP; points of interest are read:fleet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from ninja.errors import HttpError
from pydantic import Field

from geo.models import PoiKind
from geo.routing import RouteRefused
from geo.schemas import PoiCollectionOut, RouteIn, RouteOut, route_payload
from geo.selectors import pois_geojson
from geo.services import route_find

routes_router = Router(tags=["routes"])
pois_router = Router(tags=["pois"])

# Departures outside these years are typos, refused before time-zone arithmetic overflows.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def _departure(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise HttpError(422, f"depart_at must fall between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


@routes_router.post(
    "",
    response=RouteOut,
    summary="The fastest route between two points",
    description=(
        "Both ends are snapped to their nearest road segment (farther than the route_snap_max_m threshold: 422). "
        "Each segment is costed at its observed speed for the departure's weekday and hour when enough map-matched "
        "samples exist, else at its maxspeed, else at its class speed; `observed_basis` gives the share of the length "
        "costed each way, and every segment of `route_geojson` names its own basis."
    ),
)
def route(request: HttpRequest, body: RouteIn) -> dict[str, Any]:
    try:
        found = route_find(
            (body.origin.lat, body.origin.lng),
            (body.destination.lat, body.destination.lng),
            depart_at=_departure(body.depart_at),
        )
    except RouteRefused as exc:
        raise HttpError(422, str(exc)) from None
    return route_payload(found)


class PoisIn(Schema):
    kind: list[PoiKind] = Field(default_factory=list, description="hq, depot, customer (repeat for several)")
    account: list[str] = Field(default_factory=list, description="account names (repeat for several)")


@pois_router.get("", response=PoiCollectionOut, summary="Points of interest: headquarters, depots, customers")
def pois(request: HttpRequest, query: Query[PoisIn]) -> dict[str, Any]:
    return pois_geojson(kinds=[str(k) for k in query.kind], accounts=[a[:100] for a in query.account])
