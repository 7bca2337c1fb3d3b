"""Reads for the Open API polls: which accounts are polled, their devices, the gaps in a device's fixes, and push
health (are an account's pushes flowing, or is the location poll covering for them?)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q

from domain.models import Account, Device, Lifecycle
from events.models import JimiCursor, PushSource, SourceKind

POLL_SOURCE_PREFIX = "jimi-poll-"


def poll_source_name(account: Account) -> str:
    return f"{POLL_SOURCE_PREFIX}{account.pk}"


def accounts_polled() -> list[Account]:
    """Accounts with a credential reference whose poll source, if it exists yet, is enabled (disabling the source in
    the admin stops the account's polls)."""
    disabled = PushSource.objects.filter(kind=SourceKind.JIMI_POLL, enabled=False).values_list("account_id", flat=True)
    return list(Account.objects.exclude(credential_ref="").exclude(pk__in=disabled).order_by("pk"))


def account_imeis(account: Account) -> list[str]:
    """The account's devices to ask about (all but decommissioned ones), in IMEI order."""
    devices = Device.objects.filter(account=account).exclude(lifecycle=Lifecycle.DECOMMISSIONED)
    return list(devices.order_by("imei").values_list("imei", flat=True))


def devices_for_backfill(account: Account) -> list[Device]:
    """Active devices, those whose track was looked at longest ago (or never) first: a run cut short by its time
    budget goes on with the others next time."""
    devices = Device.objects.filter(account=account, lifecycle=Lifecycle.ACTIVE)
    looked = {
        c.key: c.polled_at for c in JimiCursor.objects.filter(account=account, stream="track").only("key", "polled_at")
    }
    return sorted(devices, key=lambda d: (looked.get(d.imei) is not None, looked.get(d.imei) or d.created_at, d.imei))


def cursor_of(account: Account, stream: str, key: str = "") -> JimiCursor | None:
    return JimiCursor.objects.filter(account=account, stream=stream, key=key).first()


# Gaps between consecutive fixes (device time) of one device, from the last fix at or before `since` (the gap that
# spans the cursor) up to `until`. events_parsed_device_time serves both the anchor and the window.
_GAPS = """
WITH anchor AS (
    SELECT max(occurred_at) AS at FROM events_parsed
     WHERE device_id = %(device)s AND kind = 'position_fix' AND occurred_at <= %(since)s AND occurred_at >= %(oldest)s
), fixes AS (
    SELECT occurred_at AS at, lag(occurred_at) OVER (ORDER BY occurred_at) AS prev
      FROM events_parsed
     WHERE device_id = %(device)s AND kind = 'position_fix'
       AND occurred_at >= coalesce((SELECT at FROM anchor), %(since)s) AND occurred_at <= %(until)s
)
SELECT prev, at FROM fixes WHERE prev IS NOT NULL AND at - prev > make_interval(secs => %(gap)s) ORDER BY at
"""


@dataclass(frozen=True)
class TrackWindow:
    gaps: list[tuple[datetime, datetime]]  # (last fix before, first fix after)
    last_fix: datetime | None  # the newest fix up to `until`


def track_gaps(*, device_id: int, since: datetime, until: datetime, oldest: datetime) -> TrackWindow:
    params = {"device": device_id, "since": since, "until": until, "oldest": oldest, "gap": settings.JIMI_TRACK_GAP_S}
    with connection.cursor() as cursor:
        cursor.execute(_GAPS, params)
        gaps = [(prev, at) for prev, at in cursor.fetchall()]
        cursor.execute(
            "SELECT max(occurred_at) FROM events_parsed WHERE device_id = %(device)s AND kind = 'position_fix'"
            " AND occurred_at > %(since)s AND occurred_at <= %(until)s",
            params,
        )
        (last_fix,) = cursor.fetchone() or (None,)
    return TrackWindow(gaps=gaps, last_fix=last_fix)


# --- push health --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushHealth:
    account: str
    push_sources: int  # enabled IoT Hub / TSP sources of the account
    last_push_at: datetime | None  # newest push within the window looked at (None: none in it)
    located_at: datetime | None  # when the location poll last succeeded
    newest_polled_fix_at: datetime | None  # the newest device time that poll saw
    state: str  # "flowing", "silent", "idle", "poll only"
    note: str
    errors: list[str]  # streams whose last poll failed, with why


def _last_pushes(since: datetime, until: datetime) -> dict[int, datetime]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.account_id, max(r.received_at) FROM events_raw r JOIN events_push_sources s ON s.id = r.source_id"
            " WHERE r.received_at >= %s AND r.received_at <= %s AND r.source_kind = ANY(%s) GROUP BY s.account_id",
            [since, until, [SourceKind.JIMI_IOTHUB.value, SourceKind.JIMI_TSP.value]],
        )
        return dict(cursor.fetchall())


def push_health(*, now: datetime, since: datetime) -> list[PushHealth]:
    """Per polled account: is it pushing? When its pushes have been silent for JIMI_PUSH_SILENCE_S while the location
    poll still sees fresh fixes, the devices are active and their live positions come from that poll (every
    JIMI_POLL_LOCATIONS_EVERY_S); the pushes that arrive later are the same events (one dedup key per device and
    second) and add nothing twice."""
    silence = timedelta(seconds=settings.JIMI_PUSH_SILENCE_S)
    pushes = _last_pushes(since, now)
    sources: dict[int, int] = {}
    for account_id in PushSource.objects.filter(
        Q(kind=SourceKind.JIMI_IOTHUB) | Q(kind=SourceKind.JIMI_TSP), enabled=True
    ).values_list("account_id", flat=True):
        sources[account_id] = sources.get(account_id, 0) + 1
    cursors = {
        c.account_id: c for c in JimiCursor.objects.filter(stream="locations", key="", account__in=accounts_polled())
    }
    failing: dict[int, list[str]] = {}
    for c in JimiCursor.objects.exclude(error="").order_by("stream", "key"):
        failing.setdefault(c.account_id, []).append(f"{c.stream}{f' {c.key}' if c.key else ''}: {c.error}")
    health = []
    for account in accounts_polled():
        cursor = cursors.get(account.pk)
        last_push = pushes.get(account.pk)
        fresh_fix = cursor is not None and cursor.position is not None and now - cursor.position <= silence
        pushing = last_push is not None and now - last_push <= silence
        if not sources.get(account.pk):
            state, note = "poll only", "no push source: positions come from the location poll"
        elif pushing:
            state, note = "flowing", "pushes arriving"
        elif fresh_fix:
            since_text = f"since {last_push:%Y-%m-%d %H:%M:%S} UTC" if last_push else f"for over {now - since}"
            state = "silent"
            note = (
                f"pushes silent {since_text} while devices report: live positions from the location poll every "
                f"{settings.JIMI_POLL_LOCATIONS_EVERY_S} s"
            )
        else:
            state, note = "idle", "no recent pushes and no fresh fix in the location poll"
        health.append(
            PushHealth(
                account=account.name,
                push_sources=sources.get(account.pk, 0),
                last_push_at=last_push,
                located_at=cursor.polled_at if cursor else None,
                newest_polled_fix_at=cursor.position if cursor else None,
                state=state,
                note=note,
                errors=failing.get(account.pk, []),
            )
        )
    return health
