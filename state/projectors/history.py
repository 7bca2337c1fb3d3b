"""Owner of state_position_history: every position fix, with a quality verdict — never deleted for being bad.

Verdicts, first match wins: invalid (lat/lng missing or out of range), zero (0,0), future (dated more than
fix_future_tolerance_s after its arrival), duplicate (same device time as an earlier parsed id), approximate
(LBS / Wi-Fi / beacon), jump, ok. A jump is judged against BOTH neighbours among the fixes that passed the
checks before it: the implied speed from the previous and to the next fix both exceed fix_max_speed_kmh while
the neighbours agree with each other (at the ends of the track: the two fixes on the one side agree).

Computed in SQL with window functions, over each changed device window widened by the neighbours that can see
the change: a fix's verdict depends on up to two checked fixes either side, so the window is recomputed from
the second checked fix before it to the second after, reading one more on each side.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from slo.thresholds import threshold
from state.projectors.db import bound_cursor

CHECKED = "('ok', 'jump')"
# Partitions are made for device times this far back and ahead of now; anything else lands in DEFAULT.
PARTITION_SPAN = (
    timedelta(days=3 * 365),
    timedelta(days=120),
)  # fixes that passed every check but the jump check: the neighbours of a jump test

_FIELDS = """
    (p.payload->>'lat')::float8 AS lat, (p.payload->>'lng')::float8 AS lng,
    (p.payload->>'speed_kmh')::float8 AS speed_kmh, (p.payload->>'heading')::float8 AS heading,
    (p.payload->>'ignition')::boolean AS ignition, (p.payload->>'satellites')::float8::int AS satellites,
    p.payload->>'position_type' AS position_type,
    coalesce((p.payload->>'retransmitted')::boolean, false) AS retransmitted,
    (p.payload->>'battery_pct')::float8 AS battery_pct
