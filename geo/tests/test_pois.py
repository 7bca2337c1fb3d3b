"""Points of interest: kept in the admin on a map, served to the maps (GET /api/pois), and the nearest depot in the
dispatch view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.gis.geos import Point
from django.test import Client

from devtools.testing.auth import PASSWORD, make_api_user
from domain.models import Account
from geo.models import Poi, PoiKind
from state.tests.drives import NAIROBI, drive, feed

pytestmark = pytest.mark.django_db


@pytest.fixture
def places(account):
    other = Account.objects.create(name="Kampala")
    return {
        "hq": Poi.objects.create(name="Head office", kind=PoiKind.HQ, point=Point(36.8219, -1.2921), account=account),
        "west": Poi.objects.create(name="Westlands depot", kind=PoiKind.DEPOT, point=Point(36.8030, -1.2650),
                                   account=account),
        "south": Poi.objects.create(name="Industrial Area depot", kind=PoiKind.DEPOT, point=Point(36.8560, -1.3080),
                                    account=account),
        "client": Poi.objects.create(name="Junction Mall", kind=PoiKind.CUSTOMER, point=Point(36.7620, -1.2980),
                                     account=account),
        "kampala": Poi.objects.create(name="Kampala depot", kind=PoiKind.DEPOT, point=Point(36.8200, -1.2700),
                                      account=other),
    }  # fmt: skip


def test_the_admin_keeps_pois_on_a_map(account):
    make_api_user("geo-admin", superuser=True)
    client = Client()
    client.login(username="geo-admin", password=PASSWORD)
    add = client.get("/admin/geo/poi/add/")
    assert add.status_code == 200
    assert b"geodjango_point" in add.content or b"id_point" in add.content  # the map widget
    # As the map widget posts it: GeoJSON in the map's projection (Web Mercator).
    clicked = Point(36.87, -1.33, srid=4326)
    clicked.transform(3857)
    response = client.post(
        "/admin/geo/poi/add/",
        {"name": "Mombasa Road depot", "kind": "depot", "account": account.id, "notes": "", "point": clicked.json},
    )
    assert response.status_code == 302, response.content[:2000]
    poi = Poi.objects.get(name="Mombasa Road depot")
    assert (round(poi.point.x, 2), round(poi.point.y, 2)) == (36.87, -1.33)
    assert client.get("/admin/geo/poi/").status_code == 200


def test_it_serves_the_pois_to_the_maps(places, reader):
    client = Client()
    everything = client.get("/api/pois", **reader).json()
    assert everything["type"] == "FeatureCollection"
    assert len(everything["features"]) == 5
    hq = next(f for f in everything["features"] if f["properties"]["name"] == "Head office")
    assert hq["geometry"] == {"type": "Point", "coordinates": [36.8219, -1.2921]}
    assert hq["properties"] == {"name": "Head office", "kind": "hq", "account": "Nairobi", "style_class": "poi poi-hq"}
    depots = client.get("/api/pois?kind=depot&account=Nairobi", **reader).json()["features"]
    assert sorted(f["properties"]["name"] for f in depots) == ["Industrial Area depot", "Westlands depot"]
    assert client.get("/api/pois?kind=warehouse", **reader).status_code == 422


def test_the_dispatch_view_names_the_nearest_depot(places, reader, make_device, account):
    device = make_device(plate="KDA123Z")
    feed(drive(device.id, datetime.now(UTC) - timedelta(minutes=5), seconds=60, origin=NAIROBI), account_id=account.id)
    client = Client()
    near_west = client.get("/api/views/dispatch", {"lat": "-1.2660", "lng": "36.8040"}, **reader).json()
    assert near_west["summary"]["nearest_depot"]["name"] == "Westlands depot"
    assert 100 < near_west["summary"]["nearest_depot"]["distance_m"] < 200
    # Kampala's depot is nearer to this point, but the filter names only Nairobi's account.
    point = {"lat": "-1.2705", "lng": "36.8200"}
    assert client.get("/api/views/dispatch", point, **reader).json()["summary"]["nearest_depot"]["name"] == (
        "Kampala depot"
    )
    only_nairobi = client.get(
        "/api/views/dispatch", {**point, "filters": json.dumps({"account": ["Nairobi"]})}, **reader
    ).json()
    assert only_nairobi["summary"]["nearest_depot"]["name"] == "Westlands depot"
    # The vehicles are still there, untouched.
    assert only_nairobi["summary"]["vehicles"] == 1


def test_the_dispatch_view_has_no_depot_when_none_is_kept(reader):
    answer = Client().get("/api/views/dispatch", {"lat": "-1.2660", "lng": "36.8040"}, **reader).json()
    assert answer["summary"]["nearest_depot"] is None
