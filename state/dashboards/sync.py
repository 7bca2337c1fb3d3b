"""The live view on the wire: a validator on every answer (ETag → 304 Not Modified) and a cursor (`since=`) that asks
for what changed. docs/architecture.md, "The live view on the wire", explains the choices; in short:

- **What changed is read off the rows themselves.** Every row version carries the id of the transaction that wrote it
  (`xmin`). An answer records a *horizon*: a transaction id such that any row committed after the answer's snapshot
  was written by a transaction whose id is at least the horizon (`horizon()`: the oldest transaction of this
  database still running, or the next id). A row "changed since" a cursor is one whose `xmin` is not older than its
  horizon. Commit order cannot hide a row (a transaction that began before the cursor and committed after it is
  still running when the horizon is taken), subtransactions are covered (their ids are newer than their parent's),
  and nothing is written on the ingest path: no trigger, no column, no change log. The price is a scan of the
  tables the view reads (about 0.5 ms per 10,000 rows) and, while a long writing transaction runs in this database,
  deltas that repeat what changed since it began (never less).
- **Deleted rows** leave no `xmin`: a domain table's row count, and the live positions' and device summaries' row
  counts with a digest of their key sets, are part of the cursor; a deletion there answers the whole view again.
- **Time.** A vehicle's operational state and freshness change as its fix ages, with no row changing
  (`state.selectors.state_flip_ages`), and so does the driver on duty at an assignment's start or end. A cursor
  records the earliest such moment after its answer (`until`): no 304 from then on, and a delta also sends every
  vehicle with such a moment between the cursor and now. `age_s` and `generated_at` are "as of `generated_at`"
  (a client ages them by the time since); that is why the validators are weak (`W/"…"`).
- Anything else the payload depends on is in the cursor's fingerprints: the domain tables (a change there answers
  the whole view: such changes are rare), the thresholds and settings, the SLO block, and the sources other layers
  register (`register_change_source`: geo's addresses).

A cursor is bound to its view, filters and user, signed with SECRET_KEY, and good for LIVE_CURSOR_MAX_AGE_S; an
unusable one gets the whole view, never an error.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from slo.selectors import slo_status
from state.dashboards.selectors import VehicleKeys, ViewFilters, live_features
from state.selectors import StateThresholds, state_flip_ages

# Bump when the live payload's shape changes: every validator and cursor given out before is then stale.
PAYLOAD_VERSION = 1
_PROTOCOL = 1
# protocol, scope, horizon, at, until, domain, slo, live rows, live digest, device summaries rows, their digest
_TOKEN = struct.Struct(">B8sQQQQQIQIQ")
_MAC_BYTES = 12
_SALT = "fleet.state.dashboards.sync.cursor"
_M32 = 0xFFFF_FFFF
_M64 = (1 << 64) - 1
_NEVER_MS = (1 << 63) - 1
# Transaction ids are compared in 32 bits (age()): a horizon further back than this is no longer compared.
_MAX_XID_DISTANCE = 1 << 30

LIVE = "state_live_positions"
BEATS = "state_devices"
# The domain tables the live payload reads (_LIVE in selectors.py); a change in one answers the whole view again.
DOMAIN = (
    "domain_devices",
    "domain_vehicles",
    "domain_accounts",
    "domain_cost_centres",
    "domain_assigned_cities",
    "domain_drivers",
    "domain_driver_assignments",
)


# --- The cursor ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    scope: bytes
    horizon: int
    at_ms: int
    until_ms: int
    domain: int
    slo: int
    live_rows: int
    live_digest: int
    beat_rows: int
    beat_digest: int

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.at_ms / 1000, UTC)

    def token(self) -> str:
        body = _TOKEN.pack(_PROTOCOL, *dataclasses.astuple(self))
        mac = salted_hmac(_SALT, body, algorithm="sha256").digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()

    @classmethod
    def read(cls, token: str | None, scope: bytes) -> Cursor | None:
        """The cursor a token holds, when it is one of ours for this scope; None otherwise."""
        if not token or len(token) > 2 * (_TOKEN.size + _MAC_BYTES):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, binascii.Error):
            return None
        if len(raw) != _TOKEN.size + _MAC_BYTES:
            return None
        body, mac = raw[: _TOKEN.size], raw[_TOKEN.size :]
        if not constant_time_compare(mac, salted_hmac(_SALT, body, algorithm="sha256").digest()[:_MAC_BYTES]):
            return None
        protocol, *fields = _TOKEN.unpack(body)
        cursor = cls(*fields)
        if protocol != _PROTOCOL or not constant_time_compare(cursor.scope, scope):
            return None
        return cursor


def view_scope(filters: ViewFilters, user: object) -> bytes:
    """What a cursor is good for: the live feature set (the live and the overview views share it), these filters,
    this user."""
    text = orjson.dumps(["live", dataclasses.astuple(filters), str(user)])
    return hashlib.blake2b(text, digest_size=8).digest()


def _digest(value: Any) -> int:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest())


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- The horizon ----------------------------------------------------------------------------------------------

_HORIZON = """
SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
       ARRAY(SELECT backend_xid::text::bigint FROM pg_stat_activity
              WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()),
       EXISTS (SELECT 1 FROM pg_stat_activity
                WHERE datname = current_database() AND query = '<insufficient privilege>'),
       ARRAY(SELECT transaction::text::bigint FROM pg_prepared_xacts WHERE database = current_database())
