"""Reverse geocoding: addresses for trip starts and ends, parking events and live positions, filled in the
background (the cron role's `geo.geocode` task) and never on the ingest path. The one writer of geo_addresses.

The cache is keyed by the coordinate rounded to GEOCODE_ROUND_DECIMALS decimals of a degree (4: about 11 m), so a
depot visited every day is asked about once. Each run (at most JOB_TIME_BUDGET_S) takes the wanted coordinates that
have no address yet — parking events first, then trip ends, then live positions, newest first — and asks, in order:

1. Nominatim (GEOCODE_NOMINATIM_URL; empty: not asked), its `/reverse` JSON API, at most one request per
   GEOCODE_NOMINATIM_INTERVAL_S (the public server's policy: 1/s) with the GEOCODE_USER_AGENT it requires;
2. Mapbox (GEOCODE_MAPBOX_URL, when GEOCODE_MAPBOX_TOKEN is set), its v6 reverse-geocoding API;
3. our own roads, offline: the nearest named segment within geocode_offline_max_m, and the nearest street that
   crosses it within geocode_junction_max_m of the point ("Avenue Princesse Grace, 40 m from Boulevard Louis II").

A provider that is unreachable (connection error, timeout, 5xx, 429) is skipped for the rest of the run. Coordinates
the online providers have no time for in this run — or no answer at all, when both are down — get the offline
address at once, marked `roads`; later runs replace those with an online answer when there is time to spare.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
import structlog
from django.conf import settings
from django.db import connection
from django.utils import timezone

from slo.thresholds import threshold

log = structlog.get_logger(__name__)

# pg_try_advisory_xact_lock key: one geocoding run at a time (the providers' rate limits are per client).
GEOCODE_LOCK_KEY = "geo.geocode"
PROVIDERS = ("nominatim", "mapbox")


class Unreachable(Exception):
    """The provider did not answer usefully (network, timeout, 5xx, 429): try the next one."""


@dataclass(frozen=True)
class Key:
    decimals: int
    lat_key: int
    lng_key: int

    @property
    def lat(self) -> float:
        return self.lat_key / float(10**self.decimals)

    @property
    def lng(self) -> float:
        return self.lng_key / float(10**self.decimals)


def key_of(lat: float, lng: float, decimals: int | None = None) -> Key:
    d = settings.GEOCODE_ROUND_DECIMALS if decimals is None else decimals
    return Key(d, round(lat * 10**d), round(lng * 10**d))


# --- the providers ------------------------------------------------------------------------------------------------

_last_nominatim = float("-inf")


def _get(url: str, params: dict[str, Any], headers: dict[str, str]) -> Any:
    try:
        response = requests.get(url, params=params, headers=headers, timeout=settings.GEOCODE_TIMEOUT_S)
    except requests.RequestException as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise Unreachable(f"HTTP {response.status_code}")
    if response.status_code != 200:
        raise Unreachable(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError as exc:
        raise Unreachable(f"not JSON: {response.text[:200]}") from exc


def nominatim_address(answer: dict[str, Any]) -> str:
    """A short address from a Nominatim reverse answer: house number and road, quarter, town."""
    if not isinstance(answer, dict) or "error" in answer:
        return ""
    parts = answer.get("address") or {}
    road = parts.get("road") or parts.get("pedestrian") or parts.get("footway") or parts.get("square")
    street = " ".join(p for p in (parts.get("house_number"), road) if p)
    quarter = parts.get("suburb") or parts.get("neighbourhood") or parts.get("quarter") or parts.get("city_district")
    town = parts.get("city") or parts.get("town") or parts.get("village") or parts.get("municipality")
    found = [p for p in (street, quarter, town) if p]
    if found:
        return ", ".join(dict.fromkeys(found))
    return ", ".join(str(answer.get("display_name", "")).split(", ")[:3])


def nominatim_reverse(lat: float, lng: float) -> str:
    """The address Nominatim gives (empty when it knows none). Paced to one request per interval."""
    global _last_nominatim
    wait = _last_nominatim + settings.GEOCODE_NOMINATIM_INTERVAL_S - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    _last_nominatim = time.monotonic()
    answer = _get(
        settings.GEOCODE_NOMINATIM_URL.rstrip("/") + "/reverse",
        {"format": "jsonv2", "lat": f"{lat:.6f}", "lon": f"{lng:.6f}", "zoom": 18, "addressdetails": 1},
        {"User-Agent": settings.GEOCODE_USER_AGENT, "Accept-Language": settings.GEOCODE_LANGUAGE},
    )
    return nominatim_address(answer)


def mapbox_reverse(lat: float, lng: float) -> str:
    """The address Mapbox's v6 reverse geocoding gives (empty when it knows none)."""
    answer = _get(
        settings.GEOCODE_MAPBOX_URL.rstrip("/") + "/search/geocode/v6/reverse",
        {"longitude": f"{lng:.6f}", "latitude": f"{lat:.6f}", "limit": 1, "language": settings.GEOCODE_LANGUAGE,
         "access_token": settings.GEOCODE_MAPBOX_TOKEN},
        {"User-Agent": settings.GEOCODE_USER_AGENT},
    )  # fmt: skip
    features = answer.get("features") if isinstance(answer, dict) else None
    if not features:
        return ""
    properties = features[0].get("properties") or {}
    return str(properties.get("full_address") or properties.get("name") or "")


