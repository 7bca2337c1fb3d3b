"""Rate limits: API groups counted in Postgres per client IP, pushes counted in memory per source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from ninja import Router
from ninja.testing import TestClient

from events import gateway
from events import ratelimit as push_ratelimit
from events.models import PushSource, RawEvent, SourceKind
from events.ratelimit import push_limiter
from fleet import ratelimit
from fleet.api import FleetAPI, api
from fleet.auth import READ_FLEET, require
from fleet.ratelimit import DASHBOARDS, ROUTES, GroupRateLimit, client_ip, rate_limit

pytestmark = pytest.mark.django_db

TSP_KEY = "tsp-key-ratelimit"
START = 6000.0  # a minute boundary: windows are [6000, 6060), [6060, 6120) ...


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Any:
    class Clock:
        value = START + 15

        def __call__(self) -> float:
            return self.value

    clock = Clock()
    monkeypatch.setattr(ratelimit, "clock", clock)
    monkeypatch.setattr(push_ratelimit, "clock", clock)
    return clock


@pytest.fixture
def views_client() -> TestClient:
    """A view router mounted the way fleet/api.py mounts /views/: the child inherits the parent's limit."""
    probe = FleetAPI(urls_namespace="ratelimit-probe")
    views, live = Router(), Router()

    @live.get("/live", auth=None)
    def live_view(request: Any) -> dict[str, bool]:
        return {"ok": True}

    views.add_router("", live)
    probe.add_router("/views/", views, auth=None, throttle=rate_limit(DASHBOARDS))
    return TestClient(probe)


@override_settings(RATE_LIMIT_DASHBOARDS_PER_MIN=3)
def test_it_limits_dashboards_per_ip_per_minute_with_retry_after(views_client, now):
    statuses = [views_client.get("/views/live", META={"REMOTE_ADDR": "10.1.1.1"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = views_client.get("/views/live", META={"REMOTE_ADDR": "10.1.1.1"})
    assert refused["Retry-After"] == "45"
    assert refused.json()["code"] == "rate_limited"
    assert views_client.get("/views/live", META={"REMOTE_ADDR": "10.1.1.2"}).status_code == 200
    now.value = START + 60
    assert views_client.get("/views/live", META={"REMOTE_ADDR": "10.1.1.1"}).status_code == 200


@override_settings(RATE_LIMIT_DASHBOARDS_PER_MIN=0)
def test_it_turns_a_limit_off_with_zero(views_client, now):
    assert all(views_client.get("/views/live").status_code == 200 for _ in range(5))


def test_it_counts_in_postgres_so_every_process_shares_the_budget(now):
    hits = [ratelimit.counter_hit("dashboards:10.9.9.9", period_s=60)[0] for _ in range(3)]
    assert hits == [1, 2, 3]
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'fleet_rate_limits'")
        assert cursor.fetchone() == ("u",)  # UNLOGGED
    now.value = START + 60 * 60 * 25
    assert ratelimit.rate_limits_prune() == 1


def test_it_mounts_the_views_group_with_read_fleet_and_the_dashboards_limit():
    (mount,) = [r for r in api._get_bound_routers() if r.prefix.strip("/") == "views"]
    assert isinstance(mount.throttle, GroupRateLimit)
    assert mount.throttle.group == DASHBOARDS
    assert {frozenset(a.scopes) for a in mount.auth} == {frozenset({READ_FLEET})}


def test_it_refuses_an_unknown_group():
    with pytest.raises(ValueError, match="unknown rate-limit group"):
        rate_limit("everything")
    assert rate_limit(ROUTES).per_minute == 10


@override_settings(API_TRUSTED_PROXIES=1)
def test_it_takes_the_client_ip_from_the_trusted_proxy_hop(rf):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 41.90.1.2", REMOTE_ADDR="172.18.0.5")
    assert client_ip(request) == "41.90.1.2"  # what our proxy saw, not what the client claims


def test_it_ignores_x_forwarded_for_without_trusted_proxies(rf):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6", REMOTE_ADDR="41.90.1.2")
    assert client_ip(request) == "41.90.1.2"


def test_it_authenticates_before_it_counts(now):
    probe = FleetAPI(urls_namespace="ratelimit-auth-probe")
    router = Router()

    @router.get("/live")
    def live_view(request: Any) -> dict[str, bool]:
        return {"ok": True}

    probe.add_router("/views/", router, auth=require(READ_FLEET), throttle=rate_limit(DASHBOARDS))
    assert TestClient(probe).get("/views/live").status_code == 401
    assert ratelimit.counter_get("dashboards:127.0.0.1", period_s=60)[0] == 0


# --- push: in memory, no database work ------------------------------------------------------------------------


@pytest.fixture
def tsp_source(account: Any) -> Iterator[PushSource]:
    gateway.sources.clear()
    push_limiter.clear()
    yield PushSource.objects.create(name="tsp-rl", kind=SourceKind.JIMI_TSP, account=account, secret=TSP_KEY)
    gateway.sources.clear()
    push_limiter.clear()


def push(client: Any) -> Any:
    body = "msgType=jimi.push.device.gps&data=[]"
    return client.post(f"/push/tsp/tsp-rl/{TSP_KEY}", body, "application/x-www-form-urlencoded")


@override_settings(RATE_LIMIT_PUSH_PER_MIN=4, GATEWAY_WORKERS=2)
def test_it_limits_pushes_per_source_with_this_workers_share_and_no_database_work(client, tsp_source, now):
    assert [push(client).status_code for _ in range(2)] == [200, 200]  # this worker's share: 4 / 2
    with CaptureQueriesContext(connection) as queries:
        refused = push(client)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "45"
    assert len(queries) == 0  # no INSERT, no counter: the limit is a dict lookup
    assert RawEvent.objects.count() == 2
    now.value = START + 60
    assert push(client).status_code == 200


@override_settings(RATE_LIMIT_PUSH_PER_MIN=1, GATEWAY_WORKERS=2)
def test_it_does_not_count_pushes_that_fail_their_proof(client, tsp_source, now):
    for _ in range(3):
        client.post("/push/tsp/tsp-rl/wrong-key", "data=[]", "application/x-www-form-urlencoded")
    assert push(client).status_code == 200  # strangers cannot spend a source's budget
