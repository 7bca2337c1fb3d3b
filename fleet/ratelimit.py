"""Rate limits and login throttling: where each one is enforced, and how.

- Dashboards, RATE_LIMIT_DASHBOARDS_PER_MIN (60) per minute per client IP: enforced by the ninja throttle on
  the `/api/views/` router mount in fleet/api.py (`throttle=rate_limit(DASHBOARDS)`), which every view router
  added under it inherits. Counted in `fleet_rate_limits` (one upsert per request), so it holds across gunicorn
  workers and gateway hosts.
- Routes, RATE_LIMIT_ROUTES_PER_MIN (10) per minute per client IP: the same, on the `/api/routes` mount with
  `throttle=rate_limit(ROUTES)` when routing lands.
- Push, RATE_LIMIT_PUSH_PER_MIN (1000) per minute per source: enforced in events/gateway.py after the source
  proved itself and before the INSERT, counted in the memory of each gateway worker (events/ratelimit.py), so
  the push path gains no database work.
- Login, LOGIN_FAILURES_MAX failures per username + client IP per LOGIN_FAILURES_WINDOW_S: enforced in
  fleet/auth.py on `POST /api/auth/token` and on the admin login (mounted in fleet/urls.py); failures are counted
  from Django's `user_login_failed` signal, in `fleet_rate_limits`.

Every refusal is 429 with `Retry-After` (whole seconds to the end of the window). Windows are fixed: they start
on multiples of their length. `fleet_rate_limits` is UNLOGGED (a crash forgets the counters, which only lifts
limits early) with one row per key; `rate_limits_prune` (run by fleet.auth.auth_tables_prune, meant for a daily
cron task) deletes rows whose window ended long ago.

The API limits run after authentication (ninja runs auth, then throttles): an unauthenticated request is
refused before it costs a counter write. Behind a proxy set API_TRUSTED_PROXIES, or every client is one IP.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import structlog
from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from ninja.throttling import BaseThrottle

from events.netaddr import client_addr

log = structlog.get_logger(__name__)

DASHBOARDS = "dashboards"
ROUTES = "routes"
# Per-minute limits of the API groups, by the setting that holds each.
GROUP_SETTINGS = {DASHBOARDS: "RATE_LIMIT_DASHBOARDS_PER_MIN", ROUTES: "RATE_LIMIT_ROUTES_PER_MIN"}
MINUTE_S = 60

# Patched by tests to move time; everything here reads the clock through it.
clock: Callable[[], float] = time.time


def client_ip(request: HttpRequest) -> str:
    """The client's address: the socket's, or the one API_TRUSTED_PROXIES proxies in front of us saw."""
    # Each trusted proxy appends the address it saw: the client is `proxies` hops from the end (events.netaddr,
    # which the push gateway's allow-lists read too).
    return client_addr(request, trusted_proxies=settings.API_TRUSTED_PROXIES) or "unknown"


def _window(period_s: int, now: float) -> tuple[int, int]:
    """(start of the fixed window holding `now`, whole seconds until it ends)."""
    start = int(now // period_s) * period_s
    return start, max(1, math.ceil(start + period_s - now))


def counter_hit(key: str, *, period_s: int) -> tuple[int, int]:
    """Count one hit on `key` in the current window: (hits in the window including this one, seconds left)."""
    start, left = _window(period_s, clock())
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fleet_rate_limits AS r (key, window_start, hits) VALUES (%s, %s, 1)"
            " ON CONFLICT (key) DO UPDATE SET"
            " hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,"
            " window_start = EXCLUDED.window_start"
            " RETURNING hits",
            [key, start],
        )
        return cursor.fetchone()[0], left


def counter_get(key: str, *, period_s: int) -> tuple[int, int]:
    """Hits on `key` in the current window (without counting one), and the seconds left in it."""
    start, left = _window(period_s, clock())
    with connection.cursor() as cursor:
        cursor.execute("SELECT hits FROM fleet_rate_limits WHERE key = %s AND window_start = %s", [key, start])
        row = cursor.fetchone()
    return (row[0] if row else 0), left


def counter_reset(key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM fleet_rate_limits WHERE key = %s", [key])


def rate_limits_prune(*, older_than_s: int = 86400) -> int:
    """Delete counters whose window started more than `older_than_s` ago (they count nothing any more)."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM fleet_rate_limits WHERE window_start < %s", [int(clock()) - older_than_s])
        deleted: int = cursor.rowcount
        return deleted


# --- API groups: a ninja throttle backed by fleet_rate_limits ---------------------------------------------------


class GroupRateLimit(BaseThrottle):
    """Requests per minute per client IP for one group of operations (a router mount), shared by every process.

    Put it on a mount, `api.add_router(prefix, router, throttle=rate_limit(DASHBOARDS))`, and every operation
    of that router and of the routers added under it counts against the same per-IP budget.
    """

    def __init__(self, group: str) -> None:
        if group not in GROUP_SETTINGS:
            raise ValueError(f"unknown rate-limit group {group!r}; known: {', '.join(GROUP_SETTINGS)}")
        self.group = group
        # ninja asks allow_request() then wait() on the same (shared) object: keep the wait per thread.
        self._local = threading.local()

    @property
    def per_minute(self) -> int:
        limit: int = getattr(settings, GROUP_SETTINGS[self.group])
        return limit

    def allow_request(self, request: HttpRequest) -> bool:
        limit = self.per_minute
        if limit <= 0:
            return True
        hits, left = counter_hit(f"{self.group}:{client_ip(request)}", period_s=MINUTE_S)
        self._local.wait = left
        if hits > limit:
            log.info("api.rate_limited", group=self.group, ip=client_ip(request), hits=hits, limit=limit)
            return False
        return True

    def wait(self) -> float | None:
        return getattr(self._local, "wait", MINUTE_S)


def rate_limit(group: str) -> GroupRateLimit:
    """The throttle for a group of API operations: DASHBOARDS (every /api/views/*) or ROUTES (/api/routes*)."""
    return GroupRateLimit(group)
