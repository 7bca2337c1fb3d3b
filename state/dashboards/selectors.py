"""The view contracts: one function per view returns a complete, render-ready payload
{summary, geojson, slo_status}. All state logic, the palette, plate tails, EAT times and counting happen here;
the pages only paint. The rule "a vehicle with several devices shows once" lives in `live_vehicle_rows` only.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from domain.models import Lifecycle
from domain.plates import normalize_plate
from slo.selectors import slo_status
from state.selectors import StateThresholds, counted_sql, counts_for_freshness, freshness_class, operational_state

# Colour-blind-safe palette (Okabe-Ito + Tableau): a cost centre's colour depends on its name only, so it never
# changes when another cost centre is added.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
    "#F0E442", "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#9C755F",
)  # fmt: skip
NO_COST_CENTRE_COLOUR = "#7F7F7F"
MAX_HISTORY_DAYS = 31


@functools.lru_cache(maxsize=1024)
def cost_centre_colour(name: str | None) -> str:
    if not name:
        return NO_COST_CENTRE_COLOUR
    return PALETTE[int(hashlib.sha1(name.encode()).hexdigest(), 16) % len(PALETTE)]  # noqa: S324 - not security


@dataclass(frozen=True)
class ViewFilters:
    """The one filter object of every view (adding a filter is one change here, no signature break)."""

    cost_centres: tuple[str, ...] = ()
    assigned_cities: tuple[str, ...] = ()
    vehicle_numbers: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    states: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: str | None) -> ViewFilters:
        """Parse the `filters` query parameter; raises ValueError with a message a user can act on."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"filters is not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ValueError("filters must be a JSON object")
        known = {"cost_centre", "assigned_city", "vehicle_numbers", "account", "operational_state"}
        if unknown := set(data) - known:
            raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        plates = tuple(normalize_plate(str(p)) for p in _as_list(data.get("vehicle_numbers")))
        return cls(
            cost_centres=tuple(map(str, _as_list(data.get("cost_centre")))),
            assigned_cities=tuple(map(str, _as_list(data.get("assigned_city")))),
            vehicle_numbers=plates,
            accounts=tuple(map(str, _as_list(data.get("account")))),
            states=tuple(map(str, _as_list(data.get("operational_state")))),
        )

    def where(self) -> tuple[str, dict[str, Any]]:
        return identity_where(
            cost_centres=self.cost_centres,
            assigned_cities=self.assigned_cities,
            vehicle_numbers=self.vehicle_numbers,
            accounts=self.accounts,
        )


def identity_where(
    *,
    cost_centres: Sequence[str] = (),
    assigned_cities: Sequence[str] = (),
    vehicle_numbers: Sequence[str] = (),
    accounts: Sequence[str] = (),
) -> tuple[str, dict[str, Any]]:
    """The one builder of the views' and the reports' filters: " AND …" conditions on the aliases cc (cost centre),
    ac (assigned city), v (vehicle) and a (account), and their parameters. Plates match in their normal form."""
    clauses, params = [], {}
    for column, name, values in (
        ("cc.name", "cost_centres", list(cost_centres)),
        ("ac.name", "cities", list(assigned_cities)),
        ("v.plate", "plates", [normalize_plate(p) for p in vehicle_numbers]),
        ("a.name", "accounts", list(accounts)),
    ):
        if values:
            clauses.append(f"{column} = ANY(%({name})s)")
            params[name] = values
    return "".join(f" AND {c}" for c in clauses), params


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


