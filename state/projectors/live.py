"""Owner of state_live_positions: per device, the latest ok fix by DEVICE time.

Chosen from history, not from the batch: a late or re-transmitted fix (Jimi gpsMode=1, hours late) is older
than the row's fix and changes nothing, so the live position never moves backwards; a fix that stops being ok
(a reparse, a neighbour revealing a jump) hands the row back to the fix before it. `updated_at` is stamped with
clock_timestamp() only when the row really changes (bench_freshness measures push → that moment).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from state.projectors.db import bound_cursor

_LATEST_OK = """
    SELECT d.id AS device_id, f.*
      FROM unnest(%(devices)s::bigint[]) AS d(id)
      CROSS JOIN LATERAL (
          SELECT h.parsed_id, h.occurred_at, h.received_at, h.point, h.speed_kmh, h.heading, h.ignition,
                 h.satellites, h.battery_pct
            FROM state_position_history h
           WHERE h.device_id = d.id AND h.verdict = 'ok'
           ORDER BY h.occurred_at DESC, h.parsed_id DESC
           LIMIT 1) f
"""

_COLUMNS = "parsed_id, occurred_at, received_at, point, speed_kmh, heading, ignition, satellites, battery_pct"


def _compared(alias: str) -> str:
    # geography has no equality operator: compare its bytes.
    return (
        "("
        + ", ".join(f"ST_AsBinary({alias}.{c})" if c == "point" else f"{alias}.{c}" for c in _COLUMNS.split(", "))
        + ")"
    )


def live_positions_refresh(*, device_ids: Sequence[int]) -> None:
    if not device_ids:
        return
    params = {"devices": sorted(set(device_ids))}
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS.split(", "))
    with bound_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO state_live_positions (device_id, {_COLUMNS}, updated_at)"
            f" SELECT device_id, {_COLUMNS}, clock_timestamp() FROM ({_LATEST_OK}) x"
            f" ON CONFLICT (device_id) DO UPDATE SET {updates}, updated_at = clock_timestamp()"
            f" WHERE {_compared('state_live_positions')} IS DISTINCT FROM {_compared('EXCLUDED')}",
            params,
            prepare=True,
        )
        # A device whose every fix stopped being ok has no live position.
        cursor.execute(
            "DELETE FROM state_live_positions l WHERE l.device_id = ANY(%(devices)s::bigint[]) AND NOT EXISTS ("
            " SELECT 1 FROM state_position_history h WHERE h.device_id = l.device_id AND h.verdict = 'ok')",
            params,
            prepare=True,
        )


def live_positions_rebuild_all() -> None:
    """Replay: every device's row from history in one statement. The devices are walked on history's (device,
    time) index, one probe for the next device and one for its latest ok fix each, not by sorting all history."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE state_live_positions")
        cursor.execute(
            "WITH RECURSIVE d AS ("
            "   SELECT min(device_id) AS id FROM state_position_history"
            "   UNION ALL"
            "   SELECT (SELECT min(h.device_id) FROM state_position_history h WHERE h.device_id > d.id)"
            "     FROM d WHERE d.id IS NOT NULL)"
            f" INSERT INTO state_live_positions (device_id, {_COLUMNS}, updated_at)"
            f" SELECT d.id, {', '.join('f.' + c for c in _COLUMNS.split(', '))}, clock_timestamp()"
            "   FROM d CROSS JOIN LATERAL ("
            f"       SELECT {', '.join('h.' + c for c in _COLUMNS.split(', '))}"
            "         FROM state_position_history h WHERE h.device_id = d.id AND h.verdict = 'ok'"
            "        ORDER BY h.occurred_at DESC, h.parsed_id DESC LIMIT 1) f"
            "  WHERE d.id IS NOT NULL"
        )
