"""Page weight and time to first map render of /live/ with 100 and with 10,000 vehicles: a measurement, run on
demand (it is skipped in `make test`):

    FLEET_PAGE_WEIGHT=1 TEST_DATABASE_NAME=test_fleet_pages .venv/bin/pytest -n 0 -s fleet/tests/test_pages_weight.py

Vehicles and one position each are written as parsed events and projected by the real projectors; a real gateway
serves the page (MAP_OFFLINE=true: only the gateway is asked for anything) to headless Chromium with an empty cache.
Bytes are what crossed the wire (DevTools' encodedDataLength: compressed where the gateway compresses); the time is
from navigation start to the page's `fleet:first-render` mark (the map's first `idle` with the vehicles drawn).
Prints one JSON object as its last line.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from devtools.testing.auth import make_api_user
from devtools.testing.fixtures import RoleProcess
from domain.models import Account
from fleet.tests.browser import Browser, assert_test_database, chromium, needs_chromium
from state.tests.drives import project

pytestmark = [
    needs_chromium,
    pytest.mark.xdist_group("pages-browser"),
    # Transactional: the test seeds vehicles that the gateway must see (committed), and this marker also makes
    # pytest-django set the test database up.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("FLEET_PAGE_WEIGHT"), reason="a measurement: set FLEET_PAGE_WEIGHT=1"),
]

RUNS = 3

SEED = [
    """INSERT INTO domain_cost_centres (name, code)
       SELECT 'Centre ' || i, 'C' || i FROM generate_series(1, 12) i ON CONFLICT DO NOTHING""",
    """INSERT INTO domain_vehicles (plate, model, depot, created_at, cost_centre_id)
       SELECT 'KW' || lpad(i::text, 5, '0') || 'X', 'Isuzu NQR', '', now(),
              (SELECT id FROM domain_cost_centres ORDER BY id OFFSET (i %% 12) LIMIT 1)
         FROM generate_series(%(first)s, %(last)s) i""",
    """INSERT INTO domain_devices (imei, account_id, vehicle_id, name, model, sim_number, iccid, lifecycle,
                                  lifecycle_changed_at, lifecycle_reason, created_at)
       SELECT '87' || lpad(v.id::text, 13, '0'), %(account)s, v.id, '', 'VL802', '', '', 'provisioned', now(), '', now()
         FROM domain_vehicles v WHERE NOT EXISTS (SELECT 1 FROM domain_devices d WHERE d.vehicle_id = v.id)""",
    """INSERT INTO events_parsed (raw_id, raw_received_at, kind, account_id, device_id, occurred_at, received_at,
                                 parser_version, payload, dedup_key)
       SELECT d.id, now(), 'position_fix', d.account_id, d.id, now() - (d.id %% 900) * interval '1 second', now(),
              'weight@1', jsonb_build_object('lat', -1.45 + random() * 0.35, 'lng', 36.65 + random() * 0.4,
              'speed_kmh', (d.id %% 5) * 12, 'heading', d.id %% 360, 'ignition', d.id %% 4 <> 0, 'satellites', 9,
              'position_type', 'gps', 'retransmitted', false), md5('weight' || d.id)
         FROM domain_devices d WHERE NOT EXISTS (SELECT 1 FROM state_live_positions l WHERE l.device_id = d.id)""",
]


def seed(vehicles: int, account: int) -> None:
    """Vehicles up to `vehicles` in all, each with one fix, projected as the worker would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM domain_vehicles")
        first = cursor.fetchone()[0] + 1
        for statement in SEED:
            cursor.execute(statement, {"first": first, "last": vehicles, "account": account})
    project(batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


@pytest.fixture(scope="module")
def site(django_db_setup: Any, django_db_blocker: Any) -> Iterator[SimpleNamespace]:
    with django_db_blocker.unblock():
        assert_test_database()
        env = {"MAP_OFFLINE": "true", "RATE_LIMIT_DASHBOARDS_PER_MIN": "0", "GATEWAY_WORKERS": "2"}
        gateway = RoleProcess("gateway", env=env)
        try:
            account = Account.objects.create(name="Weight", jimi_account="weight")
            make_api_user("weigher", "read:fleet")
            gateway.start()
            gateway.wait_http("/health/gateway")
            yield SimpleNamespace(base_url=gateway.base_url, seed=lambda n: seed(n, account.id))
        finally:
            gateway.stop()
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def browser(site: SimpleNamespace) -> Iterator[Browser]:
    for b in chromium():
        b.base_url = site.base_url
        b.log_in("weigher")
        yield b


def first_load(browser: Browser, vehicles: int) -> dict[str, Any]:
    """/live/ with an empty cache: bytes over the wire and ms from navigation start to the first map render."""
    browser.driver.execute_cdp_cmd("Network.enable", {})
    browser.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    browser.network()
    browser.get("/live/")
    browser.wait(lambda d: browser.find("#map").get_attribute("data-rendered") == "true", timeout=120)
    assert int(browser.find("#map").get_attribute("data-features")) == vehicles
    render_ms = browser.js("return performance.getEntriesByName('fleet:first-render')[0].startTime")
    events = browser.network()
    urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in events if "request" in e["params"]}
    sizes: dict[str, int] = {}
    for e in events:
        if e["method"] == "Network.loadingFinished":
            sizes[urls.get(e["params"]["requestId"], "?")] = int(e["params"]["encodedDataLength"])
    api = sum(size for url, size in sizes.items() if "/api/views/" in url)
    # A web worker's own script is not in the page's DevTools log; the page's resource timing has it.
    for url, transferred in browser.js(
        "return performance.getEntriesByType('resource').map((e) => [e.name, e.transferSize])"
    ):
        sizes.setdefault(url, int(transferred))
    assert any("maplibre-gl-worker" in url for url in sizes)
    return {"bytes": sum(sizes.values()), "api_bytes": api, "requests": len(sizes), "render_ms": round(render_ms)}


def test_first_load_of_the_live_page(site: SimpleNamespace, browser: Browser) -> None:
    results: dict[str, Any] = {}
    for vehicles in (100, 10_000):
        site.seed(vehicles)
        runs = [first_load(browser, vehicles) for _ in range(RUNS)]
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        results[f"live_{vehicles}"] = {
            **{k: round(v) for k, v in median.items()},
            "render_ms_runs": [r["render_ms"] for r in runs],
        }
        print(f"/live/ with {vehicles} vehicles: {median}")
    print(json.dumps(results))
