"""Posts the simulator's pushes to a gateway as the IoT Hub does: form `token` + `data_list` to
`<base>/push/iothub/<source>/<path>` (docs/jimi.md, "IoT Hub push").

A push is never dropped: a 503 (the gateway could not store it), 502/504 (a proxy in front) or 429 (the source's
rate limit; its Retry-After is honoured) and any connection error or timeout are retried with a back-off that
doubles up to `max_backoff_s`, each retry logged, until the gateway answers 200 or the poster is stopped (then
`Stopped` says which push was left unsent). Any other answer (401: wrong token or source; 413: too large; 404)
cannot get better by retrying: `PushRefused`. A retry after a timeout may store a push twice; the parser keeps
one copy of each event (docs/jimi.md, "Duplicates").
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import requests
import structlog

from devtools.simulator.fleet import Push

log = structlog.get_logger("devtools.simulator")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class PushRefused(Exception):
    """The gateway refused a push in a way retrying cannot fix."""


class Stopped(Exception):
    """Asked to stop while a push still waited to be delivered."""


class Poster:
    def __init__(
        self,
        base_url: str,
        source: str,
        token: str,
        *,
        stop: threading.Event | None = None,
        timeout_s: float = 10.0,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.source = source
        self.token = token
        self.stop = stop or threading.Event()
        self.timeout_s = timeout_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.session = session or requests.Session()
        self.stats: Counter[str] = Counter()

    def url(self, path: str) -> str:
        return f"{self.base_url}/push/iothub/{self.source}/{path}"

    def wait_ready(self, *, every_s: float = 1.0, log_every_s: float = 30.0) -> None:
        """Wait until the gateway's /health/gateway answers 200 (it is up and every migration is applied)."""
        url = f"{self.base_url}/health/gateway"
        waited = 0.0
        while True:
            try:
                if self.session.get(url, timeout=self.timeout_s).status_code == 200:
                    log.info("simulator.gateway_ready", url=url, waited_s=round(waited, 1))
                    return
                state = "not healthy yet"
            except requests.RequestException as exc:
                state = type(exc).__name__
            if waited % log_every_s < every_s:
                log.info("simulator.waiting_for_gateway", url=url, state=state, waited_s=round(waited, 1))
            if self.stop.wait(every_s):
                raise Stopped("stopped while waiting for the gateway")
            waited += every_s

    def post(self, push: Push) -> int:
        """Deliver one push; returns the number of attempts it took."""
        url = self.url(push.path)
        body = urlencode({"token": self.token, "data_list": push.data_list})
        delay = self.min_backoff_s
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            error = ""
            retry_after = 0.0
            try:
                response = self.session.post(url, data=body, headers=FORM, timeout=self.timeout_s)
                status = response.status_code
                if status == 200:
                    self.stats["accepted"] += 1
                    self.stats[f"accepted_{push.kind}"] += 1
                    if attempt > 1:
                        log.info("simulator.push_delivered", path=push.path, kind=push.kind, attempts=attempt)
                    return attempt
                if status not in RETRY_STATUSES:
                    raise PushRefused(f"{url} answered {status}: {response.text[:300]}")
                retry_after = _seconds(response.headers.get("Retry-After"))
                error = response.text[:120]
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {str(exc)[:120]}"
            wait = max(delay, min(retry_after, self.max_backoff_s))
            self.stats["retries"] += 1
            self.stats[f"retries_{status or 'connection'}"] += 1
            log.warning(
                "simulator.push_retry",
                path=push.path,
                kind=push.kind,
                items=push.items,
                status=status,
                error=error,
                attempt=attempt,
                retry_in_s=round(wait, 2),
            )
            if self.stop.wait(wait):
                raise Stopped(f"stopped with a {push.path} push of {push.items} items not yet accepted")
            delay = min(self.max_backoff_s, delay * 2)


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0