"""


def _widen(xid32: int, reference: int) -> int:
    """The 64-bit transaction id of a 32-bit one less than 2^31 ids before or after `reference` (a 64-bit id): a
    transaction still running may have taken its id after the snapshot's next id was read."""
    behind = ((reference & _M32) - xid32 + (1 << 31)) % (1 << 32) - (1 << 31)
    return reference - behind


def horizon() -> int:
    """A transaction id every transaction still to commit in this database has reached: the next id, or the oldest
    one still running here (pg_stat_activity, read after the next id and before the caller's snapshot). Read it
    before the snapshot that builds the answer. Without the right to see every session of the database, the
    cluster-wide oldest running id (pg_current_snapshot's xmin), which is as safe and sometimes older."""
    with connection.cursor() as cursor:
        if connection.in_atomic_block:  # a transaction reads pg_stat_activity once: drop its copy
            cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(_HORIZON)
        xmax, xmin, running, hidden, prepared = cursor.fetchone()
    if hidden:
        return int(xmin)
    return min([int(xmax), *(_widen(int(x), int(xmax)) for x in [*running, *prepared])])


def _xid32(xid: int) -> int:
    # 0, 1 and 2 are never handed out (the counter skips them when it wraps): 3 stands for them.
    return max(3, xid & _M32)


@dataclass(frozen=True)
class Since:
    """What a change source is asked about: rows written at or after `horizon`, by transactions that were running
    at `at` or began later."""

    horizon: int
    at: datetime

    def newer(self, alias: str) -> str:
        """SQL: the row of `alias` was written at or after the horizon (parameters: `params`)."""
        return f"age({alias}.xmin) <= age(%(since_xid)s::text::xid)"

    @property
    def params(self) -> dict[str, Any]:
        return {"since_xid": _xid32(self.horizon), "since_at": self.at}


class ChangeSource(Protocol):
    """Something a layer above state adds to the live payload (geo: addresses), which changes on its own."""

    def changed(self, since: Since) -> bool:
        """Did anything change since? (cheap: asked before each 304)"""
        ...

    def devices(self, since: Since) -> list[int]:
        """The devices whose features may show something new since."""
        ...


_SOURCES: list[ChangeSource] = []


def register_change_source(source: ChangeSource) -> None:
    if source not in _SOURCES:
        _SOURCES.append(source)


