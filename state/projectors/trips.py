"""Owner of state_trips and state_parking_events: trips and stops folded from ok fixes, plus Jimi's reports.

The fold (`fold`) is a pure, deterministic state machine over a device's ok fixes in device-time order:

- a fix is *moving* when its speed is at least moving_speed_kmh and its ignition is not off (ignition-aware
  when the device reports ACC: engine off never moves, whatever GPS drift says);
- in a trip, a run of non-moving fixes lasting parking_min_duration_s is a stop: the trip ends at the run's
  first fix. A shorter run (a traffic light, stop-and-go, ignition off at a light) stays inside the trip;
- a gap of trip_stop_gap_s without fixes closes a trip at its last fix (or where it had stopped);
- a trip starts at the fix before its first moving fix when that one is close (the departure point);
- a trip still going after trip_max_duration_s is split there (end_reason 'split'), so a tracker that never
  reports a stop cannot make every re-fold read its whole history;
- trips shorter than trip_min_distance_m or trip_min_duration_s are dropped (the stop around them goes on);
- distance is the sum of geodesic (geography) segment lengths between consecutive ok fixes: never negative,
  and a bad fix has a verdict instead of a distance — except at a standstill: slow fixes (reported speed below
  moving_speed_kmh) within standstill_radius_m of the standstill's centre add nothing, and the distance is
  counted in and out through that centre when the vehicle leaves (`trip_distance`; docs/numbers.md);
- between kept trips lies a stop; one of at least parking_min_duration_s is a parking event: `parking` when the
  ignition went off, `idling` when every known ignition in it was on.

Re-folding after a change at device time `lo` starts at the end of the last closed trip that nothing at or after
`lo` can reopen, and runs to the end of the device's data; derived rows from that point are replaced. A closed trip
is final when the fixes that closed it all lie before `lo` (a fold reads left to right: what closed it is
unchanged): a split at its end fix; a stop when a checked fix at least parking_min_duration_s after its end is
before `lo`; a gap when a fix at least trip_stop_gap_s after its end is. Any trip that ended more than
parking_min_duration_s + trip_stop_gap_s before `lo` is final too. For the common change — a fix appended after the
device's others — the re-fold so reads the current trip and the stop before it, not the last hour. The machine's
state at a closed trip's end is known ("stopped there", or "driving on" after a split), so the result equals a fold
from the first fix (the permutation and replay tests prove it). A trip that comes out of a re-fold unchanged keeps
`recorded_at`.

Jimi's trip / parking reports are rows with source='jimi', the latest version per start, linked by
`matched_started_at` to the derived row they overlap most.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

import orjson
import psycopg
from django.db import connection

from slo.thresholds import threshold
from state.geometry import haversine_m
from state.projectors.db import bound_cursor


class Fix(NamedTuple):
    at: datetime
    t: float  # epoch seconds
    speed: float | None
    ignition: bool | None
    lat: float
    lng: float
    seg_m: float  # geodesic distance from the previous ok fix (0 for the first fetched)


@dataclass(frozen=True)
class Params:
    moving_kmh: float
    parking_s: float
    gap_s: float
    min_distance_m: float
    min_duration_s: float
    max_trip_s: float
    standstill_m: float

    @classmethod
    def current(cls) -> Params:
        return cls(
            moving_kmh=threshold("moving_speed_kmh"),
            parking_s=threshold("parking_min_duration_s"),
            gap_s=threshold("trip_stop_gap_s"),
            min_distance_m=threshold("trip_min_distance_m"),
            min_duration_s=threshold("trip_min_duration_s"),
            max_trip_s=threshold("trip_max_duration_s"),
            standstill_m=threshold("standstill_radius_m"),
        )

    @property
    def resume_margin(self) -> timedelta:
        return timedelta(seconds=self.parking_s + self.gap_s)


def _moving(f: Fix, p: Params) -> bool:
    return (f.speed or 0.0) >= p.moving_kmh and f.ignition is not False


def _departure(fixes: Sequence[Fix], i: int, p: Params) -> int:
    return i - 1 if i > 0 and fixes[i].t - fixes[i - 1].t < p.parking_s else i


def fold_spans(fixes: Sequence[Fix], p: Params, *, resume: bool, in_trip: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, end_reason) index spans of every trip (kept or not); end_reason is stop, gap, split or open.
    With `resume`, fixes[0] ended a stored trip: context only; the machine is stopped there, or (`in_trip`, after
    a split) driving on from it."""
    spans: list[tuple[int, int, str]] = []
    start, run = 0, None
    if resume and in_trip and fixes and not _moving(fixes[0], p):
        run = 0  # as the split left it
    for i in range(1 if resume else 0, len(fixes)):
        f = fixes[i]
        if in_trip and i > 0 and f.t - fixes[i - 1].t >= p.gap_s:
            spans.append((start, run if run is not None else i - 1, "gap"))
            in_trip, run = False, None
        moving = _moving(f, p)
        if not in_trip:
            if moving:
                in_trip, start, run = True, _departure(fixes, i, p), None
            continue
        if moving:
            if run is not None and f.t - fixes[run].t >= p.parking_s:
                spans.append((start, run, "stop"))
                start = _departure(fixes, i, p)
            run = None
        elif run is None:
            run = i
        elif f.t - fixes[run].t >= p.parking_s:
            spans.append((start, run, "stop"))
            in_trip, run = False, None
            continue
        if f.t - fixes[start].t >= p.max_trip_s:
            # A drive that never stops is cut in pieces, so re-folding it stays bounded work.
            spans.append((start, i, "split"))
            start, run = i, (None if moving else i)
    if in_trip:
        spans.append((start, len(fixes) - 1, "open"))
    return spans