_ROADS = """
WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326) AS g),
street AS (
    SELECT w.id, w.name, ST_Distance(w.geom::geography, p.g::geography) AS d
      FROM p, LATERAL (SELECT id, name, geom FROM geo_ways WHERE name <> '' ORDER BY geom <-> p.g LIMIT 8) w
     ORDER BY 3, 1 LIMIT 1
),
crossing AS (
    SELECT o.name, ST_Distance(v.geom::geography, p.g::geography) AS d
      FROM p, street s,
           LATERAL (SELECT id, geom FROM geo_ways_vertices ORDER BY geom <-> p.g LIMIT 40) v
      JOIN geo_ways o ON v.id IN (o.source, o.target)
     WHERE o.name <> '' AND o.name <> s.name
       AND EXISTS (SELECT 1 FROM geo_ways m WHERE m.name = s.name AND v.id IN (m.source, m.target))
     ORDER BY 2, 1 LIMIT 1
)
SELECT s.name, s.d, c.name, c.d FROM street s LEFT JOIN crossing c ON true
"""


def roads_address(lat: float, lng: float) -> str:
    """From our own road graph: the nearest named street within geocode_offline_max_m, and the nearest crossing
    street within geocode_junction_max_m ("Avenue Princesse Grace, 40 m from Boulevard Louis II"); empty when no
    named street is that near."""
    with connection.cursor() as cursor:
        cursor.execute(_ROADS, {"lat": lat, "lng": lng})
        row = cursor.fetchone()
    if row is None or row[1] > threshold("geocode_offline_max_m"):
        return ""
    street, _, crossing, crossing_m = row
    if crossing is None or crossing_m > threshold("geocode_junction_max_m"):
        return str(street)
    return f"{street}, {round(crossing_m / 10) * 10:.0f} m from {crossing}"


def _online() -> list[str]:
    configured = []
    if settings.GEOCODE_NOMINATIM_URL:
        configured.append("nominatim")
    if settings.GEOCODE_MAPBOX_TOKEN and settings.GEOCODE_MAPBOX_URL:
        configured.append("mapbox")
    return configured


_ASK = {"nominatim": nominatim_reverse, "mapbox": mapbox_reverse}


# --- the run ------------------------------------------------------------------------------------------------------