# --- What the tables say --------------------------------------------------------------------------------------

_STATS = (
    " UNION ALL ".join(
        f"SELECT '{table}', count(*), coalesce(bool_or(age(t.xmin) <= (SELECT age(%(h)s::text::xid))), false)"
        f"  FROM {table} t"
        for table in (LIVE, BEATS, *DOMAIN)
    )
    + " UNION ALL SELECT 'next_xid', pg_snapshot_xmax(pg_current_snapshot())::text::bigint, false"
)

# One scan of a table keyed by device: its rows, the digest of its key set (XOR of the keys' 64-bit hashes), the rows
# changed since the horizon, and the moments a device's state or freshness changes with no new data
# (state_flip_ages) read off a time column: per age, the devices whose moment falls between the cursor and now (the
# column between both less the age), and the first moment after now (the column's first value after now less the
# age, plus the age).
_SCAN = """
SELECT count(*), coalesce(bit_xor(x.k), 0), coalesce(array_agg(x.id) FILTER (WHERE x.newer), '{{}}'),
       count(*) FILTER (WHERE x.newer), coalesce(bit_xor(x.k) FILTER (WHERE x.newer), 0),
       coalesce(array_agg(x.id) FILTER (WHERE {crossed}), '{{}}'), ARRAY[{upcoming}]::timestamptz[]
  FROM (SELECT t.device_id AS id, t.{column} AS at, hashint8extended(t.device_id, 0) AS k,
               age(t.xmin) <= (SELECT age(%(h)s::text::xid)) AS newer
          FROM {table} t) x
"""

# The driver on duty changes at an assignment's start and end.
_SHIFTS = """
SELECT coalesce(array_agg(DISTINCT vehicle_id) FILTER (
           WHERE lower(period) BETWEEN %(since)s::timestamptz AND %(now)s
              OR upper(period) BETWEEN %(since)s::timestamptz AND %(now)s), '{}'),
       least(min(lower(period)) FILTER (WHERE lower(period) > %(now)s),
             min(upper(period)) FILTER (WHERE upper(period) > %(now)s))
  FROM domain_driver_assignments
"""


@dataclass(frozen=True)
class Keyed:
    """A table keyed by device: rows, digest of the key set, and the rows changed since a horizon."""

    rows: int
    digest: int
    changed: tuple[int, ...]
    changed_rows: int
    changed_digest: int

    def nothing_deleted_since(self, rows: int, digest: int) -> bool:
        """Given the table's rows and key digest at a cursor: can no row have been deleted since? The rows that did
        not change were all there; what the cursor had beyond them must be the changed rows' earlier versions (all
        of them: every change an update) or nothing (every change an insert). Anything else may hide a deletion."""
        gone_rows = rows - (self.rows - self.changed_rows)
        gone_digest = digest ^ self.digest ^ self.changed_digest
        return (gone_rows, gone_digest) in ((0, 0), (self.changed_rows, self.changed_digest))


def _scan_sql(
    table: str, column: str, ages: Sequence[float], *, prefix: str, since: datetime | None, now: datetime
) -> tuple[str, dict[str, Any]]:
    """_SCAN of `table` for moments `column` + each age (parameters named with `prefix`)."""
    params: dict[str, Any] = {}
    crossed, upcoming = [], []
    for i, age in enumerate(ages):
        hi, lo = f"{prefix}hi{i}", f"{prefix}lo{i}"
        params[hi] = now - timedelta(seconds=age)
        params[lo] = since - timedelta(seconds=age) if since is not None else None
        crossed.append(f"x.at BETWEEN %({lo})s::timestamptz AND %({hi})s")
        upcoming.append(f"min(x.at) FILTER (WHERE x.at > %({hi})s)")
    return _SCAN.format(crossed=" OR ".join(crossed), upcoming=", ".join(upcoming), column=column, table=table), params