def _slow(f: Fix, p: Params) -> bool:
    return f.speed is None or f.speed < p.moving_kmh


class _Standstill:
    """The fixes of a standstill so far, and their centre (the mean position: a stationary tracker's fixes
    scatter around where the vehicle stands, so their mean is a better place for it than any one of them)."""

    def __init__(self, f: Fix) -> None:
        self.n, self.lat, self.lng = 1, f.lat, f.lng

    def add(self, f: Fix) -> None:
        self.n += 1
        self.lat += (f.lat - self.lat) / self.n
        self.lng += (f.lng - self.lng) / self.n

    def distance(self, f: Fix) -> float:
        return haversine_m(self.lat, self.lng, f.lat, f.lng)


def trip_distance(fixes: Sequence[Fix], a: int, b: int, p: Params) -> float:
    """Metres driven from fix a to fix b, without standstill jitter.

    A slow fix starts a standstill. While the following fixes are slow and stay within standstill_radius_m of
    the standstill's centre (the mean of its fixes), no distance accrues: a stationary tracker's wandering fix
    is not travel. The standstill ends at a fix that is not slow, or at a slow one outside the radius whose next
    fix is outside too (one wild fix neither ends it nor moves its centre): the way in (from the last counted fix
    to the centre) and the way out (from the centre to that fix) are added, and summing goes on from there; a slow
    fix there starts the next standstill. Slow real movement (a walking-pace manoeuvre) drifts out of the radius
    and is counted this way too.
    """
    total = 0.0
    before = fixes[a]  # the last fix whose distance is counted
    still: _Standstill | None = None
    for j in range(a + 1, b + 1):
        f = fixes[j]
        if still is None:
            if _slow(f, p):
                still = _Standstill(f)
            else:
                total += f.seg_m
                before = f
            continue
        if _slow(f, p):
            if still.distance(f) <= p.standstill_m:
                still.add(f)
                continue
            if j < b and still.distance(fixes[j + 1]) <= p.standstill_m:
                continue  # one wild fix
        total += haversine_m(before.lat, before.lng, still.lat, still.lng) + still.distance(f)
        before, still = f, (_Standstill(f) if _slow(f, p) else None)
    if still is not None:  # the span ends standing: the way in
        total += haversine_m(before.lat, before.lng, still.lat, still.lng)
    return total


