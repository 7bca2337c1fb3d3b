"""Read thresholds: the one way code gets a number that would otherwise be a literal.

    from slo.thresholds import threshold
    if speed_kmh >= threshold("moving_speed_kmh"): ...

Values are cached per process for SLO_TARGET_CACHE_S seconds, so an UPDATE of slo_targets applies without a
restart. A missing metric is a programming error and raises with the metric's name.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection


class UnknownThreshold(LookupError):
    pass


_cache: dict[str, float] = {}
_loaded_at = float("-inf")


def _load() -> None:
    global _loaded_at
    with connection.cursor() as cursor:
        cursor.execute("SELECT metric, threshold FROM slo_targets")
        fresh = dict(cursor.fetchall())
    _cache.clear()
    _cache.update(fresh)
    _loaded_at = time.monotonic()


def threshold(metric: str) -> float:
    if time.monotonic() - _loaded_at > settings.SLO_TARGET_CACHE_S or metric not in _cache:
        _load()
    try:
        return _cache[metric]
    except KeyError as exc:
        raise UnknownThreshold(f"no slo_targets row for {metric!r}") from exc


def thresholds_forget() -> None:
    """Drop the cache (tests, and the admin after a save in this process)."""
    global _loaded_at
    _loaded_at = float("-inf")
