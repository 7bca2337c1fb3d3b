"""Fixtures for the events layer: push sources and signed requests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from events.gateway import sources
from events.models import PushSource, SourceKind

IOTHUB_SECRET = "hub-token-7f3a"
TSP_KEY = "tsp-key-91c2d0"
HMAC_SECRET = "hmac-secret-55e1"


@pytest.fixture(autouse=True)
def _fresh_source_cache() -> Iterator[None]:
    sources.clear()
    yield
    sources.clear()


@pytest.fixture
def iothub_source(account: Any) -> PushSource:
    return PushSource.objects.create(name="hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret=IOTHUB_SECRET)


@pytest.fixture
def tsp_source(account: Any) -> PushSource:
    return PushSource.objects.create(name="tsp", kind=SourceKind.JIMI_TSP, account=account, secret=TSP_KEY)


@pytest.fixture
def hmac_source(account: Any) -> PushSource:
    return PushSource.objects.create(name="fuel-bot", kind=SourceKind.HMAC, account=account, secret=HMAC_SECRET)


def hmac_headers(body: bytes, *, secret: str = HMAC_SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(at if at is not None else time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_FLEET_TIMESTAMP": stamp, "HTTP_X_FLEET_SIGNATURE": f"sha256={digest}"}


@pytest.fixture
def post_iothub(client: Any) -> Callable[..., Any]:
    def post(path: str, items: Any, *, token: str = IOTHUB_SECRET, source: str = "hub") -> Any:
        from urllib.parse import urlencode

        data_list = items if isinstance(items, str) else json.dumps(items)
        body = urlencode({"token": token, "data_list": data_list})
        return client.post(f"/push/iothub/{source}/{path}", data=body, content_type="application/x-www-form-urlencoded")

    return post
