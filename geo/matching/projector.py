"""The map-matching projector: position fixes → traversals of road segments (geo_segment_observations) → speed
bands (geo_segment_speed_band). The only writer of both tables, but for a reload of the road graph, which moves their
rows to the new segment ids under this projector's lock (geo/sql/remap.sql).

Windows. A device's time is cut into fixed windows of MAPMATCH_WINDOW_S seconds, aligned on the epoch. Window k
owns the observations whose time falls in [k·W, (k+1)·W) and is matched from the device's fixes in that range
widened by MAPMATCH_WINDOW_MARGIN_S on either side, so that a traversal near a window's edge is decided with the
fixes around it. A changed fix (the work-list: geo_match_pending) re-matches every window whose widened range holds
it — two at most — from events_parsed, and replaces that window's observations. The result depends only on the
fixes, never on the order they arrived in or the batches they came in (geo/tests/test_map_matching.py).

Input: the device's position fixes in events_parsed with usable coordinates (not 0,0, in range), GPS only (LBS,
Wi-Fi and beacon positions are approximations the matcher must not chase), one per device time. The matcher is
geo/matching/hmm.py; the thresholds it reads are rows of slo_targets (mapmatch_*).

Bands. A traversal that covered its whole segment, with a confidence of at least mapmatch_band_min_confidence and
a plausible speed (at most fix_max_speed_kmh), is counted in its segment's band of (ISO weekday, hour) in
DISPLAY_TIME_ZONE — the key routing reads (geo/routing.py). Re-matching a window subtracts what its old
observations had added (`in_band` says which did) and adds the new ones: one upsert of sums per batch, never a
full refresh.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection

from geo.matching.hmm import Candidate, Fix, Graph, Params, Segment, Traversal, match, thin, traversals
from geo.matching.worklist import Changed
from geo.routing import M_PER_DEGREE_MIN, local_band
from slo.thresholds import threshold

APPROXIMATE_POSITIONS = ("lbs", "wifi", "beacon")

_FIXES = """
SELECT DISTINCT ON (p.occurred_at) extract(epoch FROM p.occurred_at)::float8,
       (p.payload->>'lat')::float8, (p.payload->>'lng')::float8
  FROM events_parsed p
 WHERE p.kind = 'position_fix' AND p.device_id = %(device)s
   AND p.occurred_at >= %(lo)s AND p.occurred_at < %(hi)s
   AND jsonb_typeof(p.payload->'lat') = 'number' AND jsonb_typeof(p.payload->'lng') = 'number'
   AND coalesce(p.payload->>'position_type', 'gps') <> ALL(%(approximate)s)
 ORDER BY p.occurred_at, p.id
"""

# The segments within the search radius of each fix, nearest first (at most MAPMATCH_MAX_CANDIDATES), each at the
# point nearest the fix: the fraction along the segment is taken in Web Mercator (conformal: along one segment it
# is proportional to the ground distance), the distance on the ellipsoid.
_CANDIDATES = """
SELECT f.i, c.id, c.fraction * c.length_m, c.distance_m
  FROM unnest(%(i)s::int[], %(lng)s::float8[], %(lat)s::float8[]) AS f(i, lng, lat)
  CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(f.lng, f.lat), 4326) AS g) p
  CROSS JOIN LATERAL (
      SELECT w.id, w.length_m,
             ST_LineLocatePoint(ST_Transform(w.geom, 3857), ST_Transform(p.g, 3857)) AS fraction,
             ST_Distance(w.geom::geography, p.g::geography) AS distance_m
        FROM geo_ways w
       WHERE w.geom && ST_Expand(p.g, %(dlng)s / cos(radians(f.lat)), %(dlat)s)
       ORDER BY w.geom <-> p.g
       LIMIT %(k)s
  ) c
 WHERE c.distance_m <= %(radius)s
 ORDER BY f.i, c.distance_m, c.id
"""

_GRAPH = """
SELECT id, osm_id, source, target, length_m, oneway FROM geo_ways
 WHERE geom && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)
