"""Spatial constants of the state layer: one SRID, one Earth radius, and the one great-circle distance."""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

# Every point we store is WGS 84 lon/lat, as geography.
WGS84_SRID = 4326

# The mean Earth radius (IUGG) of the great-circle distance, here and in SQL (state_haversine_m, verdicts.sql).
EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres: the same formula as SQL's state_haversine_m (a test ties the two), for
    the folds that run in Python (the trip fold's standstill rule). Stored distances between consecutive fixes are
    geodesic (PostGIS geography); this is for short hops where the difference is far below a metre."""
    dlat, dlng = radians(lat2 - lat1), radians(lng2 - lng1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * asin(sqrt(a))
