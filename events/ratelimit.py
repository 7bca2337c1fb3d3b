"""The push rate limit: RATE_LIMIT_PUSH_PER_MIN per source, counted in the memory of each gateway worker.

Enforced in events/gateway.py after the source proved itself and before the INSERT, so the push path gains no
database work: each gunicorn worker allows its share, ceil(limit / GATEWAY_WORKERS). The limit is therefore
approximate: exact when pushes spread evenly over the workers, tighter when one worker takes most of them. The
API's limits (shared across processes, in the database) are in fleet/ratelimit.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import structlog
from django.conf import settings
from django.http import HttpResponse, JsonResponse

log = structlog.get_logger(__name__)

MINUTE_S = 60

# Patched by tests to move time; the push limit reads the clock through it.
clock: Callable[[], float] = time.time


def too_many_requests(wait_s: int, message: str) -> HttpResponse:
    """429 with Retry-After (whole seconds to the end of the window)."""
    response = JsonResponse({"detail": message, "code": "rate_limited", "retry_after": wait_s}, status=429)
    response["Retry-After"] = str(wait_s)
    return response


class PushRateLimiter:
    """Pushes per minute per source, counted in this process only: a dict lookup and two integer operations.

    Keys are the names of sources that already proved themselves, so the dict stays small.
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def check(self, source: str) -> HttpResponse | None:
        """None to go on, or the 429 to answer when `source` is over this worker's share of its limit."""
        per_minute = settings.RATE_LIMIT_PUSH_PER_MIN
        if per_minute <= 0:
            return None
        share = -(-per_minute // max(1, settings.GATEWAY_WORKERS))
        now = clock()
        window = int(now // MINUTE_S)
        start, count = self._windows.get(source, (window, 0))
        count = count + 1 if start == window else 1
        self._windows[source] = (window, count)
        if count <= share:
            return None
        wait = max(1, math.ceil((window + 1) * MINUTE_S - now))
        log.info("push.rate_limited", source=source, count=count, share=share)
        return too_many_requests(wait, f"push rate limit of {per_minute}/min for this source exceeded")

    def clear(self) -> None:
        self._windows.clear()


push_limiter = PushRateLimiter()
