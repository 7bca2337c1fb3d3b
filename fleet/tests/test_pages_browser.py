"""The pages in a real browser: headless Chromium (fleet/tests/browser.py) against a real gateway role on the test
database, with the fleet's data pushed through the real pipeline — IoT Hub pushes to the gateway, parsed and
projected by a real worker role.

One gateway, one worker and one browser serve the whole module (the data is set up once and the database is
flushed after). The gateway runs with MAP_OFFLINE=true: nothing here may reach a tile server (and the machine has
no other network). Screenshots of every page go to .var/screenshots/.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone
from openpyxl import load_workbook
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from devtools.testing.auth import make_api_user
from devtools.testing.fixtures import RoleProcess, free_port, wait_until
from domain.models import Account, AssignedCity, CostCentre, Device, Driver, DriverAssignment, Lifecycle, Vehicle
from events.models import PushSource, SourceKind
from fleet.tests.browser import Browser, assert_test_database, chromium, needs_chromium, off_origin
from slo.services import slo_measure_all
from state.models import Alarm, LivePosition, Trip

# django_db: pytest-django sets the test database up only for a run that holds a test marked so (the tests here
# reach the database through the gateway; the module's fixture writes it directly).
pytestmark = [needs_chromium, pytest.mark.xdist_group("pages-browser"), pytest.mark.django_db]

HUB_SECRET = "pages-hub-token-5d2e"
NAIROBI = (-1.2921, 36.8219)
MOMBASA = (-4.0435, 39.6682)
M_PER_DEG = 111_195.0

# plate: (cost centre, city, what it does now)
FLEET = {
    "KCA100A": ("North", "Nairobi", "moving"),
    "KCA101B": ("North", "Nairobi", "moving"),
    "KCA102C": ("North", "Nairobi", "idling"),
    "KCA103D": ("South", "Mombasa", "parked"),
    "KCA104E": ("South", "Mombasa", "parked"),
    "KCA105F": ("South", "Nairobi", "suspended"),
    "KCA106G": ("North", "Nairobi", "stale"),
    "KCA107H": (None, "Nairobi", "history"),
    "KCA108J": ("South", "Mombasa", "offline"),
    "KCA109K": ("North", "Nairobi", "moving"),
    "KCA110L": ("North", None, "never"),
}
HISTORY_PLATE = "KCA107H"


def imei_of(plate: str) -> str:
    return f"8688000000{list(FLEET).index(plate):05d}"


def jimi_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fix(imei: str, at: datetime, lat: float, lng: float, speed: float, heading: float, acc: int) -> dict[str, Any]:
    return {
        "deviceImei": imei, "gpsTime": jimi_time(at), "gateTime": jimi_time(at + timedelta(seconds=2)),
        "lat": round(lat, 6), "lng": round(lng, 6), "gpsSpeed": speed, "direction": heading, "acc": acc,
        "satelliteNum": 10, "postType": 1, "gpsMode": 0,
    }  # fmt: skip


def drive(imei: str, start: datetime, origin: tuple[float, float], *, minutes: int, north: bool) -> list[dict]:
    """A drive at 36 km/h with a fix every 10 s, then 12 minutes parked with the ignition off."""
    fixes, speed = [], 36.0
    lat, lng = origin
    for k in range(minutes * 6 + 1):
        d = speed / 3.6 * k * 10 / M_PER_DEG
        lat, lng = (origin[0] + d, origin[1]) if north else (origin[0], origin[1] + d)
        fixes.append(fix(imei, start + timedelta(seconds=10 * k), lat, lng, speed, 0 if north else 90, 1))
    end = start + timedelta(minutes=minutes)
    fixes += [fix(imei, end + timedelta(seconds=30 * k), lat, lng, 0, 0, 0) for k in range(1, 25)]
    return fixes


def pushes(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(position fixes, alarms) of the whole fleet."""
    fixes: list[dict[str, Any]] = []
    for i, (plate, (_, city, doing)) in enumerate(FLEET.items()):
        imei = imei_of(plate)
        base = MOMBASA if city == "Mombasa" else NAIROBI
        lat, lng = base[0] + 0.01 * (i % 4), base[1] + 0.012 * (i // 4)
        if doing == "moving":
            fixes.append(fix(imei, now - timedelta(seconds=5), lat, lng, 40 + i, (40 * i) % 360, 1))
        elif doing == "idling":
            fixes.append(fix(imei, now - timedelta(seconds=8), lat, lng, 0, 120, 1))
        elif doing in ("parked", "suspended"):
            fixes.append(fix(imei, now - timedelta(seconds=20), lat, lng, 0, 0, 0))
        elif doing == "stale":
            fixes.append(fix(imei, now - timedelta(minutes=5), lat, lng, 35, 300, 1))
        elif doing == "offline":
            fixes.append(fix(imei, now - timedelta(days=2), lat, lng, 0, 0, 0))
        elif doing == "history":
            fixes += drive(imei, now - timedelta(hours=6), NAIROBI, minutes=10, north=False)
            fixes += drive(imei, now - timedelta(hours=3), (NAIROBI[0] - 0.02, NAIROBI[1]), minutes=15, north=True)
    alarm_at = now - timedelta(hours=3) + timedelta(minutes=5)
    alarms = [
        {"type": "DEVICE", "msgClass": 0, "imei": imei_of(HISTORY_PLATE),
         "msg": {"alertType": 1, "lat": NAIROBI[0] - 0.01, "lng": NAIROBI[1], "gpsSpeed": 36,
                 "alarmTime": jimi_time(alarm_at)}, "gateTime": jimi_time(alarm_at + timedelta(seconds=3))},
    ]  # fmt: skip
    return fixes, alarms


def push(base_url: str, path: str, items: list[dict[str, Any]]) -> None:
    body = urlencode({"token": HUB_SECRET, "data_list": json.dumps(items)})
    response = requests.post(
        f"{base_url}/push/iothub/pages-hub/{path}",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def create_fleet(now: datetime) -> SimpleNamespace:
    account = Account.objects.create(name="Pages", jimi_account="pages")
    PushSource.objects.create(name="pages-hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret=HUB_SECRET)
    centres = {name: CostCentre.objects.create(name=name) for name in ("North", "South")}
    cities = {name: AssignedCity.objects.create(name=name) for name in ("Nairobi", "Mombasa")}
    for plate, (centre, city, doing) in FLEET.items():
        vehicle = Vehicle.objects.create(
            plate=plate, cost_centre=centres.get(centre or ""), assigned_city=cities.get(city or "")
        )
        device = Device.objects.create(imei=imei_of(plate), account=account, vehicle=vehicle, model="VL802")
        if doing == "suspended":
            Device.objects.filter(id=device.id).update(lifecycle=Lifecycle.ACTIVE)
            Device.objects.filter(id=device.id).update(lifecycle=Lifecycle.SUSPENDED)
    jane = Driver.objects.create(name="Jane Wanjiru")
    DriverAssignment.objects.create(
        driver=jane, vehicle=Vehicle.objects.get(plate="KCA100A"), period=(now - timedelta(days=1), None)
    )
    make_api_user("dispatcher", "read:fleet")
    make_api_user("outsider")
    return SimpleNamespace(account=account)


@pytest.fixture(scope="module")
def site(django_db_setup: Any, django_db_blocker: Any) -> Iterator[SimpleNamespace]:
    """The fleet above, pushed through a real gateway and parsed and projected by a real worker."""
    now = timezone.now()
    with django_db_blocker.unblock():
        assert_test_database()
        env = {"MAP_OFFLINE": "true", "RATE_LIMIT_DASHBOARDS_PER_MIN": "0", "GATEWAY_WORKERS": "2", "LIVE_POLL_S": "2"}
        gateway, worker = RoleProcess("gateway", env=env), RoleProcess("worker")
        try:
            create_fleet(now)
            gateway.start()
            worker.start()
            gateway.wait_http("/health/gateway")
            fixes, alarms = pushes(now)
            push(gateway.base_url, "pushgps", fixes)
            push(gateway.base_url, "pushalarm", alarms)
            history_device = Device.objects.get(imei=imei_of(HISTORY_PLATE))
            wait_until(
                lambda: (
                    LivePosition.objects.count() == len(FLEET) - 1
                    and Trip.objects.filter(device_id=history_device.id).count() >= 2
                    and Alarm.objects.filter(device_id=history_device.id).exists()
                ),
                timeout=90,
                every=0.25,
            )
            slo_measure_all()
            yield SimpleNamespace(base_url=gateway.base_url, now=now)
        finally:
            gateway.stop()
            worker.stop()
            # What a transactional test's teardown does: empty every table (post_migrate seeds the SLO rows again).
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def browser(site: SimpleNamespace) -> Iterator[Browser]:
    for b in chromium():
        b.base_url = site.base_url
        yield b


@pytest.fixture
def dispatcher(browser: Browser) -> Browser:
    """The browser logged in as a user holding read:fleet, with its logs emptied."""
    if browser.user != "dispatcher" or not browser.session_cookie():
        browser.log_in("dispatcher")
    browser.console()
    browser.network()
    return browser


def api(browser: Browser, path: str, **params: Any) -> dict[str, Any]:
    """An API answer for the browser's own session (what the page itself reads)."""
    query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    response = requests.get(browser.base_url + path, params=query, cookies=browser.session_cookie(), timeout=30)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def mapped(browser: Browser) -> int:
    return int(browser.find("#map").get_attribute("data-features") or -1)


def rendered(browser: Browser) -> bool:
    return browser.find("#map").get_attribute("data-rendered") == "true"


def no_console_errors(browser: Browser) -> None:
    errors = browser.console_errors()
    assert errors == [], errors


# --- Who may see the pages ----------------------------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_the_login_page(browser: Browser) -> None:
    browser.get("/login/")
    browser.driver.delete_all_cookies()
    browser.user = ""
    browser.get("/live/")
    browser.wait(lambda d: "/login/" in d.current_url)
    assert browser.driver.current_url.endswith("/login/?next=/live/")
    assert browser.find("h1").text == "Log in"
    assert browser.find("#clock").text.endswith("EAT")
    browser.screenshot("login")
    no_console_errors(browser)


def test_a_user_without_read_fleet_gets_a_clear_403(browser: Browser) -> None:
    browser.log_in("outsider")
    browser.network()
    browser.get("/live/")
    statuses = [
        e["params"]["response"]["status"]
        for e in browser.network()
        if e["method"] == "Network.responseReceived" and e["params"]["response"]["url"].endswith("/live/")
    ]
    assert statuses == [403]
    assert browser.find("h1").text == "Not allowed"
    assert "read:fleet" in browser.find("main").text
    assert browser.find_all("#slo-badges") == []  # no fleet data, not even the SLO status
    browser.screenshot("forbidden")
    browser.find(".user button").click()  # log out
    browser.wait(lambda d: "/login/" in d.current_url)


# --- Live ----------------------------------------------------------------------------------------------------------


def test_the_live_page_shows_every_vehicle_the_api_returns(dispatcher: Browser) -> None:
    dispatcher.get("/live/")
    payload = api(dispatcher, "/api/views/live")
    with_position = [f for f in payload["geojson"]["features"] if f["geometry"]]
    assert payload["summary"]["vehicles"] == len(FLEET)
    assert len(with_position) == len(FLEET) - 1  # one vehicle has never sent a fix: listed, not on the map
    dispatcher.wait(lambda d: mapped(dispatcher) == len(with_position) and rendered(dispatcher))
    held = dispatcher.driver.execute_async_script(
        "const done = arguments[0];"
        "window.fleet.map.getSource('vehicles').getData().then((data) => done(data.features.length));"
    )
    assert held == len(with_position)
    assert dispatcher.find('[data-kpi="vehicles"]').text == str(len(FLEET))
    for state, count in payload["summary"]["by_state"].items():
        assert dispatcher.find(f'[data-kpi="{state}"]').text == str(count)
    assert len(dispatcher.find_all("#vehicle-list li")) == len(FLEET)
    assert dispatcher.find("#map").get_attribute("data-map-style") == "offline"
    dispatcher.screenshot("live")
    # Closer in: single vehicles, their state's shape and colour, arrows turned to their heading.
    dispatcher.js("window.fleet.map.jumpTo({center: [36.83, -1.28], zoom: 12.5})")
    dispatcher.wait(lambda d: dispatcher.js("return window.fleet.map.loaded()"))
    shown = dispatcher.js("return window.fleet.map.queryRenderedFeatures({layers: ['vehicles-points']}).length")
    assert shown >= 6
    dispatcher.screenshot("live-nairobi")
    no_console_errors(dispatcher)


def test_the_live_page_polls_and_pauses_while_the_tab_is_hidden(dispatcher: Browser) -> None:
    """LIVE_POLL_S is 2 on this module's gateway."""

    def refreshes() -> list[str]:
        return [u for u in dispatcher.requested_urls() if "/api/views/" in u]

    dispatcher.get("/live/")
    dispatcher.wait(lambda d: rendered(dispatcher))
    seen: list[str] = []

    def three_refreshes(_: Any) -> bool:
        seen.extend(refreshes())
        return len(seen) >= 3

    dispatcher.wait(three_refreshes, timeout=15)
    assert any("/api/views/live" in u for u in seen)
    dispatcher.js(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    refreshes()
    time.sleep(5)  # two and a half refresh periods with the tab hidden
    assert refreshes() == []
    dispatcher.js(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    dispatcher.wait(lambda d: refreshes(), timeout=5)  # at once, not a period later
    no_console_errors(dispatcher)


def test_a_filter_reduces_the_vehicles(dispatcher: Browser) -> None:
    dispatcher.get("/live/")
    dispatcher.wait(lambda d: mapped(dispatcher) == len(FLEET) - 1)
    moving = api(dispatcher, "/api/views/live", filters={"operational_state": ["moving"]})["geojson"]["features"]
    assert 0 < len(moving) < len(FLEET) - 1
    dispatcher.find('#filters input[value="moving"]').click()
    dispatcher.wait(lambda d: mapped(dispatcher) == len(moving))
    assert len(dispatcher.find_all("#vehicle-list li")) == len(moving)
    # A plate typed any way, passed to the API's filters.
    dispatcher.find('#filters input[value="moving"]').click()
    plates = dispatcher.find("#f-plates")
    plates.send_keys("kca-100a", Keys.ENTER)
    dispatcher.wait(lambda d: mapped(dispatcher) == 1)
    assert [li.text.split("\n")[0] for li in dispatcher.find_all("#vehicle-list li")] == ["KCA100A"]
    # The search box narrows the list in the browser, the same plate rule.
    dispatcher.find("#filters button[type=reset]").click()
    dispatcher.wait(lambda d: mapped(dispatcher) == len(FLEET) - 1)
    dispatcher.find("#search").send_keys("kca 10")
    dispatcher.wait(lambda d: len(dispatcher.find_all("#vehicle-list li")) == 10)
    no_console_errors(dispatcher)


def test_the_slo_badges_say_what_the_payload_says(dispatcher: Browser) -> None:
    dispatcher.get("/live/")
    dispatcher.wait(lambda d: rendered(dispatcher))
    metrics = api(dispatcher, "/api/views/live")["slo_status"]["metrics"]
    text = {"met": "met", "breached": "breached", "no_data": "no data", "not_measured": "no data"}
    badges = {b.get_attribute("data-metric"): b for b in dispatcher.find_all("#slo-badges .badge")}
    assert set(badges) == {m["metric"] for m in metrics}
    assert {m["state"] for m in metrics} - {"not_measured", "no_data"}, "the fixture measured nothing"
    for metric in metrics:
        badge = badges[metric["metric"]]
        assert badge.find_element("css selector", ".badge-state").text == text[metric["state"]], metric
        state = "no_data" if metric["state"] == "not_measured" else metric["state"]
        assert badge.get_attribute("data-state") == state


def test_a_vehicle_opens_by_keyboard_with_its_driver_and_alarms(dispatcher: Browser) -> None:
    dispatcher.get("/live/")
    dispatcher.wait(lambda d: len(dispatcher.find_all("#vehicle-list .row-button")) == len(FLEET))
    first = dispatcher.find("#vehicle-list .row-button")
    dispatcher.js("arguments[0].focus()", first)
    assert dispatcher.js("return document.activeElement.dataset.key") == first.get_attribute("data-key")
    first.send_keys(Keys.ENTER)
    dispatcher.wait(lambda d: dispatcher.find("#detail").is_displayed())
    assert dispatcher.find("#detail-title").text == "KCA100A"
    assert "Jane Wanjiru" in dispatcher.find("#detail-facts").text
    assert dispatcher.js("return document.activeElement.id") == "detail"
    # The vehicle with a history has an alarm of the last day.
    dispatcher.find("#search").send_keys(HISTORY_PLATE.lower())
    dispatcher.wait(lambda d: len(dispatcher.find_all("#vehicle-list .row-button")) == 1)
    dispatcher.find("#vehicle-list .row-button").send_keys(Keys.ENTER)
    dispatcher.wait(lambda d: "SOS alert" in dispatcher.find("#detail-alarms").text)
    dispatcher.screenshot("live-detail")
    dispatcher.find("#detail").send_keys(Keys.ESCAPE)
    dispatcher.wait(lambda d: not dispatcher.find("#detail").is_displayed())
    no_console_errors(dispatcher)


def test_the_live_page_fits_a_phone_in_portrait(dispatcher: Browser) -> None:
    dispatcher.driver.set_window_size(390, 844)
    try:
        dispatcher.get("/live/")
        dispatcher.wait(lambda d: rendered(dispatcher))
        map_box = dispatcher.find(".map-wrap").rect
        list_box = dispatcher.find("#vehicles-panel").rect
        assert map_box["width"] >= 360
        assert list_box["y"] > map_box["y"] + map_box["height"] - 1  # the map first, the list below
        assert not dispatcher.find("#filters-panel").get_attribute("open")  # folded on a phone
        assert dispatcher.js("return document.documentElement.scrollWidth") <= 390
        dispatcher.screenshot("live-phone")
    finally:
        dispatcher.driver.set_window_size(1366, 900)
    no_console_errors(dispatcher)


def test_the_live_page_asks_for_what_changed_and_moves_a_vehicle_by_a_delta(site, dispatcher: Browser) -> None:
    """LIVE_POLL_S is 2. After its first answer the page asks with `since=` its cursor and If-None-Match its ETag: a
    fleet where nothing changed answers 304, a fix that arrives comes as a delta that moves one marker, and the KPIs
    the page counts from what it holds are the API's."""
    dispatcher.get("/live/")
    dispatcher.wait(lambda d: mapped(dispatcher) == len(FLEET) - 1 and rendered(dispatcher))

    def last_poll() -> str:
        return str(dispatcher.find("#map").get_attribute("data-poll"))

    dispatcher.wait(lambda d: last_poll() == "unchanged", timeout=30, message="no refresh was answered 304")
    events = dispatcher.network()
    asked = [
        e["params"]["request"]
        for e in events
        if e["method"] == "Network.requestWillBeSent" and "/api/views/" in e["params"]["request"]["url"]
    ]
    assert "since=" not in asked[0]["url"]  # the first answer is the whole view
    assert asked[1:]
    assert all("since=" in r["url"] for r in asked[1:])
    assert all("If-None-Match" in r["headers"] for r in asked[1:] if "/api/views/live?" in r["url"])
    answered = [
        e["params"]["response"]["status"]
        for e in events
        if e["method"] == "Network.responseReceived" and "/api/views/live?" in e["params"]["response"]["url"]
    ]
    assert 304 in answered

    plate = "KCA109K"
    script = (
        "const done = arguments[1];"
        "window.fleet.map.getSource('vehicles').getData().then((data) => done("
        "  data.features.find((f) => f.properties.plate === arguments[0]).geometry.coordinates));"
    )
    lng, lat = dispatcher.driver.execute_async_script(script, plate)
    push(site.base_url, "pushgps", [fix(imei_of(plate), timezone.now(), lat + 0.001, lng, 45, 0, 1)])
    dispatcher.wait(
        lambda d: dispatcher.driver.execute_async_script(script, plate)[1] == pytest.approx(lat + 0.001),
        timeout=30,
        message="the marker did not move",
    )
    assert mapped(dispatcher) == len(FLEET) - 1
    brought = [
        e["params"]["request"]["url"]
        for e in dispatcher.network()
        if e["method"] == "Network.requestWillBeSent" and "/api/views/" in e["params"]["request"]["url"]
    ]
    assert brought
    assert all("since=" in url for url in brought)  # never the whole view again

    def kpis_are_the_apis(_: Any) -> bool:
        summary = api(dispatcher, "/api/views/live")["summary"]
        shown = {key: dispatcher.find(f'[data-kpi="{key}"]').text for key in [*summary["by_state"], "vehicles"]}
        expected = {**{k: str(v) for k, v in summary["by_state"].items()}, "vehicles": str(summary["vehicles"])}
        line = dispatcher.find('[data-kpi="freshness_line"]').text
        return shown == expected and line == summary["freshness_line"]

    dispatcher.wait(kpis_are_the_apis, timeout=20, message="the KPIs differ from the API's summary")
    no_console_errors(dispatcher)


# --- History -------------------------------------------------------------------------------------------------------


def test_history_playback_moves_the_marker(dispatcher: Browser) -> None:
    dispatcher.get("/history/?plates=kca-107h")  # typed any way
    dispatcher.wait(lambda d: len(dispatcher.find_all("#trip-list li")) == 2 and rendered(dispatcher))
    assert dispatcher.find('[data-kpi="trips"]').text == "2"
    assert dispatcher.find('[data-kpi="alarms"]').text == "1"
    Select(dispatcher.find("#pb-rate")).select_by_value("20")
    readout = dispatcher.find("#pb-readout")
    start = (readout.get_attribute("data-lng"), readout.get_attribute("data-lat"))
    dispatcher.find("#pb-play").click()
    dispatcher.wait(lambda d: (readout.get_attribute("data-lng"), readout.get_attribute("data-lat")) != start)
    first_move = (readout.get_attribute("data-lng"), readout.get_attribute("data-lat"))
    dispatcher.wait(lambda d: (readout.get_attribute("data-lng"), readout.get_attribute("data-lat")) != first_move)
    marker = dispatcher.driver.execute_async_script(
        "const done = arguments[0];"
        "window.fleet.map.getSource('playback').getData().then((d) => done(d.features[0].geometry.coordinates));"
    )
    assert marker != [float(start[0]), float(start[1])]
    assert dispatcher.find("#pb-play").text == "Pause"
    # Seek to the second trip: the playback clock jumps to its start (EAT, as the payload gives it).
    dispatcher.find("#pb-play").click()
    dispatcher.find_all("#trip-list .row-button")[1].click()
    assert "EAT" in readout.text
    time.sleep(0.3)  # let the chart's cursor settle before the picture
    dispatcher.screenshot("history")
    no_console_errors(dispatcher)


# --- Dispatch, routes ----------------------------------------------------------------------------------------------


def test_dispatch_lists_the_nearest_vehicles_available_first(dispatcher: Browser) -> None:
    dispatcher.get("/dispatch/")
    dispatcher.wait(lambda d: dispatcher.js("return Boolean(window.fleet?.map?.loaded())"))
    # A click in the middle of the map, which starts over Nairobi.
    ActionChains(dispatcher.driver).move_to_element(dispatcher.find("#map")).click().perform()
    dispatcher.wait(lambda d: len(dispatcher.find_all("#nearest-list li")) > 0)
    rows = [li.text for li in dispatcher.find_all("#nearest-list li")]
    availability = ["not available" not in r and "suspended" not in r for r in rows]
    assert availability == sorted(availability, reverse=True)  # available ones first
    assert availability[0]
    lat = float(dispatcher.find("#d-lat").get_attribute("value"))
    assert abs(lat - NAIROBI[0]) < 0.2
    dispatcher.wait(lambda d: rendered(dispatcher))
    dispatcher.screenshot("dispatch")
    no_console_errors(dispatcher)


def test_the_routes_page_says_routing_is_not_configured_yet_and_draws_a_route(dispatcher: Browser) -> None:
    dispatcher.get("/routes/")
    dispatcher.wait(lambda d: dispatcher.js("return Boolean(window.fleet?.map?.loaded())"))
    off = dispatcher.find("#routes-off")
    if dispatcher.js("return JSON.parse(document.getElementById('fleet-config').textContent).routes") is None:
        # This gateway has no POST /api/routes: the page knows it without asking (no request answers 404).
        assert dispatcher.js("return document.body.dataset.routing") == "not-configured"
        assert not dispatcher.find("#route-submit").is_enabled()
    else:
        # The endpoint is there; should it answer 404 after all, the page says the same, and logs no error.
        assert not off.is_displayed()
        dispatcher.js(
            "const real = window.fetch;"
            "window.fetch = (url, init) => String(url).includes('/api/routes')"
            '  ? Promise.resolve(new Response(\'{"detail": "Not Found"}\','
            "      {status: 404, headers: {'Content-Type': 'application/json'}}))"
            "  : real(url, init);"
        )
        for field, value in (
            ("r-from-lat", "-1.29"),
            ("r-from-lng", "36.82"),
            ("r-to-lat", "-1.26"),
            ("r-to-lng", "36.9"),
        ):
            dispatcher.find(f"#{field}").send_keys(value)
        dispatcher.find("#route-submit").click()
        dispatcher.wait(lambda d: dispatcher.js("return document.body.dataset.routing") == "not-configured")
        assert not dispatcher.find("#route-submit").is_enabled()
    assert off.is_displayed()
    assert "Routing is not configured yet" in off.text
    # What the page draws from an answer of the endpoint's shape.
    segment = {"seq": 1, "way_id": 1, "osm_id": 1, "name": "Mombasa Road", "highway": "trunk", "speed_kmh": 50,
               "length_m": 5000, "duration_s": 600}  # fmt: skip
    answer = {
        "route_geojson": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[36.82, -1.29], [36.85, -1.27]]},
             "properties": {**segment, "basis": "observed"}},
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[36.85, -1.27], [36.9, -1.26]]},
             "properties": {**segment, "seq": 2, "basis": "maxspeed"}},
        ]},
        "eta_sec": 1260,
        "distance_m": 10450,
        "observed_basis": {"observed": 0.6, "maxspeed": 0.4, "class_default": 0.0},
    }  # fmt: skip
    dispatcher.js("window.fleet.renderRoute(arguments[0])", answer)
    facts = dispatcher.find("#route-facts").text
    for shown in ("21 min", "10.5 km", "observed speeds 60 %, speed limits 40 %"):
        assert shown in facts
    dispatcher.wait(lambda d: rendered(dispatcher))
    dispatcher.screenshot("routes")
    no_console_errors(dispatcher)