# The vehicle dedup rule, in this query only: a vehicle with several devices shows once — the device with the
# freshest ok fix; ties (same fix time, or no fix) by device class: the model's rank in DEVICE_CLASS_PRIORITY
# (wired trackers before OBD dongles before tags), then the lowest IMEI. A device without a vehicle is its own row.
_LIVE = """
WITH on_duty AS (
    SELECT DISTINCT ON (da.vehicle_id) da.vehicle_id, dr.name
      FROM domain_driver_assignments da JOIN domain_drivers dr ON dr.id = da.driver_id
     WHERE da.period @> %(now)s::timestamptz {only_duty}
     ORDER BY da.vehicle_id, lower(da.period) DESC
)
SELECT DISTINCT ON (coalesce(v.id, -d.id))
       d.id, d.imei, d.model, d.lifecycle, v.id, v.plate, cc.name, ac.name, a.name,
       extract(epoch FROM l.occurred_at)::float8, l.speed_kmh, l.heading, l.ignition,
       round(ST_Y(l.point::geometry)::numeric, 6)::float8, round(ST_X(l.point::geometry)::numeric, 6)::float8,
       extract(epoch FROM s.last_heartbeat_at)::float8, s.ignition, duty.name,
       to_char(l.occurred_at, 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM'),
       round(extract(epoch FROM %(now)s::timestamptz - l.occurred_at))::int,
       state_haversine_m(%(origin_lat)s, %(origin_lng)s, ST_Y(l.point::geometry), ST_X(l.point::geometry))
           AS distance_m
  FROM domain_devices d
  JOIN domain_accounts a ON a.id = d.account_id
  LEFT JOIN domain_vehicles v ON v.id = d.vehicle_id {only_v}
  LEFT JOIN domain_cost_centres cc ON cc.id = v.cost_centre_id
  LEFT JOIN domain_assigned_cities ac ON ac.id = v.assigned_city_id
  LEFT JOIN state_live_positions l ON l.device_id = d.id {only_l}
  LEFT JOIN state_devices s ON s.device_id = d.id {only_s}
  LEFT JOIN on_duty duty ON duty.vehicle_id = v.id
 WHERE d.lifecycle IN ('active', 'suspended', 'provisioned') {filters}
 ORDER BY coalesce(v.id, -d.id), l.occurred_at DESC NULLS LAST,
          array_position(%(classes)s::text[], upper(d.model)) NULLS LAST, d.imei
"""