"""

_COLUMNS = (
    "parsed_id, device_id, occurred_at, received_at, lat, lng, point, speed_kmh, heading, ignition, satellites,"
    " position_type, retransmitted, battery_pct"
)


def _fixes_from_parsed(where: str) -> str:
    """position_fix rows of events_parsed as history columns (no verdict yet)."""
    return f"""
    SELECT f.id AS parsed_id, f.device_id, f.occurred_at, f.received_at, f.lat, f.lng,
           CASE WHEN abs(f.lat) <= 90 AND abs(f.lng) <= 180
                THEN ST_SetSRID(ST_MakePoint(f.lng, f.lat), 4326)::geography END AS point,
           f.speed_kmh, f.heading, f.ignition, f.satellites, f.position_type, f.retransmitted, f.battery_pct
      FROM (SELECT p.id, p.device_id, p.occurred_at, p.received_at, {_FIELDS}
              FROM events_parsed p
             WHERE p.kind = 'position_fix' AND p.device_id IS NOT NULL AND {where}) f
    """


# The verdict rules, stated once: the incremental recompute (_verdicts) and the rebuild (_REBUILD) plan them
# differently around these fragments.
_BASE_VERDICT = """
           CASE
             WHEN f.lat IS NULL OR f.lng IS NULL OR abs(f.lat) > 90 OR abs(f.lng) > 180 THEN 'invalid'
             WHEN f.lat = 0 AND f.lng = 0 THEN 'zero'
             WHEN f.occurred_at > f.received_at + %(future_s)s * interval '1 second' THEN 'future'
             WHEN first_value(f.parsed_id) OVER same_time <> f.parsed_id THEN 'duplicate'
             WHEN f.position_type IN ('lbs', 'wifi', 'beacon') THEN 'approximate'
           END AS base"""

# Two checked fixes either side (window w over b).
_NEIGHBOURS = """
           lag(b.lat) OVER w AS p1_lat, lag(b.lng) OVER w AS p1_lng, lag(b.occurred_at) OVER w AS p1_t,
           lag(b.lat, 2) OVER w AS p2_lat, lag(b.lng, 2) OVER w AS p2_lng, lag(b.occurred_at, 2) OVER w AS p2_t,
           lead(b.lat) OVER w AS n1_lat, lead(b.lng) OVER w AS n1_lng, lead(b.occurred_at) OVER w AS n1_t,
           lead(b.lat, 2) OVER w AS n2_lat, lead(b.lng, 2) OVER w AS n2_lng,
           lead(b.occurred_at, 2) OVER w AS n2_t"""

# A checked fix (of s, with v_prev and v_next) is a jump.
_IS_JUMP = """
            coalesce(s.v_prev, s.v_next) IS NOT NULL
            AND (s.v_prev IS NULL OR s.v_prev > %(max_kmh)s)
            AND (s.v_next IS NULL OR s.v_next > %(max_kmh)s)
            AND CASE
                  WHEN s.v_prev IS NOT NULL AND s.v_next IS NOT NULL
                    THEN state_implied_kmh(s.p1_lat, s.p1_lng, s.p1_t, s.n1_lat, s.n1_lng, s.n1_t)
                  WHEN s.v_prev IS NULL
                    THEN state_implied_kmh(s.n1_lat, s.n1_lng, s.n1_t, s.n2_lat, s.n2_lng, s.n2_t)
                  ELSE state_implied_kmh(s.p2_lat, s.p2_lng, s.p2_t, s.p1_lat, s.p1_lng, s.p1_t)
                END <= %(max_kmh)s"""

# The reason of a fix that failed a base check (x.base), and of a jump (x.v_prev, x.v_next).
_BASE_REASONS = """
         WHEN 'invalid' THEN 'lat/lng out of range'
         WHEN 'zero' THEN '0,0: no position (expired or unfixed device)'
         WHEN 'future' THEN format('dated %%s s after its arrival',
                                   round(date_part('epoch', x.occurred_at - x.received_at)))
         WHEN 'duplicate' THEN format('same device time as parsed #%%s', x.first_id)
         WHEN 'approximate' THEN x.position_type || ' position'"""
_JUMP_REASON = """format('implied %%s km/h from the previous fix, %%s km/h to the next',
                           coalesce(round(x.v_prev)::text, '-'), coalesce(round(x.v_next)::text, '-'))"""


def _verdicts(columns: str) -> str:
    """CTEs base → seq → judged → verdicts over a CTE `fixes` with at least parsed_id, device_id, occurred_at,
    received_at, lat, lng, position_type; `verdicts` carries `columns` plus verdict and reason."""
    cols = ", ".join(f"x.{c.strip()}" for c in columns.split(","))
    return f"""
    base AS (
        SELECT f.*, first_value(f.parsed_id) OVER same_time AS first_id, {_BASE_VERDICT}
          FROM fixes f
        WINDOW same_time AS (PARTITION BY f.device_id, f.occurred_at ORDER BY f.parsed_id)
    ),
    seq AS (
        SELECT b.*, {_NEIGHBOURS}
          FROM base b
         WHERE b.base IS NULL
        WINDOW w AS (PARTITION BY b.device_id ORDER BY b.occurred_at, b.parsed_id)
    ),
    speeds AS (
        SELECT s.*,
               state_implied_kmh(s.p1_lat, s.p1_lng, s.p1_t, s.lat, s.lng, s.occurred_at) AS v_prev,
               state_implied_kmh(s.lat, s.lng, s.occurred_at, s.n1_lat, s.n1_lng, s.n1_t) AS v_next
          FROM seq s
    ),
    judged AS (
        SELECT s.*, ({_IS_JUMP}) AS is_jump
          FROM speeds s
    ),
    verdicts AS (
        SELECT {cols}, x.base AS verdict, CASE x.base {_BASE_REASONS} END AS reason
          FROM base x
         WHERE x.base IS NOT NULL
        UNION ALL
        SELECT {cols}, CASE WHEN x.is_jump THEN 'jump' ELSE 'ok' END,
               CASE WHEN x.is_jump THEN {_JUMP_REASON} ELSE '' END
          FROM judged x
    )
    """


def _params() -> dict[str, float]:
    return {
        "future_s": float(threshold("fix_future_tolerance_s")),
        "max_kmh": float(threshold("fix_max_speed_kmh")),
    }


def history_partitions_cover(*, lo: datetime, hi: datetime) -> None:
    """Monthly partitions for every month of [lo, hi] (late data and replays reach far back) — within
    PARTITION_SPAN of now: a tracker whose clock reset to 2000 gets the DEFAULT partition, not a table a month."""
    # Timedeltas are parameters psycopg adapts (interval), which django-stubs' parameter type leaves out.
    params: dict[str, Any] = {"lo": lo, "hi": hi, "back": PARTITION_SPAN[0], "ahead": PARTITION_SPAN[1]}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT fleet_partition_month('state_position_history', 'occurred_at', m::date, false)"
            "  FROM generate_series("
            "         date_trunc('month', greatest(%(lo)s::timestamptz, now() - %(back)s) AT TIME ZONE 'UTC'),"
            "         date_trunc('month', least(%(hi)s::timestamptz, now() + %(ahead)s) AT TIME ZONE 'UTC'),"
            "         interval '1 month') m",
            params,
        )


def history_refresh(*, parsed_ids: Sequence[int], occurred: Sequence[datetime]) -> None:
    """Make history rows of these parsed events match events_parsed (insert, rewrite, or drop). Verdicts are
    placeholders until verdicts_recompute() runs over the window."""
    with bound_cursor() as cursor:
        params = {"ids": list(parsed_ids), "ats": sorted(set(occurred))}
        # occurred_at lets the planner prune partitions of both tables.
        cursor.execute(
            "DELETE FROM state_position_history WHERE parsed_id = ANY(%(ids)s::bigint[])"
            " AND occurred_at = ANY(%(ats)s::timestamptz[])",
            params,
            prepare=True,
        )
        cursor.execute(
            f"INSERT INTO state_position_history ({_COLUMNS}, verdict, reason)"
            f" SELECT {_COLUMNS}, 'ok', '' FROM ("
            + _fixes_from_parsed("p.id = ANY(%(ids)s::bigint[]) AND p.occurred_at = ANY(%(ats)s::timestamptz[])")
            + ") x",
            params,
            prepare=True,
        )


def verdicts_recompute(windows: dict[int, tuple[datetime, datetime]]) -> dict[int, datetime]:
    """Recompute the verdicts of each device's window [lo, hi] and of the fixes whose neighbourhood it touches.
    Returns, per device, the earliest fix whose verdict changed (trips must be re-folded from there)."""
    if not windows:
        return {}
    devices = list(windows)
    sql = f"""
    WITH w AS (
        SELECT * FROM unnest(%(devices)s::bigint[], %(los)s::timestamptz[], %(his)s::timestamptz[])
               AS w(device_id, lo, hi)
    ),
    r AS MATERIALIZED (  -- once per device: inlined, the neighbour look-ups ran again for every partition scanned
        SELECT w.device_id,
               coalesce(({_neighbour("<", "DESC", 2)}), '-infinity') AS c_lo,
               coalesce(({_neighbour("<", "DESC", 1)}), '-infinity') AS u_lo,
               coalesce(({_neighbour(">", "ASC", 1)}), 'infinity') AS u_hi,
               coalesce(({_neighbour(">", "ASC", 2)}), 'infinity') AS c_hi
          FROM w
    ),
    fixes AS (
        SELECT h.parsed_id, h.device_id, h.occurred_at, h.received_at, h.lat, h.lng, h.position_type
          FROM state_position_history h JOIN r ON h.device_id = r.device_id
         WHERE h.occurred_at BETWEEN r.c_lo AND r.c_hi
    ),
    {_verdicts("parsed_id, device_id, occurred_at")}
    UPDATE state_position_history h SET verdict = v.verdict, reason = v.reason
      FROM verdicts v JOIN r ON r.device_id = v.device_id
     WHERE h.parsed_id = v.parsed_id AND h.occurred_at = v.occurred_at
       AND v.occurred_at BETWEEN r.u_lo AND r.u_hi
       AND (h.verdict, h.reason) IS DISTINCT FROM (v.verdict, v.reason)
    RETURNING h.device_id, h.occurred_at
    """
    params = {
        "devices": devices,
        "los": [windows[d][0] for d in devices],
        "his": [windows[d][1] for d in devices],
        **_params(),
    }
    changed: dict[int, datetime] = {}
    with bound_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        for device_id, at in cursor.fetchall():
            if device_id not in changed or at < changed[device_id]:
                changed[device_id] = at
    return changed


def _neighbour(op: str, order: str, offset: int) -> str:
    """The (offset+1)-th checked fix of w.device_id before (<) or after (>) the window."""
    edge = "w.lo" if op == "<" else "w.hi"
    return (
        f"SELECT h.occurred_at FROM state_position_history h WHERE h.device_id = w.device_id"
        f" AND h.occurred_at {op} {edge} AND h.verdict IN {CHECKED}"
        f" ORDER BY h.occurred_at {order}, h.parsed_id {order} OFFSET {offset} LIMIT 1"
    )


# Memory for each sort of the rebuild's statement (about 150 bytes a fix: a million fixes sort in memory).
REBUILD_WORK_MEM = "256MB"

_COLUMN_LIST = [c.strip() for c in _COLUMNS.split(",")]
# The point is made after the sorts, from the same lat and lng by the same expression as _fixes_from_parsed's (so
# the sorts and windows carry a fix's numbers, not its geography).
_UNPOINTED = [c for c in _COLUMN_LIST if c != "point"]
_POINT_FROM_X = (
    "CASE WHEN abs(x.lat) <= 90 AND abs(x.lng) <= 180 THEN ST_SetSRID(ST_MakePoint(x.lng, x.lat), 4326)::geography END"
)

# The rebuild's verdicts: the same rules as _verdicts, in one pipeline without a materialised CTE. Every fix of a
# whole device is there, so no neighbour lies outside it, and the lags "over the checked fixes only" are lags over a
# partition of the checked ones (PARTITION BY device, base IS NULL): one sort for the same-time window, one for
# that, both of narrow rows (the payload's fields are read before the first sort, not carried through it). Speeds
# are computed for checked fixes only. Fixes that failed a base check get their reason as in _verdicts.
_REBUILD = f"""
WITH fixes AS (SELECT * FROM ({{fixes}}) f OFFSET 0),
base AS (
    SELECT {", ".join(f"f.{c}" for c in _UNPOINTED)}, first_value(f.parsed_id) OVER same_time AS first_id,
           {_BASE_VERDICT}
      FROM fixes f
    WINDOW same_time AS (PARTITION BY f.device_id, f.occurred_at ORDER BY f.parsed_id)
),
seq AS (
    SELECT b.*, {_NEIGHBOURS},
           CASE WHEN b.base IS NULL
                THEN state_implied_kmh(lag(b.lat) OVER w, lag(b.lng) OVER w, lag(b.occurred_at) OVER w,
                                       b.lat, b.lng, b.occurred_at) END AS v_prev
      FROM base b
    WINDOW w AS (PARTITION BY b.device_id, b.base IS NULL ORDER BY b.occurred_at, b.parsed_id)
),
speeds AS (
    -- The speed to the next fix is that fix's speed from this one: the same call with the same arguments.
    SELECT s.*, lead(s.v_prev) OVER w AS v_next
      FROM seq s
    WINDOW w AS (PARTITION BY s.device_id, s.base IS NULL ORDER BY s.occurred_at, s.parsed_id)
),
judged AS (
    SELECT s.*, (s.base IS NULL AND {_IS_JUMP}) AS is_jump
      FROM speeds s
)
INSERT INTO state_position_history ({_COLUMNS}, verdict, reason)
SELECT {", ".join(_POINT_FROM_X if c == "point" else f"x.{c}" for c in _COLUMN_LIST)},
       coalesce(x.base, CASE WHEN x.is_jump THEN 'jump' ELSE 'ok' END),
       CASE x.base {_BASE_REASONS}
         ELSE CASE WHEN x.is_jump THEN {_JUMP_REASON} ELSE '' END
       END
  FROM judged x