_WANTED = """
WITH wanted AS (
    SELECT ST_Y(point::geometry) AS lat, ST_X(point::geometry) AS lng, 1 AS priority, started_at AS at
      FROM state_parking_events WHERE point IS NOT NULL AND started_at >= %(since)s
    UNION ALL
    SELECT ST_Y(start_point::geometry), ST_X(start_point::geometry), 2, started_at
      FROM state_trips WHERE start_point IS NOT NULL AND started_at >= %(since)s
    UNION ALL
    SELECT ST_Y(end_point::geometry), ST_X(end_point::geometry), 2, coalesce(ended_at, started_at)
      FROM state_trips WHERE end_point IS NOT NULL AND coalesce(ended_at, started_at) >= %(since)s
    UNION ALL
    SELECT ST_Y(point::geometry), ST_X(point::geometry), 3, occurred_at FROM state_live_positions
), keyed AS (
    SELECT DISTINCT ON (1, 2) round(lat * %(scale)s)::int AS lat_key, round(lng * %(scale)s)::int AS lng_key,
           priority, at
      FROM wanted
     ORDER BY 1, 2, priority, at DESC
)
SELECT k.lat_key, k.lng_key, a.provider IS NOT NULL
  FROM keyed k
  LEFT JOIN geo_addresses a ON a.decimals = %(decimals)s AND a.lat_key = k.lat_key AND a.lng_key = k.lng_key
 WHERE a.id IS NULL OR a.provider = 'roads'
 ORDER BY a.id IS NOT NULL, k.priority, k.at DESC, 1, 2
 LIMIT %(limit)s
"""


def geocode_wanted(*, limit: int) -> list[tuple[Key, bool]]:
    """Coordinates the views show that have no address yet (False), then those with an offline one (True)."""
    decimals = settings.GEOCODE_ROUND_DECIMALS
    with connection.cursor() as cursor:
        cursor.execute(
            _WANTED,
            {
                "since": timezone.now() - timedelta(days=settings.GEOCODE_LOOKBACK_DAYS),
                "scale": 10**decimals, "decimals": decimals, "limit": limit,
            },
        )  # fmt: skip
        return [(Key(decimals, lat_key, lng_key), offline) for lat_key, lng_key, offline in cursor.fetchall()]


def address_store(key: Key, address: str, provider: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO geo_addresses (decimals, lat_key, lng_key, address, provider, geocoded_at)"
            " VALUES (%s, %s, %s, %s, %s, now())"
            " ON CONFLICT (decimals, lat_key, lng_key) DO UPDATE SET address = EXCLUDED.address,"
            "   provider = EXCLUDED.provider, geocoded_at = EXCLUDED.geocoded_at",
            [key.decimals, key.lat_key, key.lng_key, address, provider],
        )


@dataclass
class GeocodeRun:
    online: int = 0
    offline: int = 0
    upgraded: int = 0
    unreachable: tuple[str, ...] = ()
    busy: bool = False


def geocode_pending(*, budget_s: float | None = None) -> GeocodeRun:
    """One geocoding run (see the module's docstring), one at a time (a session advisory lock); each address is
    committed as soon as it is known (autocommit)."""
    run = GeocodeRun()
    deadline = time.monotonic() + (budget_s if budget_s is not None else settings.JOB_TIME_BUDGET_S)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [GEOCODE_LOCK_KEY])
        if not cursor.fetchone()[0]:
            run.busy = True
            return run
    try:
        _geocode(run, deadline)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [GEOCODE_LOCK_KEY])
    return run


def _geocode(run: GeocodeRun, deadline: float) -> None:
    wanted = geocode_wanted(limit=settings.GEOCODE_BATCH)
    online = _online()
    down: list[str] = []
    # Time for one more online request: the Nominatim interval, or the timeout of a request.
    slack = max(settings.GEOCODE_NOMINATIM_INTERVAL_S, settings.GEOCODE_TIMEOUT_S)
    for key, has_offline in wanted:
        answer: tuple[str, str] | None = None
        for provider in online:
            if provider in down or time.monotonic() + slack > deadline:
                continue
            try:
                answer = (_ASK[provider](key.lat, key.lng), provider)
                break
            except Unreachable as exc:
                down.append(provider)
                log.warning("geocode.unreachable", provider=provider, error=str(exc))
        if answer is not None:
            address_store(key, *answer)
            run.online += 1
            run.upgraded += has_offline
        elif not has_offline:
            address_store(key, roads_address(key.lat, key.lng), "roads")
            run.offline += 1
    run.unreachable = tuple(down)
    if wanted:
        log.info("geocode.run", online=run.online, offline=run.offline, upgraded=run.upgraded, unreachable=down)