@dataclass(frozen=True)
class VehicleKeys:
    """Some vehicles of a view: vehicles by id, devices without a vehicle (each its own row) by device id, and every
    device of both (what the query reads: each table is then read by its key, not scanned)."""

    vehicle_ids: tuple[int, ...] = ()
    lone_device_ids: tuple[int, ...] = ()
    device_ids: tuple[int, ...] = ()

    def restrictions(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The _LIVE query's placeholders that read only these, and their parameters."""
        devices = "= ANY(%(only_devices)s)"
        return (
            {
                "only_d": f" AND d.id {devices}",
                "only_v": " AND v.id = ANY(%(only_vehicles)s)",
                "only_l": f" AND l.device_id {devices}",
                "only_s": f" AND s.device_id {devices}",
                "only_duty": " AND da.vehicle_id = ANY(%(only_vehicles)s)",
            },
            {"only_vehicles": list(self.vehicle_ids), "only_devices": list(self.device_ids)},
        )


_UNRESTRICTED = {"only_d": "", "only_v": "", "only_l": "", "only_s": "", "only_duty": ""}


def live_vehicle_rows(
    filters: ViewFilters,
    *,
    now: datetime,
    origin: tuple[float, float] | None = None,
    only: VehicleKeys | None = None,
) -> list[tuple[Any, ...]]:
    """One row per vehicle (the dedup rule above); the last column is the distance in metres from `origin`
    (lat, lng) by the database's great-circle function, or null without an origin. `only`: just these vehicles."""
    conditions, params = filters.where()
    restrictions = _UNRESTRICTED
    if only is not None:
        restrictions, only_params = only.restrictions()
        conditions += restrictions["only_d"]
        params.update(only_params)
    lat, lng = origin if origin is not None else (None, None)
    params.update(now=now, classes=[c.upper() for c in settings.DEVICE_CLASS_PRIORITY], origin_lat=lat, origin_lng=lng)
    # Inside a caller's transaction (the live view's consistent read) no savepoint: this only reads.
    nested = connection.in_atomic_block
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # Device times are formatted by the database, in the display zone (with its offset), for this query only:
        # in a caller's transaction the zone goes back afterwards, so that it reads times as before.
        cursor.execute(
            "SELECT current_setting('TimeZone'), set_config('TimeZone', %s, true)", [settings.DISPLAY_TIME_ZONE]
        )
        zone = cursor.fetchone()[0]
        query = _LIVE.format(filters=conditions, **restrictions)
        if origin is not None:  # nearest first (the dispatch view)
            query = f"SELECT * FROM ({query}) AS live ORDER BY distance_m NULLS LAST"
        cursor.execute(query, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        if nested:
            cursor.execute("SELECT set_config('TimeZone', %s, true)", [zone])
        return rows


def _local(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE)).isoformat()


def _moment(epoch: float | None) -> datetime | None:
    # Times arrive as epoch seconds: building a datetime from a float is several times cheaper than parsing
    # 20,000 timestamps per 10,000-vehicle view.
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _feature(row: tuple[Any, ...], *, now: datetime, t: StateThresholds) -> dict[str, Any]:
    (device_id, imei, model, lifecycle, vehicle_id, plate, centre, city, account, fix_epoch, speed, heading,
     fix_ignition, lat, lng, heartbeat_epoch, hb_ignition, driver, device_time, age_s, distance_m) = row  # fmt: skip
    fix_at = _moment(fix_epoch)
    state = operational_state(
        fix_at=fix_at,
        fix_speed_kmh=speed,
        fix_ignition=fix_ignition,
        heartbeat_at=_moment(heartbeat_epoch),
        heartbeat_ignition=hb_ignition,
        now=now,
        t=t,
    )
    freshness = freshness_class(fix_at=fix_at, now=now, t=t)
    suspended = lifecycle == Lifecycle.SUSPENDED
    classes = f"vehicle state-{state} fresh-{freshness}" + (" suspended" if suspended else "")
    properties = {
        "vehicle_id": vehicle_id,
        "device_id": device_id,
        "imei": imei,
        "device_model": model or None,
        "plate": plate,
        # Stored plates are normalised already (domain.plates.normalize_plate on save and by constraint).
        "plate_tail": plate[-4:] if plate else imei[-4:],
        "driver": driver,
        "cost_centre": centre,
        "cost_centre_colour": cost_centre_colour(centre),
        "assigned_city": city,
        "account": account,
        "operational_state": state,
        "freshness": freshness,
        "suspended": suspended,
        "lifecycle": lifecycle,
        "style_class": classes,
        "speed_kmh": speed,
        "heading": heading,
        "device_time": device_time,
        "age_s": age_s,
        "address": None,  # reverse geocoding is an enrichment projector of a later issue
    }
    if distance_m is not None:
        properties["distance_m"] = round(distance_m)
    geometry = None if lat is None else {"type": "Point", "coordinates": [lng, lat]}
    feature_id = vehicle_id or f"device-{device_id}"
    return {"type": "Feature", "id": feature_id, "geometry": geometry, "properties": properties}


def _freshness_line(features: list[dict[str, Any]]) -> str:
    """What the dashboard says (SLO language, not "3 vehicles OFFLINE"), over the SLO's own population
    (state.selectors.counts_for_freshness: active devices; one that never reported is behind)."""
    counted = [f["properties"] for f in features if counts_for_freshness(f["properties"]["lifecycle"])]
    total = len(counted)
    behind = sum(1 for p in counted if p["freshness"] != "fresh")
    if not total:
        return "No active vehicles in this view."
    if not behind:
        return f"All {total} active vehicles fresh."
    return f"Fleet below freshness SLO: {behind} of {total} active vehicle{'s' if total != 1 else ''} behind"


def live_features(
    filters: ViewFilters,
    *,
    now: datetime,
    origin: tuple[float, float] | None = None,
    only: VehicleKeys | None = None,
) -> list[dict[str, Any]]:
    t = StateThresholds.current()
    features = [_feature(row, now=now, t=t) for row in live_vehicle_rows(filters, now=now, origin=origin, only=only)]
    if filters.states:
        features = [f for f in features if f["properties"]["operational_state"] in filters.states]
    return features


def live_moment(now: datetime) -> dict[str, Any]:
    """When a live payload was computed, as its summary says it (a delta's whole summary: state/dashboards/sync.py)."""
    return {"generated_at": _local(now), "time_zone": settings.DISPLAY_TIME_ZONE}


def live_view(filters: ViewFilters, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    features = live_features(filters, now=now)
    states = Counter(f["properties"]["operational_state"] for f in features)
    freshness = Counter(f["properties"]["freshness"] for f in features)
    summary = {
        "vehicles": len(features),
        "by_state": {s: states.get(s, 0) for s in ("moving", "idling", "parked", "offline", "unknown")},
        "by_freshness": {c: freshness.get(c, 0) for c in ("fresh", "stale", "late", "none")},
        "suspended": sum(1 for f in features if f["properties"]["suspended"]),
        "freshness_line": _freshness_line(features),
        **live_moment(now),
    }
    return {
        "summary": summary,
        "geojson": {"type": "FeatureCollection", "features": features},
        "slo_status": slo_status(now=now),
    }


# --- history -------------------------------------------------------------------------------------------------

_HISTORY_DEVICES = """
SELECT d.id, d.imei, v.plate
  FROM domain_devices d JOIN domain_accounts a ON a.id = d.account_id
  LEFT JOIN domain_vehicles v ON v.id = d.vehicle_id
  LEFT JOIN domain_cost_centres cc ON cc.id = v.cost_centre_id
  LEFT JOIN domain_assigned_cities ac ON ac.id = v.assigned_city_id
 WHERE true {filters}
"""

# One LineString per counted trip from its ok fixes, simplified (metres, on a local projection of the geography).
_TRIPS = """
SELECT t.device_id, t.source, t.started_at, t.ended_at, t.distance_m, t.duration_s, t.idle_s, t.max_speed_kmh,
       ST_Y(t.start_point::geometry),
       ST_X(t.start_point::geometry), ST_Y(t.end_point::geometry), ST_X(t.end_point::geometry),
       (SELECT ST_AsGeoJSON(ST_Transform(ST_Simplify(ST_Transform(ST_MakeLine(p.point::geometry ORDER BY p.occurred_at),
               3857), %(tolerance)s), 4326), 6)
          FROM state_position_history p
         WHERE p.device_id = t.device_id AND p.verdict = 'ok'
           AND p.occurred_at >= t.started_at AND p.occurred_at <= coalesce(t.ended_at, t.started_at))
  FROM state_trips t
 WHERE t.device_id = ANY(%(devices)s) AND t.started_at >= %(since)s AND t.started_at < %(until)s
   AND COUNTED
 ORDER BY t.device_id, t.started_at
""".replace("COUNTED", counted_sql("t"))


def history_view(
    filters: ViewFilters, *, since: datetime, until: datetime, tolerance_m: float = 10.0, now: datetime | None = None
) -> dict[str, Any]:
    """Trips as lines, their ends and the stops and alarms between, for a date range of at most 31 days."""
    if until <= since:
        raise ValueError("the date range is empty: `until` must be after `since`")
    if until - since > timedelta(days=MAX_HISTORY_DAYS):
        raise ValueError(f"the date range is longer than {MAX_HISTORY_DAYS} days")
    conditions, params = filters.where()
    with connection.cursor() as cursor:
        cursor.execute(_HISTORY_DEVICES.format(filters=conditions), params)
        devices = {r[0]: {"imei": r[1], "plate": r[2]} for r in cursor.fetchall()}
        ids = list(devices)
        window: dict[str, Any] = {"devices": ids, "since": since, "until": until, "tolerance": tolerance_m}
        cursor.execute(_TRIPS, window)
        trips = cursor.fetchall()
        cursor.execute(
            "SELECT s.device_id, s.mode, s.started_at, s.ended_at, s.duration_s, ST_Y(s.point::geometry),"
            "       ST_X(s.point::geometry)"
            "  FROM state_parking_events s WHERE s.device_id = ANY(%(devices)s) AND s.started_at >= %(since)s"
            f"   AND s.started_at < %(until)s AND {counted_sql('s')}"
            " ORDER BY s.device_id, s.started_at",
            window,
        )
        stops = cursor.fetchall()
        cursor.execute(
            "SELECT device_id, occurred_at, code, coalesce(name, normalised_name), severity, ST_Y(point::geometry),"
            "       ST_X(point::geometry) FROM state_alarms WHERE device_id = ANY(%(devices)s)"
            "   AND occurred_at >= %(since)s AND occurred_at < %(until)s ORDER BY device_id, occurred_at",
            window,
        )
        alarms = cursor.fetchall()
    features = _history_features(devices, trips, stops, alarms)
    summary = {
        "vehicles": len({t[0] for t in trips}),
        "distance_km": round(sum(t[4] or 0 for t in trips) / 1000, 3),
        "driving_s": round(sum(t[5] or 0 for t in trips)),
        "idle_s": round(sum(t[6] or 0 for t in trips)),
        "trips": len(trips),
        "stops": len(stops),
        "alarms": len(alarms),
        "max_speed_kmh": max((t[7] or 0 for t in trips), default=None),
        "since": _local(since),
        "until": _local(until),
        "time_zone": settings.DISPLAY_TIME_ZONE,
    }
    return {
        "summary": summary,
        "geojson": {"type": "FeatureCollection", "features": features},
        "slo_status": slo_status(now=now or timezone.now()),
    }


def _point(lat: float | None, lng: float | None) -> dict[str, Any] | None:
    # A point's latitude and longitude are both there or both missing.
    return None if lat is None or lng is None else {"type": "Point", "coordinates": [round(lng, 6), round(lat, 6)]}


def _feature_of(geometry: dict[str, Any] | None, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _history_features(
    devices: dict[int, dict[str, Any]],
    trips: list[tuple[Any, ...]],
    stops: list[tuple[Any, ...]],
    alarms: list[tuple[Any, ...]],
) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = []
    for device_id, source, start, end, dist, dur, idle, vmax, slat, slng, elat, elng, line in trips:
        who = {"device_id": device_id, "plate": devices[device_id]["plate"], "imei": devices[device_id]["imei"]}
        features.append(
            _feature_of(
                json.loads(line) if line else None,
                kind="trip",
                style_class="trip",
                source=source,
                **who,
                started_at=_local(start),
                ended_at=_local(end),
                distance_km=round((dist or 0) / 1000, 3),
                duration_s=dur,
                idle_s=idle,
                max_speed_kmh=vmax,
            )
        )
        features.append(
            _feature_of(_point(slat, slng), kind="trip_start", style_class="trip-start", at=_local(start), **who)
        )
        features.append(_feature_of(_point(elat, elng), kind="trip_end", style_class="trip-end", at=_local(end), **who))
    for device_id, mode, start, end, dur, lat, lng in stops:
        features.append(
            _feature_of(
                _point(lat, lng),
                kind="stop",
                style_class=f"stop stop-{mode}",
                mode=mode,
                device_id=device_id,
                plate=devices[device_id]["plate"],
                started_at=_local(start),
                ended_at=_local(end),
                duration_s=dur,
            )
        )
    for device_id, at, code, name, severity, lat, lng in alarms:
        features.append(
            _feature_of(
                _point(lat, lng),
                kind="alarm",
                style_class=f"alarm alarm-{severity}",
                device_id=device_id,
                plate=devices[device_id]["plate"],
                at=_local(at),
                code=code,
                name=name,
                severity=severity,
            )
        )
    return features


# --- dispatch and overview -----------------------------------------------------------------------------------


def dispatch_view(
    filters: ViewFilters, *, lat: float, lng: float, limit: int = 10, now: datetime | None = None
) -> dict[str, Any]:
    """The vehicles nearest a point, with their state: whom to send. Offline and suspended vehicles are listed
    (flagged) so a dispatcher sees why the nearest one is not proposed first."""
    now = now or timezone.now()
    candidates = []
    for feature in live_features(filters, now=now, origin=(lat, lng)):
        if feature["geometry"] is None:
            continue
        props = feature["properties"]
        props["available"] = props["operational_state"] in ("parked", "idling", "moving") and not props["suspended"]
        candidates.append(feature)
    # Nearest first from the database; available ones ahead (a stable sort keeps the distance order in each).
    candidates.sort(key=lambda f: not f["properties"]["available"])
    nearest = candidates[:limit]
    summary = {
        "origin": {"lat": lat, "lng": lng},
        "vehicles": len(nearest),
        "available": sum(1 for f in nearest if f["properties"]["available"]),
        "nearest_available_m": next(
            (f["properties"]["distance_m"] for f in nearest if f["properties"]["available"]), None
        ),
        "generated_at": _local(now),
    }
    origin = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lng, lat]},
        "properties": {"kind": "origin", "style_class": "dispatch-origin"},
    }
    return {
        "summary": summary,
        "geojson": {"type": "FeatureCollection", "features": [origin, *nearest]},
        "slo_status": slo_status(now=now),
    }