"""


def history_rebuild(*, where: str, params: dict[str, Any], delete_where: str | None) -> int:
    """Replay: drop the history rows matching `delete_where` (alias h; None: the table was just emptied) and
    rebuild them from events_parsed rows matching `where` (alias p), verdicts computed in the same statement
    (_REBUILD: the rules of _verdicts, planned for a whole table). Only for a scope whose verdicts need no
    neighbours outside it (whole devices); narrower scopes go through history_refresh + verdicts_recompute."""
    with connection.cursor() as cursor:
        if delete_where is not None:
            cursor.execute(f"DELETE FROM state_position_history h WHERE {delete_where}", params)
        # One statement over every fix: its sorts in memory rather than in temporary files, and no JIT compilation
        # (seconds of it, for a statement run once); the settings are put back for the rest of the transaction.
        cursor.execute("SELECT current_setting('work_mem'), current_setting('jit')")
        before = cursor.fetchone()
        cursor.execute("SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)", [REBUILD_WORK_MEM])
        cursor.execute(_REBUILD.format(fixes=_fixes_from_parsed(where)), {**params, **_params()})
        rebuilt: int = cursor.rowcount
        cursor.execute("SELECT set_config('work_mem', %s, true), set_config('jit', %s, true)", before)
        return rebuilt


def history_truncate() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE state_position_history")
