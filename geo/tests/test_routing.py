"""Routing (POST /api/routes) on the Monaco graph: the streets a route takes, one-ways, ends split on their
segment, observed speed bands, refusals, the request log the route_p95_ms SLO reads, and the rate limit."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings

from devtools.testing.auth import access_for, bearer, make_api_user
from geo.metrics import route_p95_ms
from geo.models import RouteRequest, SegmentSpeedBand, Way
from geo.routing import route_between
from slo.thresholds import threshold

pytestmark = pytest.mark.django_db

# On Boulevard Albert 1er, which is one-way northwards (from the Port towards Sainte-Dévote): A south, B north.
BOULEVARD_A = (43.73295, 7.42215)
BOULEVARD_B = (43.73640, 7.42140)
# Two points on one 124 m segment of the boulevard, south then north.
SAME_SEGMENT_SOUTH = (43.73560, 7.42125)
SAME_SEGMENT_NORTH = (43.73630, 7.42138)
# Fontvieille (west) to Larvotto (east): across the principality.
FONTVIEILLE = (43.7289, 7.4148)
LARVOTTO = (43.7470, 7.4366)
# In the sea, 2 km off the coast.
OFFSHORE = (43.7200, 7.4500)
DEPART = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)  # a Monday


def post_route(client: Client, auth: dict[str, str], origin: tuple[float, float], destination: tuple[float, float],
               depart_at: str | None = None, **headers: Any) -> Any:  # fmt: skip
    body: dict[str, Any] = {
        "origin": {"lat": origin[0], "lng": origin[1]},
        "destination": {"lat": destination[0], "lng": destination[1]},
    }
    if depart_at is not None:
        body["depart_at"] = depart_at
    return client.post("/api/routes", json.dumps(body), "application/json", **{**auth, **headers})


def streets(answer: dict[str, Any]) -> list[str]:
    """The names along the route, each run of one name once."""
    names: list[str] = []
    for feature in answer["route_geojson"]["features"]:
        name = feature["properties"]["name"]
        if name and (not names or names[-1] != name):
            names.append(name)
    return names


def northward(feature: dict[str, Any]) -> bool:
    coordinates = feature["geometry"]["coordinates"]
    return coordinates[-1][1] > coordinates[0][1]


@override_settings(RATE_LIMIT_ROUTES_PER_MIN=0)
def test_it_routes_across_monaco_by_its_streets(monaco, reader, api_client):
    response = post_route(api_client, reader, FONTVIEILLE, LARVOTTO, depart_at=DEPART.isoformat())
    assert response.status_code == 200, response.content
    answer = response.json()
    names = streets(answer)
    assert names[0] == "Avenue de Fontvieille"
    assert names[-1] == "Avenue Princesse Grace"
    assert {"Boulevard Charles III", "Boulevard Albert 1er", "Boulevard Louis II"} <= set(names)
    # Along real streets: longer than the straight line, not absurdly so; the parts add up.
    features = answer["route_geojson"]["features"]
    assert 2600 < answer["distance_m"] < 4500
    assert answer["distance_m"] == pytest.approx(sum(f["properties"]["length_m"] for f in features), abs=1)
    assert answer["eta_sec"] == pytest.approx(sum(f["properties"]["duration_s"] for f in features), abs=1)
    # One continuous line: each segment starts where the previous one ended.
    for before, after in itertools.pairwise(features):
        assert before["geometry"]["coordinates"][-1] == pytest.approx(after["geometry"]["coordinates"][0], abs=1e-6)
    # Nothing observed yet: each segment is costed at its maxspeed or class speed, and says which.
    basis = answer["observed_basis"]
    assert basis["observed"] == 0
    assert basis["maxspeed"] + basis["class_default"] == pytest.approx(1)
    assert {f["properties"]["basis"] for f in features} <= {"maxspeed", "class_default"}


@override_settings(RATE_LIMIT_ROUTES_PER_MIN=0)
def test_it_drives_up_boulevard_albert_1er_but_never_down_it(monaco, reader, api_client):
    up = post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B).json()
    down = post_route(api_client, reader, BOULEVARD_B, BOULEVARD_A).json()
    # A → B: straight up the boulevard, one street, about the straight-line distance.
    assert streets(up) == ["Boulevard Albert 1er"]
    assert 380 < up["distance_m"] < 420
    assert all(northward(f) for f in up["route_geojson"]["features"])
    # B → A: the boulevard is one-way northwards, so round by Sainte-Dévote and Rue Grimaldi.
    assert streets(down)[0] == "Boulevard Albert 1er"
    assert "Rue Grimaldi" in streets(down)
    assert down["distance_m"] > 2 * up["distance_m"]
    boulevard = [f for f in down["route_geojson"]["features"] if f["properties"]["name"] == "Boulevard Albert 1er"]
    assert boulevard
    assert all(northward(f) for f in boulevard)


@pytest.mark.parametrize("algorithm", ["astar", "dijkstra"])
def test_it_routes_between_two_points_of_one_segment_along_the_segment(monaco, algorithm):
    """A route along one street is no detour: the ends split the segment and the route is the part between them."""
    ahead = route_between(SAME_SEGMENT_SOUTH, SAME_SEGMENT_NORTH, depart_at=DEPART, algorithm=algorithm)
    assert len(ahead.features) == 1
    (feature,) = ahead.features
    assert feature["properties"]["name"] == "Boulevard Albert 1er"
    assert 70 < ahead.distance_m < 90  # the two points are ~78 m apart on the segment
    assert feature["geometry"]["coordinates"][0][1] == pytest.approx(SAME_SEGMENT_SOUTH[0], abs=2e-4)
    assert feature["geometry"]["coordinates"][-1][1] == pytest.approx(SAME_SEGMENT_NORTH[0], abs=2e-4)
    # The other way the one-way sends the route round the block.
    back = route_between(SAME_SEGMENT_NORTH, SAME_SEGMENT_SOUTH, depart_at=DEPART, algorithm=algorithm)
    assert back.distance_m > 5 * ahead.distance_m


def test_it_finds_the_same_routes_with_a_star_and_dijkstra(monaco):
    pairs = [(FONTVIEILLE, LARVOTTO), (LARVOTTO, FONTVIEILLE), (BOULEVARD_B, BOULEVARD_A), (BOULEVARD_A, LARVOTTO)]
    for origin, destination in pairs:
        astar = route_between(origin, destination, depart_at=DEPART, algorithm="astar")
        dijkstra = route_between(origin, destination, depart_at=DEPART, algorithm="dijkstra")
        assert astar.eta_sec == pytest.approx(dijkstra.eta_sec, abs=0.2)
        assert astar.distance_m == pytest.approx(dijkstra.distance_m, abs=0.5)


def band_key(depart: datetime) -> tuple[int, int]:
    local = depart.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE))
    return local.isoweekday(), local.hour


@override_settings(RATE_LIMIT_ROUTES_PER_MIN=0)
def test_it_costs_a_segment_at_its_observed_speed_once_the_band_has_enough_samples(monaco, reader, api_client):
    before = post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B, depart_at=DEPART.isoformat()).json()
    ways = [f["properties"]["way_id"] for f in before["route_geojson"]["features"]]
    dow, hour = band_key(DEPART)
    enough = int(threshold("route_speed_min_samples"))
    SegmentSpeedBand.objects.bulk_create(
        SegmentSpeedBand(segment_id=w, dow=dow, hour=hour, speed_sum=12.0 * enough, samples=enough, mean_kmh=12.0)
        for w in ways
    )
    jammed = post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B, depart_at=DEPART.isoformat()).json()
    assert jammed["observed_basis"] == {"observed": 1.0, "maxspeed": 0.0, "class_default": 0.0}
    assert {f["properties"]["basis"] for f in jammed["route_geojson"]["features"]} == {"observed"}
    assert jammed["eta_sec"] == pytest.approx(jammed["distance_m"] * 3.6 / 12.0, rel=0.01)
    # Another hour of the day has no band: back to the tags.
    later = post_route(
        api_client, reader, BOULEVARD_A, BOULEVARD_B, depart_at=(DEPART + timedelta(hours=3)).isoformat()
    )
    assert later.json()["observed_basis"]["observed"] == 0
    # Too few samples: not trusted.
    SegmentSpeedBand.objects.update(samples=enough - 1)
    thin = post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B, depart_at=DEPART.isoformat()).json()
    assert thin["observed_basis"]["observed"] == 0
    assert thin["eta_sec"] == pytest.approx(before["eta_sec"])


@override_settings(RATE_LIMIT_ROUTES_PER_MIN=0)
def test_it_refuses_a_point_off_the_graph_with_a_message(monaco, reader, api_client):
    response = post_route(api_client, reader, OFFSHORE, LARVOTTO)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "origin" in detail
    assert "off the graph" in detail
    assert f"{threshold('route_snap_max_m'):,.0f} m" in detail


@override_settings(RATE_LIMIT_ROUTES_PER_MIN=0)
def test_it_refuses_to_route_when_no_graph_is_loaded(reader, api_client):
    response = post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B)
    assert response.status_code == 422
    assert "no road graph is loaded" in response.json()["detail"]


def test_it_never_starts_a_route_on_a_fragment_of_the_graph(monaco):
    """Larvotto's nearest segment is a service road no other road reaches: the route starts on the nearest
    routable one instead (Avenue Princesse Grace), rather than failing."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT routable FROM geo_ways ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1",
            [LARVOTTO[1], LARVOTTO[0]],
        )
        assert cursor.fetchone() == (False,)
    assert Way.objects.filter(routable=True).count() > 0.9 * Way.objects.count()
    found = route_between(LARVOTTO, BOULEVARD_B, depart_at=DEPART)
    assert found.features[0]["properties"]["name"] == "Avenue Princesse Grace"