# How many of the last day's alarms the overview lists (the panel shows the newest; the rest are counted).
RECENT_ALARMS = 20


def overview_view(filters: ViewFilters, *, now: datetime | None = None) -> dict[str, Any]:
    """The fleet overview: state and freshness per cost centre, today's driving, the last day's alarms."""
    now = now or timezone.now()
    live = live_view(filters, now=now)
    groups: dict[str, dict[str, Any]] = {}
    for feature in live["geojson"]["features"]:
        p = feature["properties"]
        key = p["cost_centre"] or "(none)"
        group = groups.setdefault(
            key,
            {
                "cost_centre": p["cost_centre"],
                "colour": p["cost_centre_colour"],
                "vehicles": 0,
                "by_state": Counter(),
                "by_freshness": Counter(),
            },
        )
        group["vehicles"] += 1
        group["by_state"][p["operational_state"]] += 1
        group["by_freshness"][p["freshness"]] += 1
    device_ids = [f["properties"]["device_id"] for f in live["geojson"]["features"]]
    local_midnight = now.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(t.distance_m), 0), coalesce(sum(t.duration_s), 0) FROM state_trips t"
            f" WHERE t.device_id = ANY(%s) AND t.started_at >= %s AND {counted_sql('t')}",
            [device_ids, local_midnight],
        )
        trips, metres, seconds = cursor.fetchone()
        cursor.execute(
            "SELECT severity, count(*) FROM state_alarms WHERE device_id = ANY(%s) AND occurred_at >= %s"
            " AND NOT cleared GROUP BY severity",
            [device_ids, now - timedelta(days=1)],
        )
        alarms = dict(cursor.fetchall())
        # The newest alarms of the last day, for the recent-alarms panel: plate as the dashboards show it.
        cursor.execute(
            "SELECT a.device_id, a.occurred_at, a.code, coalesce(a.name, a.normalised_name), a.severity, a.cleared"
            "  FROM state_alarms a WHERE a.device_id = ANY(%s) AND a.occurred_at >= %s"
            " ORDER BY a.occurred_at DESC LIMIT %s",
            [device_ids, now - timedelta(days=1), RECENT_ALARMS],
        )
        recent = cursor.fetchall()
    by_device = {f["properties"]["device_id"]: f["properties"] for f in live["geojson"]["features"]}
    summary = {
        **live["summary"],
        "today": {
            "trips": trips,
            "distance_km": round(metres / 1000, 3),
            "driving_s": round(seconds),
            "since": _local(local_midnight),
        },
        "alarms_24h": {s: alarms.get(s, 0) for s in ("critical", "warning", "info")},
        "recent_alarms": [
            {
                "vehicle_id": by_device[d]["vehicle_id"],
                "plate": by_device[d]["plate"] or by_device[d]["imei"],
                "occurred_at": _local(at),
                "code": code,
                "name": name,
                "severity": severity,
                "cleared": cleared,
            }
            for d, at, code, name, severity, cleared in recent
        ],
        "cost_centres": [
            {**g, "by_state": dict(g["by_state"]), "by_freshness": dict(g["by_freshness"])}
            for _, g in sorted(groups.items())
        ],
    }
    return {"summary": summary, "geojson": live["geojson"], "slo_status": live["slo_status"]}