# --- Reports -------------------------------------------------------------------------------------------------------


def test_a_report_downloads_and_opens_in_excel(site: SimpleNamespace, dispatcher: Browser) -> None:
    for old in dispatcher.downloads.iterdir():
        old.unlink()
    dispatcher.get("/reports/")
    Select(dispatcher.find("#id_report")).select_by_value("trips")
    since = dispatcher.find("#id_since")
    two_days_ago = (site.now - timedelta(days=2)).astimezone(ZoneInfo("Africa/Nairobi")).strftime("%Y-%m-%dT%H:%M")
    dispatcher.js("arguments[0].value = arguments[1]", since, two_days_ago)
    dispatcher.find("#id_plates").send_keys("kca 107h")
    dispatcher.find("#id_format_0").click()  # Excel
    dispatcher.screenshot("reports")
    dispatcher.find("#report-download").click()

    def downloaded() -> Any:
        files = [p for p in dispatcher.downloads.iterdir() if p.suffix == ".xlsx"]
        return files[0] if files and not list(dispatcher.downloads.glob("*.crdownload")) else None

    path = dispatcher.wait(lambda d: downloaded(), message="no report was downloaded")
    assert path.name.startswith("trips-")
    rows = list(load_workbook(io.BytesIO(path.read_bytes()), read_only=True).active.values)
    assert rows[0][:2] == ("vehicle", "imei")
    assert [r[0] for r in rows[1:]] == [HISTORY_PLATE, HISTORY_PLATE]
    no_console_errors(dispatcher)


