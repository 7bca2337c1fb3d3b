"""Reads of the geo layer: whether a road graph exists, and which file it came from."""

from __future__ import annotations

from geo.models import GraphLoad


def road_graph_current_load() -> GraphLoad | None:
    """The load whose graph is in geo_ways now (the latest), or None when no graph was ever loaded."""
    return GraphLoad.objects.order_by("-loaded_at", "-id").first()


def road_graph_exists() -> bool:
    return GraphLoad.objects.exists()