"""

BandKey = tuple[int, int, int]  # segment, ISO weekday, hour


def match_params() -> Params:
    return Params(
        sigma_m=threshold("mapmatch_sigma_m"),
        beta_m=threshold("mapmatch_beta_m"),
        max_gap_s=threshold("mapmatch_max_gap_s"),
        max_speed_ms=threshold("fix_max_speed_kmh") / 3.6,
        search_radius_m=threshold("mapmatch_search_radius_m"),
    )


def windows_of(changed: Sequence[Changed]) -> set[tuple[int, int]]:
    """(device, window index) of every window whose widened range holds one of the changed fixes."""
    width, margin = settings.MAPMATCH_WINDOW_S, settings.MAPMATCH_WINDOW_MARGIN_S
    out = set()
    for c in changed:
        if c.device_id is None:
            continue
        t = c.occurred_at.timestamp()
        for k in range(math.floor((t - margin) / width), math.floor((t + margin) / width) + 1):
            out.add((c.device_id, k))
    return out


def match_fold(changed: Sequence[Changed]) -> None:
    """Re-match every window the changed fixes touch; replace their observations; apply the bands' deltas."""
    windows = windows_of(changed)
    if not windows:
        return
    params = match_params()
    deltas: dict[BandKey, list[Any]] = {}
    for device_id, k in sorted(windows):
        window_rematch(device_id, k, params=params, deltas=deltas)
    bands_apply(deltas)


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def window_fixes(device_id: int, lo: datetime, hi: datetime) -> list[Fix]:
    with connection.cursor() as cursor:
        cursor.execute(_FIXES, {"device": device_id, "lo": lo, "hi": hi, "approximate": list(APPROXIMATE_POSITIONS)})
        rows = cursor.fetchall()
    return [
        Fix(t, lat, lng)
        for t, lat, lng in rows
        if math.isfinite(lat) and math.isfinite(lng) and abs(lat) <= 90 and abs(lng) <= 180 and (lat, lng) != (0, 0)
    ]


def candidates_of(fixes: Sequence[Fix], params: Params) -> list[list[Candidate]]:
    radius = params.search_radius_m
    out: list[list[Candidate]] = [[] for _ in fixes]
    if not fixes:
        return out
    with connection.cursor() as cursor:
        cursor.execute(
            _CANDIDATES,
            {
                "i": list(range(len(fixes))), "lng": [f.lng for f in fixes], "lat": [f.lat for f in fixes],
                "dlng": radius / M_PER_DEGREE_MIN, "dlat": radius / M_PER_DEGREE_MIN, "radius": radius,
                "k": settings.MAPMATCH_MAX_CANDIDATES,
            },
        )  # fmt: skip
        for i, segment, offset, distance in cursor.fetchall():
            out[i].append(Candidate(segment, float(offset), float(distance)))
    return out


def graph_around(fixes: Sequence[Fix], params: Params) -> Graph:
    """The segments a route between consecutive fixes could use: the fixes' bounding box widened by the longest
    route the matcher allows between two of them (the interval at fix_max_speed_kmh plus two search radii)."""
    longest = max(
        (min(b.t - a.t, params.max_gap_s) for a, b in itertools.pairwise(fixes)),
        default=0.0,
    )
    reach = longest * params.max_speed_ms + 2 * params.search_radius_m
    lat_pad = reach / M_PER_DEGREE_MIN
    north = max(f.lat for f in fixes) + lat_pad
    south = min(f.lat for f in fixes) - lat_pad
    lng_pad = reach / (M_PER_DEGREE_MIN * max(math.cos(math.radians(min(89.0, max(abs(north), abs(south))))), 0.01))
    with connection.cursor() as cursor:
        cursor.execute(
            _GRAPH,
            {
                "west": min(f.lng for f in fixes) - lng_pad, "east": max(f.lng for f in fixes) + lng_pad,
                "south": south, "north": north,
            },
        )  # fmt: skip
        return Graph.of([Segment(*row) for row in cursor.fetchall()])


def window_traversals(device_id: int, k: int, params: Params) -> list[Traversal]:
    """The traversals window k of the device owns, matched from its widened range."""
    width, margin = settings.MAPMATCH_WINDOW_S, settings.MAPMATCH_WINDOW_MARGIN_S
    core_lo, core_hi = k * width, (k + 1) * width
    fixes = thin(window_fixes(device_id, _moment(core_lo - margin), _moment(core_hi + margin)), params.sigma_m)
    if len(fixes) < 2:
        return []
    candidates = candidates_of(fixes, params)
    kept = [(f, c) for f, c in zip(fixes, candidates, strict=True) if c]
    if len(kept) < 2:
        return []
    graph = graph_around([f for f, _ in kept], params)
    chains = match([f for f, _ in kept], [c for _, c in kept], graph, params)
    return [
        t for chain in chains for t in traversals(chain, graph, params.sigma_m) if core_lo <= t.observed_at < core_hi
    ]


def _in_band(t: Traversal) -> bool:
    speed = t.speed_kmh
    return (
        t.complete
        and t.confidence >= threshold("mapmatch_band_min_confidence")
        and speed is not None
        and speed <= threshold("fix_max_speed_kmh")
    )