def _keyed_of(row: Sequence[Any], ages: Sequence[float]) -> tuple[Keyed, set[int], list[datetime]]:
    rows, digest, changed, changed_rows, changed_digest, devices, firsts = row
    keyed = Keyed(int(rows), int(digest) & _M64, tuple(changed), int(changed_rows), int(changed_digest) & _M64)
    upcoming = [first + timedelta(seconds=age) for first, age in zip(firsts, ages, strict=True) if first is not None]
    return keyed, set(devices), upcoming


@dataclass(frozen=True)
class Stats:
    rows: dict[str, int]
    newer: dict[str, bool]
    next_xid: int


def _stats(since_xid: int) -> Stats:
    with connection.cursor() as cursor:
        cursor.execute(_STATS, {"h": _xid32(since_xid)})
        found = {name: (int(n), bool(newer)) for name, n, newer in cursor.fetchall()}
    next_xid = found.pop("next_xid")[0]
    return Stats({k: n for k, (n, _) in found.items()}, {k: b for k, (_, b) in found.items()}, next_xid)


def _domain_digest(stats: Stats, t: StateThresholds) -> int:
    return _digest(
        [
            PAYLOAD_VERSION,
            [stats.rows[name] for name in DOMAIN],
            dataclasses.astuple(t),
            settings.DISPLAY_TIME_ZONE,
            list(settings.DEVICE_CLASS_PRIORITY),
        ]
    )


def _slo_digest(status: dict[str, Any]) -> int:
    return _digest({k: v for k, v in status.items() if k != "generated_at"})


@dataclass(frozen=True)
class Marks:
    stats: Stats
    live: Keyed
    beats: Keyed
    timed_devices: set[int]  # whose state or freshness changed with time alone between `since` and now
    timed_vehicles: set[int]  # whose driver on duty did
    until_ms: int  # the next such moment after now


def _marks(t: StateThresholds, *, since_xid: int, since: datetime | None, now: datetime) -> Marks:
    """In one statement (one round trip): the domain tables' rows and changes, the live positions and device
    summaries against the horizon, and what time alone changes."""
    fix_ages, seen_ages = state_flip_ages(t)
    # The newest of fix and heartbeat passes an age when either does: both are asked (a few more, never fewer).
    live_ages = [*fix_ages, *seen_ages]
    live_sql, live_params = _scan_sql(LIVE, "occurred_at", live_ages, prefix="l", since=since, now=now)
    beats_sql, beats_params = _scan_sql(BEATS, "last_heartbeat_at", seen_ages, prefix="b", since=since, now=now)
    domain = ", ".join(
        f"(SELECT ARRAY[count(*), count(*) FILTER (WHERE age(t.xmin) <= (SELECT age(%(h)s::text::xid)))]"
        f" FROM {table} t)"
        for table in DOMAIN
    )
    query = (
        f"WITH live AS ({live_sql}), beats AS ({beats_sql}), shifts AS ({_SHIFTS})"
        f" SELECT live.*, beats.*, shifts.*, {domain}, pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        "   FROM live, beats, shifts"
    )
    params = {"h": _xid32(since_xid), "since": since, "now": now, **live_params, **beats_params}
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        row = cursor.fetchone()
    live, devices, upcoming = _keyed_of(row[0:7], live_ages)
    beats, beat_devices, beat_upcoming = _keyed_of(row[7:14], seen_ages)
    vehicles, next_shift = row[14:16]
    counts, next_xid = row[16 : 16 + len(DOMAIN)], row[16 + len(DOMAIN)]
    stats = Stats(
        rows={
            LIVE: live.rows,
            BEATS: beats.rows,
            **{name: int(n) for name, (n, _) in zip(DOMAIN, counts, strict=True)},
        },
        newer={
            LIVE: live.changed_rows > 0,
            BEATS: beats.changed_rows > 0,
            **{name: newer > 0 for name, (_, newer) in zip(DOMAIN, counts, strict=True)},
        },
        next_xid=int(next_xid),
    )
    upcoming += [*beat_upcoming, *([next_shift] if next_shift is not None else [])]
    until_ms = _ms(min(upcoming)) if upcoming else _NEVER_MS
    return Marks(stats, live, beats, devices | beat_devices, set(vehicles), until_ms)