def _trip_row(fixes: Sequence[Fix], a: int, b: int, reason: str, p: Params) -> dict[str, Any] | None:
    duration = fixes[b].t - fixes[a].t
    distance = trip_distance(fixes, a, b, p)
    if distance < p.min_distance_m or duration < p.min_duration_s:
        return None
    idle = sum(
        fixes[j + 1].t - fixes[j].t for j in range(a, b) if fixes[j].ignition is True and not _moving(fixes[j], p)
    )
    return {
        "started_at": fixes[a].at.isoformat(),
        "ended_at": fixes[b].at.isoformat(),
        "closed": reason != "open",
        "end_reason": reason,
        "start_lat": fixes[a].lat,
        "start_lng": fixes[a].lng,
        "end_lat": fixes[b].lat,
        "end_lng": fixes[b].lng,
        "distance_m": round(distance, 3),
        "duration_s": duration,
        "idle_s": idle,
        "fixes": b - a + 1,
        "max_speed_kmh": max((f.speed or 0.0) for f in fixes[a : b + 1]),
        "avg_speed_kmh": round(distance / duration * 3.6, 3) if duration > 0 else 0.0,
    }


def _stop_row(fixes: Sequence[Fix], a: int, b: int, closed: bool, p: Params) -> dict[str, Any] | None:
    duration = fixes[b].t - fixes[a].t
    if duration < p.parking_s:
        return None
    known = [f.ignition for f in fixes[a : b + 1] if f.ignition is not None]
    return {
        "started_at": fixes[a].at.isoformat(),
        "ended_at": fixes[b].at.isoformat(),
        "closed": closed,
        "duration_s": duration,
        "lat": fixes[a].lat,
        "lng": fixes[a].lng,
        "mode": "idling" if known and all(known) else "parking",
    }


