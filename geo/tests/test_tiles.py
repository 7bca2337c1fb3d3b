"""Road tiles (GET /tiles/roads/{z}/{x}/{y}.pbf): Mapbox vector tiles of the road graph, decoded here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from devtools.testing.auth import PASSWORD, access_for, bearer, make_api_user
from fleet.auth import READ_FLEET, WRITE_OPS
from geo.tests.mvt import decode
from geo.tiles import tile_cache

pytestmark = pytest.mark.django_db

T_JUNCTION = Path(__file__).resolve().parent / "t_junction.osm"
BOULEVARD = (43.7345, 7.4214)  # Boulevard Albert 1er, by the Port


def tile_of(lat: float, lng: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lng + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    tile_cache.clear()


def get_tile(client: Client, auth: dict[str, str], z: Any, x: Any, y: Any, **headers: Any) -> Any:
    return client.get(f"/tiles/roads/{z}/{x}/{y}.pbf", **{**auth, **headers})


def test_it_serves_monacos_streets_in_the_roads_layer(monaco, reader):
    response = get_tile(Client(), reader, *tile_of(*BOULEVARD, 15))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.mapbox-vector-tile"
    layers = decode(response.content)
    assert set(layers) == {"roads"}
    roads = layers["roads"]["features"]
    assert {f["type"] for f in roads} == {"LINESTRING"}
    assert all(set(f["properties"]) <= {"highway", "name", "oneway"} for f in roads)
    named = {f["properties"].get("name") for f in roads}
    assert {"Boulevard Albert 1er", "Quai Albert 1er"} & named
    boulevard = [f for f in roads if f["properties"].get("name") == "Boulevard Albert 1er"]
    assert boulevard
    assert all(f["properties"]["highway"] == "primary" and f["properties"]["oneway"] is True for f in boulevard)


def test_it_shows_only_main_roads_at_low_zoom(monaco, reader):
    detailed = decode(get_tile(Client(), reader, *tile_of(*BOULEVARD, 14)).content)["roads"]["features"]
    overview = decode(get_tile(Client(), reader, *tile_of(*BOULEVARD, 9)).content)["roads"]["features"]
    assert "residential" in {f["properties"]["highway"] for f in detailed}
    assert {f["properties"]["highway"] for f in overview} <= {
        "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
    }  # fmt: skip
    assert overview


def test_it_serves_an_empty_tile_where_there_are_no_roads(monaco, reader):
    response = get_tile(Client(), reader, *tile_of(-1.2921, 36.8219, 14))  # Nairobi: not in the Monaco graph
    assert response.status_code == 200
    assert response.content == b""
    assert decode(response.content) == {}


@pytest.mark.parametrize(
    ("z", "x", "y"), [(23, 0, 0), (-1, 0, 0), (3, 8, 0), (3, 0, 8), (3, -1, 0), ("a", 0, 0), (3, 1.5, 2)]
)
def test_it_answers_400_for_an_address_that_is_no_tile(reader, z, x, y):
    response = get_tile(Client(), reader, z, x, y)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_tile"


def test_it_builds_a_tile_once_per_graph_load_and_lets_the_browser_keep_it(monaco, reader):
    address = tile_of(*BOULEVARD, 15)
    client = Client()
    first = get_tile(client, reader, *address)
    assert "private" in first["Cache-Control"]
    assert "max-age=" in first["Cache-Control"]
    with CaptureQueriesContext(connection) as queries:
        again = get_tile(client, reader, *address)
    assert again.content == first.content
    assert not [q for q in queries.captured_queries if "ST_AsMVT" in q["sql"]]
    # The browser's copy is current: 304, no body.
    unchanged = get_tile(client, reader, *address, HTTP_IF_NONE_MATCH=first["ETag"])
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    # A new graph is a new key and a new ETag: the old tile is not served for it.
    call_command("load_osm", str(T_JUNCTION), verbosity=0)
    after = get_tile(client, reader, *address, HTTP_IF_NONE_MATCH=first["ETag"])
    assert after.status_code == 200
    assert after["ETag"] != first["ETag"]
    assert after.content == b""  # the T junction is nowhere near Monaco


def test_it_serves_tiles_to_read_fleet_only_by_token_or_session(monaco):
    address = tile_of(*BOULEVARD, 15)
    assert get_tile(Client(), {}, *address).status_code == 401
    assert get_tile(Client(), bearer("garbage"), *address).status_code == 401
    writer = make_api_user("tile-writer", WRITE_OPS)
    assert get_tile(Client(), bearer(access_for(writer)), *address).json()["code"] == "insufficient_scope"
    make_api_user("tile-reader", READ_FLEET)
    session = Client()
    session.login(username="tile-reader", password=PASSWORD)
    assert get_tile(session, {}, *address).status_code == 200
