"""Reads of the geo layer: whether a road graph exists and which file it came from; cached addresses; points of
interest and the nearest depot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection

from geo.models import GraphLoad


def road_graph_current_load() -> GraphLoad | None:
    """The load whose graph is in geo_ways now (the latest), or None when no graph was ever loaded."""
    return GraphLoad.objects.order_by("-loaded_at", "-id").first()


def road_graph_exists() -> bool:
    return GraphLoad.objects.exists()


def addresses_for(points: Sequence[tuple[float, float]]) -> list[str | None]:
    """The cached address of each (lat, lng) (geo_addresses, by the coordinate rounded to GEOCODE_ROUND_DECIMALS),
    or None where none is known yet. One query, whatever the number of points."""
    if not points:
        return []
    scale = 10**settings.GEOCODE_ROUND_DECIMALS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT u.i, a.address"
            "  FROM unnest(%s::int[], %s::int[], %s::int[]) AS u(i, lat_key, lng_key)"
            "  JOIN geo_addresses a ON a.decimals = %s AND a.lat_key = u.lat_key AND a.lng_key = u.lng_key"
            " WHERE a.address <> ''",
            [
                list(range(len(points))),
                [round(lat * scale) for lat, _ in points],
                [round(lng * scale) for _, lng in points],
                settings.GEOCODE_ROUND_DECIMALS,
            ],
        )
        found: dict[int, str] = dict(cursor.fetchall())
    return [found.get(i) for i in range(len(points))]


def pois_geojson(*, kinds: Sequence[str] = (), accounts: Sequence[str] = ()) -> dict[str, Any]:
    """Points of interest as a GeoJSON FeatureCollection (optionally of some kinds, of some accounts by name)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id, p.name, p.kind, a.name, round(ST_X(p.point)::numeric, 6)::float8,"
            "       round(ST_Y(p.point)::numeric, 6)::float8"
            "  FROM geo_pois p JOIN domain_accounts a ON a.id = p.account_id"
            " WHERE (cardinality(%(kinds)s::text[]) = 0 OR p.kind = ANY(%(kinds)s::text[]))"
            "   AND (cardinality(%(accounts)s::text[]) = 0 OR a.name = ANY(%(accounts)s::text[]))"
            " ORDER BY a.name, p.kind, p.name",
            {"kinds": list(kinds), "accounts": list(accounts)},
        )
        rows = cursor.fetchall()
    features = [
        {
            "type": "Feature",
            "id": f"poi-{poi_id}",
            "geometry": {"type": "Point", "coordinates": [lng, lat]},
            "properties": {"name": name, "kind": kind, "account": account, "style_class": f"poi poi-{kind}"},
        }
        for poi_id, name, kind, account, lng, lat in rows
    ]
    return {"type": "FeatureCollection", "features": features}


def nearest_depot(lat: float, lng: float, *, accounts: Sequence[str] = ()) -> dict[str, Any] | None:
    """The depot nearest a point (geodesic distance, among the nearest few by the index), of some accounts by name
    or of all; None when there is none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH o AS (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326) AS g)"
            " SELECT p.id, p.name, a.name, ST_Y(p.point), ST_X(p.point),"
            "        ST_Distance(p.point::geography, o.g::geography)"
            "   FROM o, LATERAL (SELECT * FROM geo_pois q WHERE q.kind = 'depot'"
            "                      AND (cardinality(%(accounts)s::text[]) = 0 OR q.account_id IN"
            "                           (SELECT id FROM domain_accounts WHERE name = ANY(%(accounts)s::text[])))"
            "                    ORDER BY q.point <-> o.g LIMIT 8) p"
            "   JOIN domain_accounts a ON a.id = p.account_id"
            "  ORDER BY 6, 1 LIMIT 1",
            {"lat": lat, "lng": lng, "accounts": list(accounts)},
        )
        row = cursor.fetchone()
    if row is None:
        return None
    poi_id, name, account, depot_lat, depot_lng, distance_m = row
    return {
        "id": poi_id, "name": name, "account": account, "lat": round(depot_lat, 6), "lng": round(depot_lng, 6),
        "distance_m": round(distance_m),
    }  # fmt: skip