def fold(
    fixes: Sequence[Fix], p: Params, *, resume: bool, in_trip: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Trips and parking events of an ordered run of ok fixes (see the module docstring)."""
    if not fixes:
        return [], []
    trips, stops = [], []
    # The current stop began at this fix (with `resume`: where the stored trip ended); None while driving on.
    stop_from: int | None = None if in_trip else 0
    for a, b, reason in fold_spans(fixes, p, resume=resume, in_trip=in_trip):
        row = _trip_row(fixes, a, b, reason, p)
        if row is None:
            continue
        if stop_from is not None and (stop := _stop_row(fixes, stop_from, a, True, p)) is not None:
            stops.append(stop)
        trips.append(row)
        stop_from = b if reason in ("stop", "gap") else None
    if stop_from is not None and (stop := _stop_row(fixes, stop_from, len(fixes) - 1, False, p)) is not None:
        stops.append(stop)
    return trips, stops


# --- the database side ------------------------------------------------------------------------------------------

_OK_FIXES = """
SELECT h.device_id, h.occurred_at, date_part('epoch', h.occurred_at), h.speed_kmh, h.ignition, h.lat, h.lng,
       coalesce(ST_Distance(h.point, lag(h.point) OVER w), 0)
  FROM state_position_history h
 WHERE h.verdict = 'ok' AND {where}
WINDOW w AS (PARTITION BY h.device_id ORDER BY h.occurred_at, h.parsed_id)
 ORDER BY h.device_id, h.occurred_at, h.parsed_id
"""

_TRIPS_INSERT = """
INSERT INTO state_trips (device_id, source, started_at, ended_at, closed, end_reason, start_point, end_point,
                         distance_m, duration_s, max_speed_kmh, avg_speed_kmh, idle_s, fixes, recorded_at)
SELECT device_id, 'derived', started_at, ended_at, closed, end_reason,
       ST_SetSRID(ST_MakePoint(start_lng, start_lat), 4326)::geography,
       ST_SetSRID(ST_MakePoint(end_lng, end_lat), 4326)::geography,
       distance_m, duration_s, max_speed_kmh, avg_speed_kmh, idle_s, fixes, coalesce(recorded_at, clock_timestamp())
  FROM jsonb_to_recordset(%s::jsonb) AS r(device_id bigint, started_at timestamptz, ended_at timestamptz,
       closed boolean, end_reason text, start_lat float8, start_lng float8, end_lat float8, end_lng float8,
       distance_m float8, duration_s float8, max_speed_kmh float8, avg_speed_kmh float8, idle_s float8, fixes int,
       recorded_at timestamptz)
"""

_STOPS_INSERT = """
INSERT INTO state_parking_events (device_id, source, mode, started_at, ended_at, closed, duration_s, point,
                                  address)
SELECT device_id, 'derived', mode, started_at, ended_at, closed, duration_s,
       ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography, ''
  FROM jsonb_to_recordset(%s::jsonb) AS r(device_id bigint, mode text, started_at timestamptz,
       ended_at timestamptz, closed boolean, duration_s float8, lat float8, lng float8)
"""


def _rows(cursor_rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[int, list[Fix]]]:
    """Group (device_id, …fix) rows, ordered by device, into per-device fix lists."""
    device: Any = None  # the current row's device id, as the cursor gives it
    fixes: list[Fix] = []
    for r in cursor_rows:
        if r[0] != device:
            if fixes:
                yield device, fixes
            device, fixes = r[0], []
        fixes.append(Fix(r[1], r[2], r[3], r[4], r[5], r[6], r[7]))
    if fixes:
        yield device, fixes


def _write(device_trips: list[dict[str, Any]], device_stops: list[dict[str, Any]]) -> None:
    with bound_cursor() as cursor:
        if device_trips:
            cursor.execute(_TRIPS_INSERT, [orjson.dumps(device_trips).decode()], prepare=True)
        if device_stops:
            cursor.execute(_STOPS_INSERT, [orjson.dumps(device_stops).decode()], prepare=True)


# Per device of a batch (w: device, lo): the last closed derived trip that nothing at or after `lo` can reopen (the
# module's docstring). The fix that closed a stop or gap is the first ok fix that far after the trip's end.
_RESUME_POINTS = """
SELECT w.device_id, t.ended_at, t.end_reason = 'split'
  FROM unnest(%(devices)s::bigint[], %(los)s::timestamptz[]) AS w(device_id, lo)
  LEFT JOIN LATERAL (
      SELECT s.ended_at, s.end_reason FROM state_trips s
       WHERE s.device_id = w.device_id AND s.source = 'derived' AND s.closed AND s.ended_at < w.lo
         AND (s.ended_at < w.lo - %(margin)s
              OR s.end_reason = 'split'
              OR s.end_reason IN ('stop', 'gap') AND EXISTS (
                     SELECT 1 FROM state_position_history h
                      WHERE h.device_id = w.device_id AND h.verdict = 'ok' AND h.occurred_at < w.lo
                        AND h.occurred_at >= s.ended_at
                            + CASE s.end_reason WHEN 'stop' THEN %(parking)s ELSE %(gap)s END))
       ORDER BY s.ended_at DESC LIMIT 1) t ON true
"""

# The devices of a batch and where each one's re-fold starts.
_SINCE = "unnest(%(devices)s::bigint[], %(since)s::timestamptz[]) AS w(device_id, since)"

# occurred_at as whole microseconds since the epoch (exact): made a datetime in Python for a fraction of what decoding
# a timestamptz costs, at tens of thousands of rows a batch.
_REFOLD_FIXES = f"""
SELECT h.device_id, (extract(epoch FROM h.occurred_at) * 1000000)::int8, date_part('epoch', h.occurred_at),
       h.speed_kmh, h.ignition, h.lat, h.lng,
       coalesce(ST_Distance(h.point, lag(h.point) OVER k), 0)
  FROM state_position_history h JOIN {_SINCE} ON h.device_id = w.device_id
 WHERE h.verdict = 'ok' AND h.occurred_at >= w.since AND h.occurred_at >= %(earliest)s
WINDOW k AS (PARTITION BY h.device_id ORDER BY h.occurred_at, h.parsed_id)
 ORDER BY h.device_id, h.occurred_at, h.parsed_id
"""

_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _resume_points(
    cursor: psycopg.Cursor[Any], los: dict[int, datetime], p: Params
) -> dict[int, tuple[datetime | None, bool]]:
    """Per device, where a re-fold may start: the end of the last closed trip far enough before its `lo`, and
    whether the machine is still driving there (the trip was split) rather than stopped."""
    devices = sorted(los)
    params: dict[str, Any] = {
        "devices": devices,
        "los": [los[d] for d in devices],
        "margin": p.resume_margin,
        "parking": timedelta(seconds=p.parking_s),
        "gap": timedelta(seconds=p.gap_s),
    }
    cursor.execute(_RESUME_POINTS, params, prepare=True)
    return {r[0]: (r[1], bool(r[2])) for r in cursor.fetchall()}


def trips_refold(*, los: dict[int, datetime]) -> None:
    """Re-fold each device from a safe point before `lo` to its last fix; replace the derived rows from there.

    Set-based over the batch's devices: a fixed number of statements whatever their number (where each device
    resumes, the recorded times, the two deletes, the fixes, the two inserts); only the fold itself runs per device.
    """
    if not los:
        return
    p = Params.current()
    devices = sorted(los)
    with bound_cursor() as cursor:
        resume = _resume_points(cursor, los, p)
        since = [resume[d][0] or _EPOCH for d in devices]
        params = {"devices": devices, "since": since, "earliest": min(since)}
        # A re-fold rewrites rows; a trip that comes out the same keeps the time it was first recorded.
        cursor.execute(
            f"SELECT s.device_id, s.started_at, s.ended_at, s.closed, s.recorded_at FROM state_trips s JOIN {_SINCE}"
            "   ON s.device_id = w.device_id"
            " WHERE s.source = 'derived' AND s.started_at >= w.since AND s.recorded_at IS NOT NULL",
            params,
            prepare=True,
        )
        recorded = {(r[0], r[1].isoformat(), r[2].isoformat(), r[3]): r[4].isoformat() for r in cursor.fetchall()}
        for table in ("state_trips", "state_parking_events"):
            cursor.execute(
                f"DELETE FROM {table} s USING {_SINCE}"
                " WHERE s.device_id = w.device_id AND s.source = 'derived' AND s.started_at >= w.since",
                params,
                prepare=True,
            )
        cursor.execute(_REFOLD_FIXES, params, prepare=True)
        rows = [(r[0], _UNIX_EPOCH + timedelta(microseconds=r[1]), *r[2:]) for r in cursor.fetchall()]
    all_trips: list[dict[str, Any]] = []
    all_stops: list[dict[str, Any]] = []
    for device_id, fixes in _rows(rows):
        started, driving = resume[device_id]
        trips, stops = fold(fixes, p, resume=started is not None, in_trip=driving)
        for t in trips:
            t["device_id"] = device_id
            t["recorded_at"] = recorded.get((device_id, t["started_at"], t["ended_at"], t["closed"]))
        all_trips += trips
        all_stops += [{**s, "device_id": device_id} for s in stops]
    _write(all_trips, all_stops)
    reports_match(device_ids=devices)


# Rows per round trip of the rebuild's stream of fixes, and round trips fetched ahead of the fold.
REBUILD_FETCH_ROWS = 20_000
REBUILD_FETCH_AHEAD = 2


def _ok_fixes_streamed(where: str, params: Sequence[Any]) -> Iterator[tuple[int, list[Fix]]]:
    """Every ok fix matching `where`, per device in fold order, for the rebuild.

    Read through a server-side cursor in binary: the values arrive as Python objects from psycopg's C loaders
    (Django's text timestamptz loader is Python, a third of the rebuild's time), many thousand rows a round trip.
    A thread fetches the next round trips while the caller folds the last: the database computes the window and
    the geodesic distances of the next rows on one core while Python folds on the other. The thread uses the
    connection alone (the caller issues no statement until the stream ends) and stops when the caller does."""
    connection.ensure_connection()
    conn = connection.connection
    chunks: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(maxsize=REBUILD_FETCH_AHEAD)
    stop = threading.Event()

    def put(item: list[tuple[Any, ...]] | BaseException | None) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def fetch() -> None:
        try:
            with psycopg.ServerCursor(conn, "state_trips_rebuild", withhold=conn.autocommit) as cursor:
                cursor.execute(_OK_FIXES.format(where=where), params, binary=True)
                while not stop.is_set() and (rows := cursor.fetchmany(REBUILD_FETCH_ROWS)):
                    put(rows)
            put(None)
        except BaseException as exc:  # handed to the caller, raised there
            put(exc)

    fetcher = threading.Thread(target=fetch, name="trips-rebuild-fetch", daemon=True)
    fetcher.start()
    make = tuple.__new__
    device: int | None = None
    fixes: list[Fix] = []
    try:
        while (rows := chunks.get()) is not None:
            if isinstance(rows, BaseException):
                raise rows
            for row in rows:
                if row[0] != device:
                    if fixes:
                        yield cast(int, device), fixes
                    device, fixes = row[0], []
                fixes.append(make(Fix, row[1:]))
        if fixes:
            yield cast(int, device), fixes
    finally:
        stop.set()
        fetcher.join()


def trips_rebuild(*, device_ids: Sequence[int] | None = None, progress: Callable[[int], object] | None = None) -> int:
    """Replay: fold every (or these) device(s) from its first fix, streaming history once. Returns fixes read."""
    p = Params.current()
    where, params = ("h.device_id = ANY(%s)", [list(device_ids)]) if device_ids is not None else ("true", [])
    with connection.cursor() as cursor:
        for table in ("state_trips", "state_parking_events"):
            if device_ids is None:
                cursor.execute(f"DELETE FROM {table} WHERE source = 'derived'")
            else:
                cursor.execute(f"DELETE FROM {table} WHERE source = 'derived' AND device_id = ANY(%s)", params)
    read = 0
    trips: list[dict[str, Any]] = []
    stops: list[dict[str, Any]] = []
    for device_id, fixes in _ok_fixes_streamed(where, params):
        t, s = fold(fixes, p, resume=False)
        trips += [{**row, "device_id": device_id} for row in t]
        stops += [{**row, "device_id": device_id} for row in s]
        read += len(fixes)
        if progress is not None:
            progress(len(fixes))
    _write(trips, stops)
    reports_match(device_ids=device_ids)
    return read


# --- Jimi's reports -----------------------------------------------------------------------------------------------

_REPORTED_TRIPS = """
INSERT INTO state_trips (device_id, source, started_at, ended_at, closed, end_reason, start_point, end_point,
                         reported_distance, duration_s, max_speed_kmh, avg_speed_kmh, parsed_id)
