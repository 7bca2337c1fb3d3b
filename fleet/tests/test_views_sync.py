"""The live view on the wire, over HTTP (the project's API through Django's test client, on real PostGIS): gzip by
Accept-Encoding, 304 while nothing the view shows changed, `since=` deltas (docs/architecture.md, "The live view on
the wire").

The rows are committed (a transactional database): what a cursor may miss is a matter of which transactions had
committed when it was taken. Fixes are written as the parser writes them and folded by the real projectors, which
write in savepoints — subtransactions, whose ids a cursor must not mistake for older ones.
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from devtools.testing.auth import access_for, bearer, make_api_user
from devtools.testing.fixtures import test_database_url
from domain.models import Account, CostCentre, Device, Lifecycle, Vehicle
from fleet.compression import accepts_gzip
from geo.geocoding import Key, address_store
from slo.thresholds import threshold, thresholds_forget
from state.dashboards.schemas import LiveDeltaOut, LiveViewOut, OverviewDeltaOut
from state.models import LivePosition
from state.tests.drives import M_PER_DEG, NAIROBI, feed, fix

committed = pytest.mark.django_db(transaction=True)

LIVE = "/api/views/live"


@pytest.fixture
def fleet():
    """Three vehicles moving in Nairobi, fixes 30 s old (fresh for half a minute more), folded by the projectors; a
    dispatcher's token."""
    thresholds_forget()
    account = Account.objects.create(name="Sync", jimi_account="sync")
    north = CostCentre.objects.create(name="North")
    now = timezone.now()
    vehicles, events = {}, []
    for i, plate in enumerate(("KSY100A", "KSY101B", "KSY102C")):
        vehicle = Vehicle.objects.create(plate=plate, cost_centre=north)
        device = Device.objects.create(
            imei=f"86880000001{i:04d}", account=account, vehicle=vehicle, lifecycle=Lifecycle.PROVISIONED
        )
        Device.objects.filter(id=device.id).update(lifecycle=Lifecycle.ACTIVE)
        lat = NAIROBI[0] + 0.01 * i
        at = now - timedelta(seconds=30)
        vehicles[plate] = SimpleNamespace(vehicle=vehicle, device=device, id=vehicle.id, lat=lat, at=at)
        events.append(fix(device.id, at, lat, NAIROBI[1], 40.0))
    feed(events, account_id=account.id)
    auth = bearer(access_for(make_api_user("dispatcher", "read:fleet")))
    yield SimpleNamespace(account=account, vehicles=vehicles, auth=auth, north=north)
    thresholds_forget()


def move(fleet, plate: str, *, north_m: float = 100.0, speed: float = 40.0, ignition: bool = True) -> float:
    """A new fix of a vehicle `north_m` metres north of its last one (a plausible move: no jump verdict), through
    the parsed events and the real projectors; returns its latitude."""
    vehicle = fleet.vehicles[plate]
    vehicle.lat += north_m / M_PER_DEG
    vehicle.at += timedelta(seconds=2)  # 100 m in 2 s: 180 km/h, below fix_max_speed_kmh
    feed(
        [fix(vehicle.device.id, vehicle.at, vehicle.lat, NAIROBI[1], speed, ignition=ignition)],
        account_id=fleet.account.id,
    )
    return vehicle.lat


def features(body):
    return {f["id"]: f for f in body["geojson"]["features"]}