def _delta(deltas: dict[BandKey, list[Any]], segment: int, at: datetime, speed: float, sign: int) -> None:
    dow, hour = local_band(at)
    entry = deltas.setdefault((segment, dow, hour), [0.0, 0, None])
    entry[0] += sign * speed
    entry[1] += sign
    if sign > 0:
        entry[2] = at if entry[2] is None else max(entry[2], at)


def window_rematch(device_id: int, k: int, *, params: Params, deltas: dict[BandKey, list[Any]]) -> int:
    """Replace window k's observations of the device with a fresh match; record the bands' deltas."""
    width = settings.MAPMATCH_WINDOW_S
    found = window_traversals(device_id, k, params)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM geo_segment_observations WHERE device_id = %s AND observed_at >= %s AND observed_at < %s"
            " RETURNING segment_id, observed_at, speed_kmh, in_band",
            [device_id, _moment(k * width), _moment((k + 1) * width)],
        )
        for segment, at, speed, in_band in cursor.fetchall():
            if in_band:
                _delta(deltas, segment, at, speed, -1)
        if not found:
            return 0
        rows = []
        for t in found:
            in_band = _in_band(t)
            observed_at = _moment(t.observed_at)
            rows.append(
                (t.segment, t.osm_id, device_id, observed_at, _moment(t.entered_at), _moment(t.left_at),
                 "forward" if t.forward else "backward", round(t.length_m, 2),
                 None if t.speed_kmh is None else round(t.speed_kmh, 2), round(t.confidence, 4), t.complete, in_band)
            )  # fmt: skip
            if in_band:
                assert t.speed_kmh is not None
                _delta(deltas, t.segment, observed_at, round(t.speed_kmh, 2), +1)
        cursor.execute(
            "INSERT INTO geo_segment_observations (segment_id, osm_id, device_id, observed_at, entered_at, left_at,"
            " direction, length_m, speed_kmh, confidence, complete, in_band)"
            " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[], %s::timestamptz[],"
            " %s::timestamptz[], %s::text[], %s::float8[], %s::float8[], %s::float8[], %s::bool[], %s::bool[])",
            [list(column) for column in zip(*rows, strict=True)],
        )
    return len(rows)


def bands_apply(deltas: dict[BandKey, list[Any]]) -> None:
    """One upsert of the sums for every band the batch changed (in key order: batches never deadlock)."""
    changed = [(key, d) for key, d in sorted(deltas.items()) if d[1] != 0 or d[0] != 0]
    if not changed:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO geo_segment_speed_band AS b (segment_id, dow, hour, speed_sum, samples, mean_kmh,
                                                     last_observed_at)
            SELECT u.segment_id, u.dow, u.hour, u.speed_sum, u.samples,
                   CASE WHEN u.samples > 0 THEN u.speed_sum / u.samples END, u.last_observed_at
              FROM unnest(%s::bigint[], %s::smallint[], %s::smallint[], %s::float8[], %s::int[], %s::timestamptz[])
                   AS u(segment_id, dow, hour, speed_sum, samples, last_observed_at)
            ON CONFLICT (segment_id, dow, hour) DO UPDATE SET
                samples = b.samples + EXCLUDED.samples,
                speed_sum = CASE WHEN b.samples + EXCLUDED.samples > 0 THEN b.speed_sum + EXCLUDED.speed_sum ELSE 0 END,
                mean_kmh = CASE WHEN b.samples + EXCLUDED.samples > 0
                                THEN (b.speed_sum + EXCLUDED.speed_sum) / (b.samples + EXCLUDED.samples) END,
                last_observed_at = greatest(b.last_observed_at, EXCLUDED.last_observed_at)
            """,
            [
                [key[0] for key, _ in changed],
                [key[1] for key, _ in changed],
                [key[2] for key, _ in changed],
                [d[0] for _, d in changed],
                [d[1] for _, d in changed],
                [d[2] for _, d in changed],
            ],
        )


def match_rebuild_window(device_id: int, since: datetime, until: datetime) -> int:
    """Re-match every window of one device between two times now (tests, and a replay by hand)."""
    width = settings.MAPMATCH_WINDOW_S
    params = match_params()
    deltas: dict[BandKey, list[Any]] = {}
    written = 0
    k = math.floor(since.timestamp() / width)
    while k * width < until.timestamp():
        written += window_rematch(device_id, k, params=params, deltas=deltas)
        k += 1
    bands_apply(deltas)
    return written