SELECT DISTINCT ON (p.device_id, p.occurred_at)
       p.device_id, 'jimi', p.occurred_at, (p.payload->>'end_time')::timestamptz, p.payload->>'end_time' IS NOT NULL,
       '',
       CASE WHEN p.payload->>'start_lat' IS NOT NULL THEN ST_SetSRID(ST_MakePoint(
           (p.payload->>'start_lng')::float8, (p.payload->>'start_lat')::float8), 4326)::geography END,
       CASE WHEN p.payload->>'end_lat' IS NOT NULL THEN ST_SetSRID(ST_MakePoint(
           (p.payload->>'end_lng')::float8, (p.payload->>'end_lat')::float8), 4326)::geography END,
       (p.payload->>'distance')::float8,
       date_part('epoch', (p.payload->>'end_time')::timestamptz - p.occurred_at),
       (p.payload->>'max_speed_kmh')::float8, (p.payload->>'avg_speed_kmh')::float8, p.id
  FROM events_parsed p
 WHERE p.kind = 'trip_report' AND p.device_id IS NOT NULL AND {where}
 ORDER BY p.device_id, p.occurred_at, (p.payload->>'end_time')::timestamptz DESC NULLS LAST, p.id DESC
"""

_REPORTED_STOPS = """
INSERT INTO state_parking_events (device_id, source, mode, started_at, ended_at, closed, duration_s, point,
                                  address, parsed_id)
