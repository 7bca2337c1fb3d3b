"""Reads of the geo layer: whether a road graph exists and which file it came from; cached addresses."""

from __future__ import annotations

from collections.abc import Sequence

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