# --- The map without tile servers -----------------------------------------------------------------------------------


def test_with_map_offline_no_request_leaves_the_gateway(dispatcher: Browser) -> None:
    urls: list[str] = []
    for page in ("/live/", "/history/?plates=KCA107H", "/dispatch/", "/routes/", "/reports/"):
        dispatcher.get(page)
        if "/reports/" not in page:
            dispatcher.wait(lambda d: dispatcher.js("return Boolean(window.fleet?.map?.loaded())"))
        if page in ("/live/", "/history/?plates=KCA107H"):
            dispatcher.wait(lambda d: rendered(dispatcher))
        urls += dispatcher.requested_urls()
        urls += dispatcher.js("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert any("/api/views/overview" in u for u in urls)  # the live page's first refresh
    assert any("/api/views/history" in u for u in urls)
    assert any("maplibre-gl-worker" in u for u in urls)
    assert off_origin(urls, dispatcher.base_url) == []
    no_console_errors(dispatcher)


class _StyleServer(BaseHTTPRequestHandler):
    """A style whose tiles come from a port nobody listens on: a tile server that is down."""

    dead_port = 0

    def do_GET(self) -> None:
        style = {
            "version": 8,
            "sources": {"down": {"type": "raster", "tiles": [f"http://127.0.0.1:{self.dead_port}/{{z}}/{{x}}/{{y}}.png"],
                                 "tileSize": 256}},
            "layers": [{"id": "down", "type": "raster", "source": "down"}],
        }  # fmt: skip
        body = json.dumps(style).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("style", ["tiles down", "style down"])
def test_the_map_falls_back_to_the_offline_style(site: SimpleNamespace, dispatcher: Browser, style: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StyleServer)
    _StyleServer.dead_port = free_port()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    style_url = (
        f"http://127.0.0.1:{server.server_port}/style.json"
        if style == "tiles down"
        else (f"http://127.0.0.1:{free_port()}/style.json")
    )
    env = {"MAP_OFFLINE": "false", "MAP_STYLE_URL": style_url, "GATEWAY_WORKERS": "1",
           "RATE_LIMIT_DASHBOARDS_PER_MIN": "0"}  # fmt: skip
    gateway = RoleProcess("gateway", env=env).start()
    try:
        gateway.wait_http("/health/gateway")
        # The session cookie is the host's, whatever the port: the same login works on this gateway.
        dispatcher.driver.get(gateway.base_url + "/live/")
        dispatcher.wait(lambda d: dispatcher.find("#map").get_attribute("data-map-style") == "offline", timeout=30)
        dispatcher.wait(lambda d: mapped(dispatcher) == len(FLEET) - 1 and rendered(dispatcher))
        assert "offline map" in dispatcher.find(".map-notice").text
        if style == "tiles down":
            dispatcher.screenshot("live-tiles-down")
        # The only errors are the failed loads of the style or tiles that are down.
        down = (f"127.0.0.1:{_StyleServer.dead_port}/", style_url)
        unexpected = [e for e in dispatcher.console_errors() if not any(url in e["message"] for url in down)]
        assert unexpected == []
    finally:
        gateway.stop()
        server.shutdown()