@override_settings(RATE_LIMIT_ROUTES_PER_MIN=0)
def test_it_writes_every_call_to_the_route_request_log_the_slo_reads(monaco, reader, api_client):
    assert post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B).status_code == 200
    assert post_route(api_client, reader, OFFSHORE, BOULEVARD_B).status_code == 422
    found, refused = RouteRequest.objects.order_by("id")
    assert found.ok
    assert found.detail["distance_m"] > 0
    assert found.duration_ms > 0
    assert not refused.ok
    assert refused.detail["refused"] == "off_graph"
    measured = route_p95_ms(now=datetime.now(UTC) + timedelta(seconds=1), window=timedelta(minutes=5))
    assert measured.sample_size == 2
    assert measured.value is not None


@override_settings(RATE_LIMIT_ROUTES_PER_MIN=0)
def test_it_refuses_a_departure_outside_any_plausible_year(monaco, reader, api_client):
    response = post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B, depart_at="0001-01-01T00:00:00Z")
    assert response.status_code == 422


def test_it_needs_read_fleet(monaco, api_client):
    assert post_route(api_client, {}, BOULEVARD_A, BOULEVARD_B).status_code == 401
    writer = bearer(access_for(make_api_user("ops-only", "write:ops")))
    assert post_route(api_client, writer, BOULEVARD_A, BOULEVARD_B).status_code == 403
    assert not RouteRequest.objects.exists()


@override_settings(RATE_LIMIT_ROUTES_PER_MIN=3)
def test_it_limits_routes_per_client_ip(monaco, reader, api_client):
    answers = [post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    other = post_route(api_client, reader, BOULEVARD_A, BOULEVARD_B, REMOTE_ADDR="10.1.2.3")
    assert other.status_code == 200
