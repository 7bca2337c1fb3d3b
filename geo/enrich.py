"""What geo adds to the state layer's view payloads, after the state selector ran: the cached addresses of the
points they show, and the nearest depot of a dispatch. State cannot read geo's tables (geo sits above it), so the
project's API root wraps the view router's operations with `view_enrichment` (fleet/api.py), which may import both;
docs/architecture.md, "Geocoding".

- Features that carry `address` (one per vehicle: live, dispatch, overview) get it filled where geo_addresses
  knows the point; trip starts, trip ends and stops (history) get an `address` too.
- A dispatch payload (its summary names an origin) gets `summary.nearest_depot`: the depot nearest the origin, of
  the accounts its filters name or of all, with its distance; null when there is none.

An address geocoded after a live answer changes that answer's features with no state row changing: `ADDRESS_CHANGES`,
registered with the live view's validators and deltas (state.dashboards.sync) when the app is ready, says so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from geo.selectors import addresses_for, nearest_depot
from state.dashboards.sync import Since

# History features that name a place.
ADDRESSED_KINDS = frozenset({"trip_start", "trip_end", "stop"})


def _point(feature: dict[str, Any]) -> tuple[float, float] | None:
    geometry = feature.get("geometry") or {}
    if geometry.get("type") != "Point":
        return None
    lng, lat = geometry["coordinates"][:2]
    return float(lat), float(lng)


def payload_addresses(payload: dict[str, Any]) -> bool:
    """Fill in the addresses of a view payload's features; True when the payload was changed."""
    features = (payload.get("geojson") or {}).get("features") or []
    targets = []
    for feature in features:
        properties = feature.get("properties") or {}
        wants = ("address" in properties and properties["address"] is None) or properties.get("kind") in ADDRESSED_KINDS
        point = _point(feature) if wants else None
        if point is not None:
            targets.append((properties, point))
    if not targets:
        return False
    for (properties, _), address in zip(targets, addresses_for([p for _, p in targets]), strict=True):
        properties["address"] = address
    return True


def _filter_accounts(request: HttpRequest) -> list[str]:
    """The account names of the request's `filters` (already validated by the view that answered)."""
    try:
        filters = orjson.loads(request.GET.get("filters") or "{}")
    except orjson.JSONDecodeError:
        return []
    accounts = filters.get("account") if isinstance(filters, dict) else None
    if accounts is None:
        return []
    return [str(a) for a in (accounts if isinstance(accounts, list) else [accounts])]


def payload_nearest_depot(payload: dict[str, Any], request: HttpRequest) -> bool:
    summary = payload.get("summary")
    origin = summary.get("origin") if isinstance(summary, dict) else None
    if not isinstance(origin, dict) or not {"lat", "lng"} <= set(origin):
        return False
    assert isinstance(summary, dict)
    summary["nearest_depot"] = nearest_depot(
        float(origin["lat"]), float(origin["lng"]), accounts=_filter_accounts(request)
    )
    return True


Enricher = Callable[[dict[str, Any], HttpRequest], bool]
ENRICHERS: list[Enricher] = [lambda payload, request: payload_addresses(payload), payload_nearest_depot]


def view_enrichment(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a view operation whose answer is a JSON HttpResponse: decode it, let each enricher add to it, encode it
    again when one did. Other answers (errors, files) pass through untouched."""

    @wraps(view)
    def enriched(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        if not (
            isinstance(response, HttpResponse)
            and response.status_code == 200
            and response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        payload = orjson.loads(response.content)
        if not isinstance(payload, dict):
            return response
        changed = [enrich(payload, request) for enrich in ENRICHERS]
        if any(changed):
            response.content = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
        return response

    return enriched


# --- Addresses that changed since a live answer ------------------------------------------------------------------

# geo_addresses is written by one statement per address in autocommit (geocoding.address_store), stamped with the
# statement's now(): a row committed after a cursor's horizon is stamped no earlier than the cursor's moment less the
# length of that statement. This margin is far longer; within it, the row's transaction id decides exactly.
ADDRESS_WRITE_MARGIN = timedelta(minutes=5)

_CHANGED_KEYS = """
SELECT a.lat_key, a.lng_key FROM geo_addresses a
 WHERE a.decimals = %(decimals)s AND a.geocoded_at >= %(from)s AND {newer}
"""

# Live positions at (or next to: the payload's rounding of a coordinate and SQL's may differ by one at a half) a
# changed address's rounded coordinate.
_DEVICES_AT = """
WITH changed AS ({changed}),
keys AS (SELECT DISTINCT c.lat_key + dy AS lat_key, c.lng_key + dx AS lng_key
           FROM changed c, generate_series(-1, 1) dy, generate_series(-1, 1) dx)
SELECT l.device_id FROM state_live_positions l
  JOIN keys k ON k.lat_key = round(ST_Y(l.point::geometry) * %(scale)s)::int
             AND k.lng_key = round(ST_X(l.point::geometry) * %(scale)s)::int
"""


class AddressChanges:
    """The live view's change source for addresses (state.dashboards.sync.ChangeSource)."""

    def _params(self, since: Since) -> dict[str, Any]:
        decimals = settings.GEOCODE_ROUND_DECIMALS
        return {**since.params, "decimals": decimals, "scale": 10**decimals, "from": since.at - ADDRESS_WRITE_MARGIN}

    def changed(self, since: Since) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT EXISTS ({_CHANGED_KEYS.format(newer=since.newer('a'))})", self._params(since))
            found: bool = cursor.fetchone()[0]
            return found

    def devices(self, since: Since) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                _DEVICES_AT.format(changed=_CHANGED_KEYS.format(newer=since.newer("a"))), self._params(since)
            )
            return [device_id for (device_id,) in cursor.fetchall()]


ADDRESS_CHANGES = AddressChanges()