@committed
def test_it_gzips_api_json_when_the_client_accepts_it_and_nothing_else(client, fleet, settings):
    plain = client.get(LIVE, **fleet.auth)
    assert "Content-Encoding" not in plain  # the test client sends no Accept-Encoding
    assert "Accept-Encoding" in plain["Vary"]
    zipped = client.get(LIVE, HTTP_ACCEPT_ENCODING="gzip, deflate, br", **fleet.auth)
    assert zipped["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped["Vary"]
    assert int(zipped["Content-Length"]) == len(zipped.content) < len(plain.content)
    body = json.loads(gzip.decompress(zipped.content))
    assert features(body).keys() == features(plain.json()).keys()
    assert body["summary"]["vehicles"] == 3
    assert zipped["ETag"].startswith('W/"')
    refused = client.get(LIVE, HTTP_ACCEPT_ENCODING="gzip;q=0, identity", **fleet.auth)
    assert "Content-Encoding" not in refused
    # Out of scope however small the threshold: the token endpoint (fresh tokens in the body) and the pages (the
    # CSRF token beside what a request reflects), the BREACH candidates.
    settings.API_GZIP_MIN_BYTES = 1
    token = client.post(
        "/api/auth/token",
        {"username": "dispatcher", "password": "correct horse battery staple 7"},
        "application/json",
        HTTP_ACCEPT_ENCODING="gzip",
    )
    assert token.status_code == 200
    assert "Content-Encoding" not in token
    client.force_login(get_user_model().objects.get(username="dispatcher"))
    page = client.get("/live/", HTTP_ACCEPT_ENCODING="gzip")
    assert page.status_code == 200
    assert "Content-Encoding" not in page
    assert b"<html" in page.content


def test_it_reads_accept_encoding_as_the_rfc_says():
    assert accepts_gzip("gzip")
    assert accepts_gzip("deflate, gzip;q=0.5")
    assert accepts_gzip("*")
    assert not accepts_gzip("")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("*, gzip;q=0")
    assert not accepts_gzip("br")


@committed
def test_it_answers_304_until_something_the_view_shows_changes(client, fleet):
    first = client.get(LIVE, **fleet.auth)
    assert first.status_code == 200
    assert first["Cache-Control"] == "private, no-cache"
    etag = first["ETag"]
    assert first["X-Fleet-Cursor"] in etag
    assert set(first.json()) == {"summary", "geojson", "slo_status"}  # the whole view's payload is as it was

    again = client.get(LIVE, HTTP_IF_NONE_MATCH=etag, **fleet.auth)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag

    # A fix arrives: the old tag no longer matches, the answer shows the move under a new tag.
    lat = move(fleet, "KSY100A")
    moved = client.get(LIVE, HTTP_IF_NONE_MATCH=etag, **fleet.auth)
    assert moved.status_code == 200
    assert moved["ETag"] != etag
    assert features(moved.json())[fleet.vehicles["KSY100A"].id]["geometry"]["coordinates"][1] == pytest.approx(lat)
    assert client.get(LIVE, HTTP_IF_NONE_MATCH=moved["ETag"], **fleet.auth).status_code == 304

    # A vehicle changes in the domain (a clerk moves it to another cost centre): 200 again.
    south = CostCentre.objects.create(name="South")
    Vehicle.objects.filter(id=fleet.vehicles["KSY101B"].id).update(cost_centre=south)
    recosted = client.get(LIVE, HTTP_IF_NONE_MATCH=moved["ETag"], **fleet.auth)
    assert recosted.status_code == 200
    assert features(recosted.json())[fleet.vehicles["KSY101B"].id]["properties"]["cost_centre"] == "South"

    # Another filter or another user: the tag is not theirs.
    filtered = {"filters": json.dumps({"cost_centre": ["North"]})}
    assert client.get(LIVE, filtered, HTTP_IF_NONE_MATCH=recosted["ETag"], **fleet.auth).status_code == 200
    other = bearer(access_for(make_api_user("other", "read:fleet")))
    assert client.get(LIVE, HTTP_IF_NONE_MATCH=recosted["ETag"], **other).status_code == 200


@committed
def test_since_sends_only_the_changed_vehicle_then_what_stops_matching(client, fleet):
    first = client.get(LIVE, **fleet.auth)
    cursor = first["X-Fleet-Cursor"]
    quiet = client.get(LIVE, {"since": cursor}, **fleet.auth).json()
    LiveDeltaOut.model_validate(quiet)
    assert (quiet["delta"], quiet["geojson"]["features"], quiet["removed"]) == (True, [], [])

    lat = move(fleet, "KSY102C", speed=55.0)
    answer = client.get(LIVE, {"since": cursor}, **fleet.auth)
    body = answer.json()
    LiveDeltaOut.model_validate(body)
    assert body["delta"] is True
    assert body["cursor"] == answer["X-Fleet-Cursor"] != cursor
    (changed,) = body["geojson"]["features"]
    assert changed["id"] == fleet.vehicles["KSY102C"].id
    assert changed["geometry"]["coordinates"][1] == pytest.approx(lat)
    assert changed["properties"]["speed_kmh"] == 55.0
    assert body["removed"] == []
    assert set(body["summary"]) == {"generated_at", "time_zone"}

    # With a state filter: a vehicle that parks leaves the view (its id is in `removed`), one still moving stays.
    moving = {"filters": json.dumps({"operational_state": ["moving"]})}
    start = client.get(LIVE, moving, **fleet.auth)
    assert len(start.json()["geojson"]["features"]) == 3
    move(fleet, "KSY100A", north_m=5.0, speed=0.0, ignition=False)
    move(fleet, "KSY101B", speed=30.0)
    parked = client.get(LIVE, {**moving, "since": start["X-Fleet-Cursor"]}, **fleet.auth).json()
    assert parked["removed"] == [fleet.vehicles["KSY100A"].id]
    assert [f["id"] for f in parked["geojson"]["features"]] == [fleet.vehicles["KSY101B"].id]

    # The overview speaks the same cursor: its whole summary, the vehicles as a delta.
    before = client.get(LIVE, **fleet.auth)["X-Fleet-Cursor"]
    move(fleet, "KSY101B", speed=30.0)
    overview = client.get("/api/views/overview", {"since": before}, **fleet.auth).json()
    OverviewDeltaOut.model_validate(overview)
    assert [f["id"] for f in overview["geojson"]["features"]] == [fleet.vehicles["KSY101B"].id]
    assert overview["summary"]["vehicles"] == 3

    # A cursor of other filters, of another user, not ours at all, or too old: the whole view, never an error.
    other = bearer(access_for(make_api_user("other", "read:fleet")))
    for params, auth in (
        ({**moving, "since": cursor}, fleet.auth),
        ({"since": cursor}, other),
        ({"since": "not-a-cursor"}, fleet.auth),
        ({"since": cursor[:-4] + "AAAA"}, fleet.auth),
    ):
        whole = client.get(LIVE, params, **auth)
        assert whole.status_code == 200
        assert set(whole.json()) == {"summary", "geojson", "slo_status"}
        LiveViewOut.model_validate(whole.json())


@committed
def test_since_starts_over_when_the_domain_changes_or_a_row_goes(client, fleet, settings):
    cursor = client.get(LIVE, **fleet.auth)["X-Fleet-Cursor"]
    # Decommissioned: out of the operational views. A domain change answers the whole view again.
    Device.objects.filter(id=fleet.vehicles["KSY101B"].device.id).update(lifecycle=Lifecycle.SUSPENDED)
    Device.objects.filter(id=fleet.vehicles["KSY101B"].device.id).update(lifecycle=Lifecycle.DECOMMISSIONED)
    whole = client.get(LIVE, {"since": cursor}, **fleet.auth)
    assert "delta" not in whole.json()
    assert fleet.vehicles["KSY101B"].id not in features(whole.json())

    # A live position deleted (every fix of the device stopped being ok): no xmin to see; the counts see it.
    cursor = whole["X-Fleet-Cursor"]
    LivePosition.objects.filter(device_id=fleet.vehicles["KSY100A"].device.id).delete()
    gone = client.get(LIVE, {"since": cursor}, **fleet.auth).json()
    assert "delta" not in gone
    assert features(gone)[fleet.vehicles["KSY100A"].id]["geometry"] is None

    # Too old a cursor.
    cursor = client.get(LIVE, **fleet.auth)["X-Fleet-Cursor"]
    settings.LIVE_CURSOR_MAX_AGE_S = 0
    time.sleep(0.01)
    assert "delta" not in client.get(LIVE, {"since": cursor}, **fleet.auth).json()


@committed
def test_a_write_that_commits_after_the_cursor_is_not_missed(client, fleet):
    """A projector's transaction that took its id before the answer, wrote in a savepoint (a subtransaction, whose id
    is newer than the answer's oldest running one but not in its list of running transactions) and committed after
    it: the answer cannot show the row, the next delta must, and the answer's tag must not match any more."""
    device = fleet.vehicles["KSY101B"].device
    with psycopg.connect(test_database_url().replace("postgis://", "postgresql://"), autocommit=False) as writer:
        writer.execute("SELECT pg_current_xact_id()")
        writer.execute("SAVEPOINT fold")
        writer.execute(
            "UPDATE state_live_positions SET point = ST_SetSRID(ST_MakePoint(36.9, -1.2), 4326)::geography,"
            " occurred_at = now() WHERE device_id = %s",
            [device.id],
        )
        writer.execute("RELEASE SAVEPOINT fold")
        before = client.get(LIVE, **fleet.auth)
        assert features(before.json())[device.vehicle_id]["geometry"]["coordinates"] != [36.9, -1.2]
        writer.commit()
    assert client.get(LIVE, HTTP_IF_NONE_MATCH=before["ETag"], **fleet.auth).status_code == 200
    body = client.get(LIVE, {"since": before["X-Fleet-Cursor"]}, **fleet.auth).json()
    assert [(f["id"], f["geometry"]["coordinates"]) for f in body["geojson"]["features"]] == [
        (device.vehicle_id, [36.9, -1.2])
    ]


@committed
def test_a_state_that_turns_with_time_alone_ends_the_304s_and_comes_in_the_delta(client, fleet):
    """No row changes: a fix just ageing past fresh_fix_max_age_s makes the vehicle stale."""
    fresh_s = threshold("fresh_fix_max_age_s")
    vehicle = Vehicle.objects.create(plate="KSY103D", cost_centre=fleet.north)
    device = Device.objects.create(imei="868800000019999", account=fleet.account, vehicle=vehicle)
    at = timezone.now() - timedelta(seconds=fresh_s - 3.0)
    feed([fix(device.id, at, NAIROBI[0] + 0.04, NAIROBI[1], 40.0)], account_id=fleet.account.id)
    first = client.get(LIVE, **fleet.auth)
    assert features(first.json())[vehicle.id]["properties"]["freshness"] == "fresh"
    assert client.get(LIVE, HTTP_IF_NONE_MATCH=first["ETag"], **fleet.auth).status_code == 304
    time.sleep(max(0.0, (at + timedelta(seconds=fresh_s + 0.5) - timezone.now()).total_seconds()))
    assert client.get(LIVE, HTTP_IF_NONE_MATCH=first["ETag"], **fleet.auth).status_code == 200
    body = client.get(LIVE, {"since": first["X-Fleet-Cursor"]}, **fleet.auth).json()
    (turned,) = body["geojson"]["features"]
    assert turned["id"] == vehicle.id
    assert turned["properties"]["freshness"] == "stale"


@committed
def test_an_address_geocoded_later_comes_in_the_delta(client, fleet, settings):
    target = fleet.vehicles["KSY100A"]
    first = client.get(LIVE, **fleet.auth)
    assert features(first.json())[target.id]["properties"]["address"] is None
    lng, lat = features(first.json())[target.id]["geometry"]["coordinates"]
    scale = 10**settings.GEOCODE_ROUND_DECIMALS
    address_store(Key(settings.GEOCODE_ROUND_DECIMALS, round(lat * scale), round(lng * scale)), "Moi Avenue", "roads")
    assert client.get(LIVE, HTTP_IF_NONE_MATCH=first["ETag"], **fleet.auth).status_code == 200
    body = client.get(LIVE, {"since": first["X-Fleet-Cursor"]}, **fleet.auth).json()
    assert [(f["id"], f["properties"]["address"]) for f in body["geojson"]["features"]] == [(target.id, "Moi Avenue")]
    assert connection.in_atomic_block is False
