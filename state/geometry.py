"""Spatial constants of the state layer: one SRID, one Earth radius."""

from __future__ import annotations

# Every point we store is WGS 84 lon/lat, as geography.
WGS84_SRID = 4326
