"""Mapbox vector tiles of the road graph (GET /tiles/roads/{z}/{x}/{y}.pbf): one layer, `roads`, with each
segment's `highway`, `name` and `oneway`, built by PostGIS (ST_AsMVT) from geo_ways.

Low zooms carry only the classes a map shows there (ZOOM_CLASSES); from MIN_FULL_ZOOM every segment. A tile is
computed once per graph load: an in-process LRU cache (ROAD_TILE_CACHE_TILES tiles) keyed by the load in use and
z/x/y, so a reload (a new geo_graph_loads row) is a new key; the HTTP answer carries an ETag naming the load and
Cache-Control (private: tiles are served to read:fleet only) for ROAD_TILE_MAX_AGE_S.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from django.conf import settings
from django.db import connection

from geo.selectors import road_graph_current_load

LAYER = "roads"
EXTENT = 4096
# Tile buffer in tile units (64 of 4096): lines crossing the tile edge are drawn on without a seam.
BUFFER = 64
MAX_ZOOM = 22
# From this zoom every segment is in the tile; below it, the classes a map of that scale shows.
MIN_FULL_ZOOM = 13
MAIN_ROADS = ("motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link")
ZOOM_CLASSES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (10, (*MAIN_ROADS, "secondary", "secondary_link", "tertiary", "tertiary_link")),
    (0, MAIN_ROADS),
)

_TILE = """
WITH bounds AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile,
                       ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326) AS search),
     features AS (
         SELECT ST_AsMVTGeom(ST_Transform(w.geom, 3857), b.tile, %(extent)s, %(buffer)s, true) AS geom,
                w.highway, w.name, w.oneway
           FROM geo_ways w, bounds b
          WHERE w.geom && b.search AND (%(classes)s::text[] IS NULL OR w.highway = ANY(%(classes)s::text[]))
          ORDER BY w.id
     )
SELECT ST_AsMVT(features, %(layer)s, %(extent)s, 'geom') FROM features WHERE geom IS NOT NULL
"""


class BadTile(ValueError):
    """z/x/y that name no tile."""


def tile_address(z: str, x: str, y: str) -> tuple[int, int, int]:
    """z/x/y from the URL as integers, or BadTile with the reason."""
    try:
        zi, xi, yi = int(z), int(x), int(y)
    except ValueError:
        raise BadTile(f"z, x and y must be whole numbers, not {z!r}/{x!r}/{y!r}") from None
    if not 0 <= zi <= MAX_ZOOM:
        raise BadTile(f"zoom {zi} is outside 0 to {MAX_ZOOM}")
    side = 1 << zi
    if not (0 <= xi < side and 0 <= yi < side):
        raise BadTile(f"at zoom {zi}, x and y run from 0 to {side - 1}")
    return zi, xi, yi


def _classes(z: int) -> list[str] | None:
    if z >= MIN_FULL_ZOOM:
        return None
    return next(list(classes) for lowest, classes in ZOOM_CLASSES if z >= lowest)


def road_tile_build(z: int, x: int, y: int) -> bytes:
    """The tile from the database (empty bytes where there are no roads)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _TILE,
            {
                "z": z, "x": x, "y": y, "margin": BUFFER / EXTENT, "extent": EXTENT, "buffer": BUFFER,
                "classes": _classes(z), "layer": LAYER,
            },
        )  # fmt: skip
        row = cursor.fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""


class _TileCache:
    """A bounded LRU of built tiles, per process, keyed by (graph load, z, x, y)."""

    def __init__(self) -> None:
        self._tiles: OrderedDict[tuple[int | None, int, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int | None, int, int, int]) -> bytes | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, key: tuple[int | None, int, int, int], tile: bytes) -> None:
        with self._lock:
            self._tiles[key] = tile
            self._tiles.move_to_end(key)
            while len(self._tiles) > settings.ROAD_TILE_CACHE_TILES:
                self._tiles.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()


tile_cache = _TileCache()


def road_tile(z: int, x: int, y: int) -> tuple[bytes, str]:
    """The tile and its ETag (the graph load it was built from), from the cache when it holds it."""
    load = road_graph_current_load()
    load_id = load.id if load is not None else None
    etag = f'"roads-{load.sha256[:16]}-{load.id}"' if load is not None else '"roads-none"'
    key = (load_id, z, x, y)
    tile = tile_cache.get(key)
    if tile is None:
        tile = road_tile_build(z, x, y)
        tile_cache.put(key, tile)
    return tile, etag
