"""Reverse geocoding against local fakes of Nominatim and Mapbox speaking their real JSON, and offline from our
own roads: what is asked, how often, in what order of providers, what is cached, and what the views show."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from devtools.testing.geocoders import Place, fake_mapbox, fake_nominatim
from geo.geocoding import geocode_pending, key_of, roads_address
from geo.models import Address
from geo.selectors import addresses_for
from state.tests.drives import drive, feed, stay

pytestmark = pytest.mark.django_db

# Points of Monaco: on Avenue Princesse Grace (Larvotto), on Boulevard Albert 1er (by the Port).
LARVOTTO = (43.7455, 7.4330)
PORT = (43.73500, 7.42135)
PLACES = [
    Place(LARVOTTO[0], LARVOTTO[1], "Avenue Princesse Grace", house_number="2", suburb="Larvotto"),
    Place(PORT[0], PORT[1], "Boulevard Albert 1er", suburb="La Condamine"),
]


def park_and_drive(make_device: Any, account: Any, start: tuple[float, float]) -> tuple[int, tuple[float, float]]:
    """A vehicle that drives 10 minutes north from `start` (a trip) and parks 10 minutes: a trip start and end, a
    parking event and a live position, recent enough for the geocoder to want them."""
    device = make_device(plate="KDA123Z")
    begin = timezone.now() - timedelta(hours=1)
    moves = drive(device.id, begin, seconds=600, every=30, speed=36.0, origin=start)
    end = moves[-1].payload["lat"], moves[-1].payload["lng"]
    feed(moves + stay(device.id, begin + timedelta(seconds=600), seconds=900, at=end), account_id=account.id)
    return device.id, end


def test_it_asks_nominatim_one_request_per_interval_with_its_user_agent_and_caches_the_answers(make_device, account):
    park_and_drive(make_device, account, LARVOTTO)
    with (
        fake_nominatim(PLACES) as (url, log),
        override_settings(
            GEOCODE_NOMINATIM_URL=url,
            GEOCODE_NOMINATIM_INTERVAL_S=0.4,
            GEOCODE_USER_AGENT="fleet-test (ops@example.com)",
        ),
    ):
        run = geocode_pending(budget_s=30)
        assert run.online >= 2  # the trip start and at least the parking place
        asked = [r for r in log.requests if r["path"] == "/reverse"]
        assert len(asked) == run.online
        assert {r["headers"]["User-Agent"] for r in asked} == {"fleet-test (ops@example.com)"}
        assert {r["query"]["format"] for r in asked} == {"jsonv2"}
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(asked)]
        assert all(gap >= 0.38 for gap in gaps), gaps
        # Cached by the rounded coordinate: a second run asks nothing.
        again = geocode_pending(budget_s=30)
        assert (again.online, again.offline) == (0, 0)
        assert len(log.requests) == len(asked)
    start = Address.objects.get(lat_key=key_of(*LARVOTTO).lat_key, lng_key=key_of(*LARVOTTO).lng_key)
    assert start.provider == "nominatim"
    assert start.address == "2 Avenue Princesse Grace, Larvotto, Monaco"
    # Within the rounding (about 11 m), the cached address is the point's.
    assert addresses_for([(LARVOTTO[0] + 0.00002, LARVOTTO[1] - 0.00002)]) == [
        "2 Avenue Princesse Grace, Larvotto, Monaco"
    ]


def test_it_asks_mapbox_when_nominatim_is_down_and_stops_asking_nominatim_for_the_run(make_device, account):
    park_and_drive(make_device, account, PORT)
    with fake_nominatim(PLACES) as (n_url, n_log), fake_mapbox(PLACES) as (m_url, m_log), override_settings(
        GEOCODE_NOMINATIM_URL=n_url, GEOCODE_NOMINATIM_INTERVAL_S=0, GEOCODE_MAPBOX_URL=m_url,
        GEOCODE_MAPBOX_TOKEN="pk.test-token",
    ):  # fmt: skip
        n_log.status = 503
        run = geocode_pending(budget_s=30)
        assert run.unreachable == ("nominatim",)
        assert len(n_log.requests) == 1
        assert m_log.requests
        assert {r["query"]["access_token"] for r in m_log.requests} == {"pk.test-token"}
    port = Address.objects.get(lat_key=key_of(*PORT).lat_key, lng_key=key_of(*PORT).lng_key)
    assert (port.provider, port.address) == ("mapbox", "Boulevard Albert 1er, 98000 Monaco, Monaco")


def test_it_names_our_own_roads_when_no_geocoder_answers_and_asks_again_later(monaco, make_device, account):
    park_and_drive(make_device, account, PORT)
    with (
        fake_nominatim(PLACES) as (url, log),
        override_settings(GEOCODE_NOMINATIM_URL=url, GEOCODE_NOMINATIM_INTERVAL_S=0),
    ):
        log.status = 502
        run = geocode_pending(budget_s=30)
        assert run.online == 0
        assert run.offline == 2  # the trip start, and the end where it parked (the live position too)
        port = Address.objects.get(lat_key=key_of(*PORT).lat_key, lng_key=key_of(*PORT).lng_key)
        assert port.provider == "roads"
        assert port.address == "Boulevard Albert 1er, 50 m from Rue Princesse Antoinette"
        # Back up: the offline answers are replaced by online ones.
        log.status = 200
        later = geocode_pending(budget_s=30)
        assert later.upgraded >= 1
    port.refresh_from_db()
    assert (port.provider, port.address) == ("nominatim", "Boulevard Albert 1er, La Condamine, Monaco")


def test_it_asks_no_one_online_unless_configured(monaco, make_device, account):
    park_and_drive(make_device, account, LARVOTTO)
    with override_settings(GEOCODE_NOMINATIM_URL="", GEOCODE_MAPBOX_TOKEN=""):
        run = geocode_pending(budget_s=30)
    assert run.online == 0
    assert set(Address.objects.values_list("provider", flat=True)) == {"roads"}


def test_roads_address_names_the_nearest_street_and_the_crossing_one(monaco):
    assert roads_address(*PORT) == "Boulevard Albert 1er, 50 m from Rue Princesse Antoinette"
    assert roads_address(43.7200, 7.4500) == ""  # two kilometres out at sea


def test_the_views_show_the_addresses_geo_knows(make_device, account, reader):
    device_id, parked = park_and_drive(make_device, account, LARVOTTO)
    client = Client()
    live = client.get("/api/views/live", **reader).json()
    (vehicle,) = [f for f in live["geojson"]["features"] if f["properties"]["device_id"] == device_id]
    assert vehicle["properties"]["address"] is None  # not geocoded yet
    where_parked = Place(parked[0], parked[1], "Route de la Turbie", city="Beausoleil", postcode="06240",
                         country="France", country_code="fr")  # fmt: skip
    with (
        fake_nominatim([*PLACES, where_parked]) as (url, _),
        override_settings(GEOCODE_NOMINATIM_URL=url, GEOCODE_NOMINATIM_INTERVAL_S=0),
    ):
        geocode_pending(budget_s=30)
    live = client.get("/api/views/live", **reader).json()
    (vehicle,) = [f for f in live["geojson"]["features"] if f["properties"]["device_id"] == device_id]
    assert vehicle["properties"]["address"] == "Route de la Turbie, Beausoleil"
    history = client.get("/api/views/history", {"days": 1}, **reader).json()
    starts = [f for f in history["geojson"]["features"] if f["properties"]["kind"] == "trip_start"]
    assert [f["properties"]["address"] for f in starts] == ["2 Avenue Princesse Grace, Larvotto, Monaco"]
    dispatch = client.get("/api/views/dispatch", {"lat": str(LARVOTTO[0]), "lng": str(LARVOTTO[1])}, **reader).json()
    assert all("address" in f["properties"] for f in dispatch["geojson"]["features"] if f.get("id"))