@contextmanager
def consistent_read() -> Iterator[None]:
    """One snapshot for the marks and the payload (REPEATABLE READ, read only): the cursor's counts and digests
    describe exactly the rows the answer was built from. Inside a caller's transaction (tests), that one's."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _cursor(
    scope: bytes, *, horizon_xid: int, now: datetime, until_ms: int, domain: int, slo: dict[str, Any], live: Keyed,
    beats: Keyed,
) -> Cursor:  # fmt: skip
    return Cursor(
        scope=scope,
        horizon=horizon_xid,
        at_ms=_ms(now),
        until_ms=until_ms,
        domain=domain,
        slo=_slo_digest(slo),
        live_rows=live.rows,
        live_digest=live.digest,
        beat_rows=beats.rows,
        beat_digest=beats.digest,
    )


# --- The three answers ------------------------------------------------------------------------------------------


def _same(
    cursor: Cursor, stats: Stats, t: StateThresholds, *, now: datetime, status: Callable[[], dict[str, Any]]
) -> bool:
    """Nothing the answer at `cursor` shows can differ now: no row the view reads was written or deleted since, no
    moment of `until` has come, thresholds, settings, SLO block and the registered sources are as they were."""
    if not (
        _ms(now) < cursor.until_ms
        and 0 <= stats.next_xid - cursor.horizon < _MAX_XID_DISTANCE
        and not any(stats.newer.values())
        and (stats.rows[LIVE], stats.rows[BEATS]) == (cursor.live_rows, cursor.beat_rows)
        and _domain_digest(stats, t) == cursor.domain
    ):
        return False
    if _slo_digest(status()) != cursor.slo:
        return False
    since = Since(cursor.horizon, cursor.at)
    return not any(source.changed(since) for source in _SOURCES)


def unchanged(cursor: Cursor, *, now: datetime) -> bool:
    """Would the view answered at `cursor` be answered the same now (304)? One scan of the tables the view reads,
    the SLO block, and the registered sources; no payload is built."""
    if not _ms(now) < cursor.until_ms:
        return False
    return _same(cursor, _stats(cursor.horizon), StateThresholds.current(), now=now, status=lambda: slo_status(now=now))


def full(scope: bytes, *, now: datetime, build: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], Cursor]:
    """The whole view (`build()`, which carries `slo_status`) and its cursor, from one snapshot."""
    horizon_xid = horizon()
    with consistent_read():
        t = StateThresholds.current()
        marks = _marks(t, since_xid=horizon_xid, since=None, now=now)
        body = build()
    # Thresholds re-read (their cache expired) while building: the cursor cannot say which the payload used.
    domain = _domain_digest(marks.stats, t) if StateThresholds.current() == t else 0
    cursor = _cursor(
        scope, horizon_xid=horizon_xid, now=now, until_ms=marks.until_ms, domain=domain, slo=body["slo_status"],
        live=marks.live, beats=marks.beats,
    )  # fmt: skip
    return body, cursor


@dataclass(frozen=True)
class Delta:
    """What changed since a cursor: the features of the vehicles that changed and match the filters, the ids of
    those that changed and no longer match, the SLO block, the next cursor, and what `also` built in the same
    snapshot."""

    features: list[dict[str, Any]]
    removed: list[int | str]
    slo_status: dict[str, Any]
    cursor: Cursor
    also: Any = None
    # Nothing changed at all (`_same`): `cursor` is the old one moved to now, the lists are empty.
    unchanged: bool = False


def delta(
    filters: ViewFilters,
    since_cursor: Cursor,
    *,
    scope: bytes,
    now: datetime,
    also: Callable[[], Any] | None = None,
) -> Delta | None:
    """The vehicles whose features may differ from the answer at `since_cursor`, or None when only the whole view
    will do (the cursor is too old, a domain table, threshold or setting changed, a row may have been deleted)."""
    age = now - since_cursor.at
    if not timedelta(0) <= age <= timedelta(seconds=settings.LIVE_CURSOR_MAX_AGE_S):
        return None
    horizon_xid = horizon()
    with consistent_read():
        t = StateThresholds.current()
        marks = _marks(t, since_xid=since_cursor.horizon, since=since_cursor.at, now=now)
        stats = marks.stats
        status = slo_status(now=now)
        if also is None and _same(since_cursor, stats, t, now=now, status=lambda: status):
            # The old cursor's counts, digests and next moment hold; from the new horizon on, so it does not age.
            moved = dataclasses.replace(since_cursor, horizon=horizon_xid, at_ms=_ms(now))
            return Delta(features=[], removed=[], slo_status=status, cursor=moved, unchanged=True)
        if not 0 <= stats.next_xid - since_cursor.horizon < _MAX_XID_DISTANCE:
            return None
        domain = _domain_digest(stats, t)
        if domain != since_cursor.domain or any(stats.newer[name] for name in DOMAIN):
            return None
        if not (
            marks.live.nothing_deleted_since(since_cursor.live_rows, since_cursor.live_digest)
            and marks.beats.nothing_deleted_since(since_cursor.beat_rows, since_cursor.beat_digest)
        ):
            return None
        since = Since(since_cursor.horizon, since_cursor.at)
        devices = {*marks.live.changed, *marks.beats.changed, *marks.timed_devices}
        for source in _SOURCES:
            devices.update(source.devices(since))
        keys = _vehicle_keys(devices, marks.timed_vehicles)
        matching = (
            live_features(dataclasses.replace(filters, states=()), now=now, only=keys)
            if keys.vehicle_ids or keys.lone_device_ids
            else []
        )
        extra = also() if also is not None else None
    if StateThresholds.current() != t:
        domain = 0
    shown = [f for f in matching if not filters.states or f["properties"]["operational_state"] in filters.states]
    gone = [f["id"] for f in matching if filters.states and f["properties"]["operational_state"] not in filters.states]
    cursor = _cursor(
        scope, horizon_xid=horizon_xid, now=now, until_ms=marks.until_ms, domain=domain, slo=status,
        live=marks.live, beats=marks.beats,
    )  # fmt: skip
    return Delta(features=shown, removed=gone, slo_status=status, cursor=cursor, also=extra)


def _vehicle_keys(devices: set[int], vehicles: set[int]) -> VehicleKeys:
    """The vehicles (or lone devices) these devices belong to, with these vehicles, and all their devices."""
    lone: set[int] = set()
    read: set[int] = set()
    if devices or vehicles:
        with connection.cursor() as cursor:
            # Two index lookups: the devices' vehicles, then every device of those (each by its key).
            cursor.execute(
                "SELECT d.id, d.vehicle_id FROM domain_devices d"
                " WHERE d.id = ANY(%(devices)s) OR d.vehicle_id = ANY(%(vehicles)s || ARRAY("
                "       SELECT vehicle_id FROM domain_devices WHERE id = ANY(%(devices)s) AND vehicle_id IS NOT NULL))",
                {"devices": sorted(devices), "vehicles": sorted(vehicles)},
            )
            for device_id, vehicle_id in cursor.fetchall():
                read.add(device_id)
                if vehicle_id is None:
                    lone.add(device_id)
                else:
                    vehicles.add(vehicle_id)
    return VehicleKeys(
        vehicle_ids=tuple(sorted(vehicles)), lone_device_ids=tuple(sorted(lone)), device_ids=tuple(sorted(read))
    )