SELECT DISTINCT ON (p.device_id, p.occurred_at, coalesce(p.payload->>'mode', 'parking'))
       p.device_id, 'jimi', coalesce(p.payload->>'mode', 'parking'), p.occurred_at,
       (p.payload->>'end_time')::timestamptz, p.payload->>'end_time' IS NOT NULL,
       coalesce((p.payload->>'duration_s')::float8,
                date_part('epoch', (p.payload->>'end_time')::timestamptz - p.occurred_at)),
       CASE WHEN p.payload->>'lat' IS NOT NULL THEN ST_SetSRID(ST_MakePoint(
           (p.payload->>'lng')::float8, (p.payload->>'lat')::float8), 4326)::geography END,
       coalesce(p.payload->>'address', ''), p.id
  FROM events_parsed p
 WHERE p.kind = 'parking_report' AND p.device_id IS NOT NULL AND {where}
 ORDER BY p.device_id, p.occurred_at, coalesce(p.payload->>'mode', 'parking'),
          (p.payload->>'end_time')::timestamptz DESC NULLS LAST, p.id DESC
"""


def reports_refresh(*, keys: Sequence[tuple[int | None, datetime]]) -> None:
    """Rewrite the reported rows of these (device, start) keys from the versions events_parsed holds now."""
    keys = sorted({k for k in keys if k[0] is not None})
    if not keys:
        return
    params: dict[str, Any] = {"devices": [k[0] for k in keys], "starts": [k[1] for k in keys]}
    match = "(p.device_id, p.occurred_at) IN (SELECT * FROM unnest(%(devices)s::bigint[], %(starts)s::timestamptz[]))"
    with connection.cursor() as cursor:
        for table in ("state_trips", "state_parking_events"):
            cursor.execute(
                f"DELETE FROM {table} WHERE source = 'jimi' AND (device_id, started_at) IN"
                " (SELECT * FROM unnest(%(devices)s::bigint[], %(starts)s::timestamptz[]))",
                params,
            )
        cursor.execute(_REPORTED_TRIPS.format(where=match), params)
        cursor.execute(_REPORTED_STOPS.format(where=match), params)
    reports_match(device_ids=params["devices"])


def reports_rebuild(*, device_ids: Sequence[int] | None = None) -> None:
    """Rewrite the reported rows of these devices from events_parsed, unlinked (the caller matches them).

    None means every device; an empty list means no device, and nothing is touched."""
    if device_ids is not None and not device_ids:
        return
    every = device_ids is None
    where, params = (
        ("true", {}) if device_ids is None else ("p.device_id = ANY(%(devices)s)", {"devices": list(device_ids)})
    )
    with connection.cursor() as cursor:
        for table in ("state_trips", "state_parking_events"):
            scope = "" if every else " AND device_id = ANY(%(devices)s)"
            cursor.execute(f"DELETE FROM {table} WHERE source = 'jimi'{scope}", params)
        cursor.execute(_REPORTED_TRIPS.format(where=where), params)
        cursor.execute(_REPORTED_STOPS.format(where=where), params)


_MATCH = """
UPDATE {table} r SET matched_started_at = m.started_at
  FROM (SELECT r2.id, (
            SELECT d.started_at FROM {table} d
             WHERE d.device_id = r2.device_id AND d.source = 'derived' {same_mode}
               AND tstzrange(d.started_at, d.ended_at, '[]')
                   && tstzrange(r2.started_at, coalesce(r2.ended_at, r2.started_at), '[]')
             ORDER BY upper(tstzrange(d.started_at, d.ended_at, '[]')
                            * tstzrange(r2.started_at, coalesce(r2.ended_at, r2.started_at), '[]'))
                    - lower(tstzrange(d.started_at, d.ended_at, '[]')
                            * tstzrange(r2.started_at, coalesce(r2.ended_at, r2.started_at), '[]')) DESC,
                      d.started_at
             LIMIT 1) AS started_at
          FROM {table} r2 WHERE r2.source = 'jimi' {scope}) m
 WHERE r.id = m.id AND r.matched_started_at IS DISTINCT FROM m.started_at
"""


def reports_match(*, device_ids: Sequence[int] | None) -> None:
    """Link each reported row to the derived row of the same device it overlaps most (or to none)."""
    scope = "AND r2.device_id = ANY(%(devices)s::bigint[])" if device_ids is not None else ""
    params = {"devices": list(device_ids or [])}
    with bound_cursor() as cursor:
        cursor.execute(_MATCH.format(table="state_trips", same_mode="", scope=scope), params, prepare=True)
        cursor.execute(
            _MATCH.format(table="state_parking_events", same_mode="AND d.mode = r2.mode", scope=scope),
            params,
            prepare=True,
        )
