"""The pieces of the live view's validators and cursors that need no database (the HTTP behaviour:
fleet/tests/test_views_sync.py)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from state.dashboards.selectors import ViewFilters
from state.dashboards.sync import Cursor, Keyed, _widen, view_scope
from state.selectors import StateThresholds, freshness_class, operational_state, state_flip_ages

T = StateThresholds(fresh_s=60, stale_s=600, offline_s=86_400, moving_kmh=5)
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SCALES = (90, 900, 9_000, 100_000)


def _state(fix_at, speed, fix_ignition, heartbeat_at, heartbeat_ignition, now):
    return (
        operational_state(
            fix_at=fix_at, fix_speed_kmh=speed, fix_ignition=fix_ignition, heartbeat_at=heartbeat_at,
            heartbeat_ignition=heartbeat_ignition, now=now, t=T,
        ),
        freshness_class(fix_at=fix_at, now=now, t=T),
    )  # fmt: skip


def test_state_and_freshness_change_with_time_only_at_the_flip_ages():
    """Between two moments of state_flip_ages (the fix's ages, and the ages of the newest of fix and heartbeat),
    neither changes: a cursor that knows those moments knows when a 304 stops being true."""
    rng = random.Random(7)
    fix_ages, seen_ages = state_flip_ages(T)
    for _ in range(400):
        # Ages on every scale of the thresholds (seconds to days), so that each threshold is passed in some cases.
        fix_at = NOW - timedelta(seconds=rng.uniform(0, rng.choice(SCALES))) if rng.random() < 0.9 else None
        heartbeat_at = NOW - timedelta(seconds=rng.uniform(0, rng.choice(SCALES))) if rng.random() < 0.6 else None
        speed, fix_ignition = rng.choice([0.0, 3.0, 5.0, 40.0]), rng.choice([True, False, None])
        heartbeat_ignition = rng.choice([True, False, None])
        seen = max([m for m in (fix_at, heartbeat_at) if m is not None], default=None)
        moments = sorted(
            [fix_at + timedelta(seconds=a) for a in fix_ages if fix_at is not None]
            + [seen + timedelta(seconds=a) for a in seen_ages if seen is not None]
        )
        # Sample the time line between the moments, near their ends and in between: constant between two.
        edges = [NOW, *[m for m in moments if m > NOW], NOW + timedelta(days=3)]
        for start, end in itertools.pairwise(edges):
            samples = [start + (end - start) * f for f in (1e-6, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999)]
            samples += [start + timedelta(seconds=s) for s in (0.01, 1, 10, 100, 1000, 10_000)]
            seen_states = {
                _state(fix_at, speed, fix_ignition, heartbeat_at, heartbeat_ignition, at)
                for at in samples
                if start < at < end
            }
            assert len(seen_states) == 1, (fix_at, heartbeat_at, start, end, seen_states)


def test_a_cursor_is_read_back_only_by_its_own_scope_and_never_when_tampered_with():
    scope = view_scope(ViewFilters(cost_centres=("North",)), "7")
    cursor = Cursor(scope, 123_456_789, 1_796_000_000_000, 1_796_000_060_000, 42, 43, 10_000, 2**63, 3, 2**64 - 1)
    token = cursor.token()
    assert Cursor.read(token, scope) == cursor
    assert Cursor.read(token, view_scope(ViewFilters(cost_centres=("South",)), "7")) is None  # other filters
    assert Cursor.read(token, view_scope(ViewFilters(cost_centres=("North",)), "8")) is None  # other user
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert Cursor.read(flipped, scope) is None
    for junk in ("", "x", "%%%", token + "AAAA", token[:-2]):
        assert Cursor.read(junk, scope) is None


def test_a_deleted_row_is_never_taken_for_an_update():
    """A table keyed by device at a cursor ({1, 2, 3}) and now: whether no row can have been deleted since."""

    def digest(keys):
        out = 0
        for key in keys:
            out ^= hash((key, "k")) & (2**64 - 1)
        return out

    def now(rows, changed):
        return Keyed(len(rows), digest(rows), tuple(changed), len(changed), digest(changed))

    before = {1, 2, 3}
    old = (len(before), digest(before))
    assert now({1, 2, 3}, []).nothing_deleted_since(*old)  # nothing happened
    assert now({1, 2, 3}, [2]).nothing_deleted_since(*old)  # 2 updated
    assert now({1, 2, 3, 4}, [4]).nothing_deleted_since(*old)  # 4 inserted
    assert not now({1, 3}, []).nothing_deleted_since(*old)  # 2 deleted
    assert not now({1, 3, 4}, [4]).nothing_deleted_since(*old)  # 2 deleted, 4 inserted: same count
    assert not now({1, 3, 4}, [3, 4]).nothing_deleted_since(*old)  # 2 deleted, 3 updated, 4 inserted
    assert not now({1, 2, 3, 4}, [2, 4]).nothing_deleted_since(*old)  # ambiguous (update and insert): start over


def test_a_running_transaction_id_is_widened_to_64_bits_on_either_side_of_the_next_id():
    """pg_stat_activity shows 32-bit ids; a transaction still running may have taken its id after the snapshot's
    next id was read, so it may be a little ahead of it as well as behind, across a wrap of the 32-bit counter."""
    assert _widen(100, 105) == 100
    assert _widen(110, 105) == 110  # taken after the snapshot: ahead, not 2^32 behind
    assert _widen(2**32 - 6, 2**32 + 5) == 2**32 - 6  # behind, across the wrap
    assert _widen(3, 2**32 - 2) == 2**32 + 3  # ahead, across the wrap
