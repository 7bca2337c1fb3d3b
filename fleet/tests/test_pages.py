"""The page views with Django's test client: who may see them (the API's scopes), the login and its throttle, what
each page is told (settings, SLO badges, the import map), and the reports form that sends on to the report
endpoint. What the pages do in a browser: fleet/tests/test_pages_browser.py."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.urls import include, path

from devtools.testing.auth import PASSWORD, make_api_user
from domain.models import AssignedCity, CostCentre
from fleet import pages
from fleet.pages import ROUTES_PATH, SLO_LABELS, plates_from_text
from slo.models import SloTarget, TargetKind

PAGES = ["/live/", "/history/", "/dispatch/", "/routes/", "/reports/"]


@pytest.fixture
def reader(db, client):
    make_api_user("reader", "read:fleet")
    client.login(username="reader", password=PASSWORD)
    return client


def config_of(response) -> dict:
    found = re.search(r'<script type="application/json" id="fleet-config">(.*?)</script>', response.content.decode())
    return json.loads(found.group(1))


def import_map_of(response) -> dict:
    found = re.search(r'<script type="importmap">(.*?)</script>', response.content.decode())
    return json.loads(found.group(1))["imports"]


# --- Who may see the pages -----------------------------------------------------------------------------------------


def test_the_root_goes_to_the_live_page(db, client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/live/"


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_visitor_is_sent_to_the_login(db, client, page):
    response = client.get(page + "?plates=x")
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == "/login/"
    assert parse_qs(target.query) == {"next": [page + "?plates=x"]}


@pytest.mark.parametrize("page", PAGES)
def test_a_user_without_read_fleet_gets_a_403_page_saying_why(db, client, page):
    make_api_user("clerk", "write:ops")
    client.login(username="clerk", password=PASSWORD)
    response = client.get(page)
    assert response.status_code == 403
    assert next(t.name for t in response.templates) == "fleet/forbidden.html"
    body = response.content.decode()
    assert "read:fleet" in body
    assert "clerk" in body
    assert 'id="slo-badges"' not in body  # the SLO status is fleet data too
    assert 'action="/logout/"' in body


@pytest.mark.parametrize("page", PAGES)
def test_a_reader_sees_every_page_with_its_header(reader, page):
    response = reader.get(page)
    assert response.status_code == 200
    body = response.content.decode()
    for link in PAGES:
        assert f'href="{link}"' in body
    assert f'href="{page}" aria-current="page"' in body
    assert re.search(r'<time class="clock" id="clock" datetime="[^"]+">\d\d:\d\d:\d\d EAT</time>', body)
    assert ">reader<" in body
    slo_metrics = set(SloTarget.objects.filter(kind=TargetKind.SLO).values_list("metric", flat=True))
    assert set(re.findall(r'data-metric="([^"]+)"', body)) == slo_metrics
    for metric in slo_metrics:
        assert SLO_LABELS[metric] in body
    assert 'class="badge-state">no data<' in body  # nothing measured yet in this test


def test_a_superuser_holds_read_fleet(db, client, django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    client.login(username="root", password=PASSWORD)
    assert client.get("/live/").status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_only_answer_get(reader, page):
    assert reader.post(page).status_code == 405


# --- Login and logout ----------------------------------------------------------------------------------------------


def test_the_login_page_is_styled_like_the_app_and_logs_in_to_next(db, client):
    make_api_user("reader", "read:fleet")
    page = client.get("/login/?next=/history/")
    assert page.status_code == 200
    assert next(t.name for t in page.templates) == "fleet/login.html"
    assert "fleet/fleet." in page.content.decode()  # the app's stylesheet
    response = client.post("/login/", {"username": "reader", "password": PASSWORD, "next": "/history/"})
    assert response.status_code == 302
    assert response["Location"] == "/history/"
    assert client.get("/history/").status_code == 200


def test_a_wrong_password_says_so(db, client):
    make_api_user("reader", "read:fleet")
    response = client.post("/login/", {"username": "reader", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_the_login_is_throttled_like_the_admin_login(db, client, settings):
    settings.LOGIN_FAILURES_MAX = 3
    make_api_user("reader", "read:fleet")
    for _ in range(3):
        assert client.post("/login/", {"username": "reader", "password": "nope"}).status_code == 200
    locked = client.post("/login/", {"username": "reader", "password": PASSWORD})  # even the right password
    assert locked.status_code == 429
    assert 0 < int(locked["Retry-After"]) <= settings.LOGIN_FAILURES_WINDOW_S
    assert "Too many failed logins" in locked.content.decode()
    # The same counter as the admin's login: it is locked there too.
    assert client.post("/admin/login/", {"username": "reader", "password": PASSWORD}).status_code == 429


def test_a_successful_login_resets_the_failure_count(db, client, settings):
    settings.LOGIN_FAILURES_MAX = 3
    make_api_user("reader", "read:fleet")
    for _ in range(2):
        client.post("/login/", {"username": "reader", "password": "nope"})
    assert client.post("/login/", {"username": "reader", "password": PASSWORD}).status_code == 302
    client.post("/logout/")
    for _ in range(2):
        client.post("/login/", {"username": "reader", "password": "nope"})
    assert client.post("/login/", {"username": "reader", "password": PASSWORD}).status_code == 302


def test_logout_is_a_post_and_ends_the_session(reader):
    assert reader.get("/logout/").status_code == 405
    response = reader.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert reader.get("/live/").status_code == 302


# --- What each page is told ----------------------------------------------------------------------------------------


def test_the_pages_get_the_settings_they_need(reader, settings):
    settings.LIVE_POLL_S = 7
    settings.MAP_OFFLINE = True
    settings.MAP_STYLE_URL = "https://tiles.example.com/style.json"
    config = config_of(reader.get("/live/"))
    assert config["livePollS"] == 7
    assert config["timeZone"] == "Africa/Nairobi"
    assert config["zoneName"] == "EAT"
    assert config["map"]["offline"] is True
    assert config["map"]["styleUrl"] == "https://tiles.example.com/style.json"
    assert config["maxHistoryDays"] == 31


def test_the_defaults_are_an_online_map_polled_every_15_s():
    assert django_settings.LIVE_POLL_S == 15
    assert django_settings.MAP_OFFLINE is False
    assert django_settings.MAP_STYLE_URL == ""


def test_the_import_map_sends_the_modules_to_their_hashed_names(reader):
    response = reader.get("/live/")
    imports = import_map_of(response)
    assert set(imports) == {"maplibre-gl", "/static/fleet/fleet-core.js"}
    assert re.fullmatch(r"/static/fleet/fleet-core\.[0-9a-f]{12}\.js", imports["/static/fleet/fleet-core.js"])
    assert re.fullmatch(r"/static/vendor/maplibre-gl/6\.17\.0/maplibre-gl\.[0-9a-f]{12}\.mjs", imports["maplibre-gl"])
    worker = config_of(response)["map"]["workerUrl"]
    assert re.fullmatch(r"/static/vendor/maplibre-gl/6\.17\.0/maplibre-gl-worker\.[0-9a-f]{12}\.mjs", worker)
    assert re.search(r'<script type="module" src="/static/fleet/live\.[0-9a-f]{12}\.js">', response.content.decode())


def test_the_vendored_maplibre_comes_with_its_licence():
    for name in ("maplibre-gl.mjs", "maplibre-gl-worker.mjs", "maplibre-gl.css", "LICENSE.txt"):
        assert finders.find(f"vendor/maplibre-gl/6.17.0/{name}"), name
    licence = Path(str(finders.find("vendor/maplibre-gl/6.17.0/LICENSE.txt"))).read_text(encoding="utf-8")
    assert "Redistribution and use in source and binary forms" in licence


def test_routing_and_road_tiles_are_absent_until_the_gateway_serves_them(reader, monkeypatch):
    monkeypatch.setattr(pages, "ROUTES_PATH", "/api/no-routes-here")
    monkeypatch.setattr(pages, "ROAD_TILES_PATH", "/tiles/no-roads-here/{z}/{x}/{y}.pbf")
    config = config_of(reader.get("/routes/"))
    assert config["routes"] is None
    assert config["map"]["roadTiles"] is None
    body = reader.get("/routes/").content.decode()
    assert "Routing is not configured yet" in body
    assert 'id="routes-off" role="status" hidden' not in body


def _routes_stub(request):
    return HttpResponse("{}", content_type="application/json")


urlpatterns = [
    path(ROUTES_PATH.lstrip("/"), _routes_stub),
    path("tiles/roads/<int:z>/<int:x>/<int:y>.pbf", _routes_stub),
    path("", include("fleet.urls")),
]


@pytest.mark.urls(__name__)
def test_the_pages_find_routing_and_road_tiles_once_they_exist(reader):
    config = config_of(reader.get("/routes/"))
    assert config["routes"] == "/api/routes"
    assert config["map"]["roadTiles"] == "/tiles/roads/{z}/{x}/{y}.pbf"
    assert 'id="routes-off" role="status" hidden' in reader.get("/routes/").content.decode()


def test_the_live_page_offers_the_cost_centres_and_cities(reader):
    CostCentre.objects.create(name="North")
    AssignedCity.objects.create(name="Mombasa")
    body = reader.get("/live/").content.decode()
    assert '<option value="North">North</option>' in body
    assert '<option value="Mombasa">Mombasa</option>' in body
    for state in ("moving", "idling", "parked", "offline", "unknown"):
        assert f'name="operational_state" value="{state}"' in body


def test_the_history_page_starts_from_the_plates_it_is_given(reader):
    body = reader.get("/history/?plates=kca-123a").content.decode()
    assert 'value="kca-123a"' in body


# --- Reports ---------------------------------------------------------------------------------------------------


def test_a_valid_report_form_sends_on_to_the_report_endpoint(reader):
    CostCentre.objects.create(name="North")
    response = reader.get(
        "/reports/",
        {"report": "trips", "format": "xlsx", "since": "2026-11-16T08:00", "until": "2026-11-23T08:00",
         "cost_centre": ["North"], "plates": "kca-123a; KCB 456b"},
    )  # fmt: skip
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == "/api/reports/trips"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["format"] == "xlsx"
    # Typed in the display zone (EAT, +03:00).
    assert datetime.fromisoformat(query["since"]).isoformat() == "2026-11-16T08:00:00+03:00"
    assert datetime.fromisoformat(query["until"]).isoformat() == "2026-11-23T08:00:00+03:00"
    assert json.loads(query["filters"]) == {"cost_centre": ["North"], "vehicle_numbers": ["KCA123A", "KCB456B"]}
    download = reader.get(response["Location"])
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment; filename=")


def test_a_report_without_filters_sends_none(reader):
    response = reader.get(
        "/reports/", {"report": "alarms", "format": "csv", "since": "2026-11-16T00:00", "until": "2026-11-17T00:00"}
    )
    assert "filters" not in parse_qs(urlsplit(response["Location"]).query)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"plates": "KCA 123A, ???"}, "not a number plate: ???"),
        ({"until": "2026-11-15T00:00"}, "must be after"),
        ({"report": "nope"}, "Select a valid choice"),
        ({"since": ""}, "This field is required"),
    ],
)
def test_an_invalid_report_form_stays_on_the_page_and_says_why(reader, change, says):
    query = {"report": "trips", "format": "csv", "since": "2026-11-16T00:00", "until": "2026-11-17T00:00", **change}
    response = reader.get("/reports/", query)
    assert response.status_code == 200
    assert says in response.content.decode()


def test_the_reports_page_starts_with_the_last_week(reader):
    body = reader.get("/reports/").content.decode()
    assert re.search(r'name="since" value="\d{4}-\d\d-\d\dT\d\d:\d\d"', body)
    assert 'value="xlsx" required id="id_format_0" checked' in body or "checked" in body


def test_plates_are_read_the_way_domain_plates_reads_them():
    assert plates_from_text(" kca-123a ,KCB.456/b;kca 123a\n") == ("KCA123A", "KCB456B")
    with pytest.raises(Exception, match="not a number plate: x"):
        plates_from_text("KCA123A, x")
