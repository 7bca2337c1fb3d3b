"""GET /api/fleet/devices and POST /api/fleet/devices/{imei}/lifecycle, called as a client would."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pghistory.models import Events

from devtools.testing.auth import access_for, bearer, make_api_user
from domain.models import Device, Lifecycle
from domain.tests.factories import make_account, make_city, make_cost_centre, make_device, make_vehicle
from fleet.auth import ADMIN_FLEET, READ_FLEET

pytestmark = pytest.mark.django_db

DEVICES = "/api/fleet/devices"


@pytest.fixture
def reader(client: Client) -> dict[str, str]:
    return bearer(access_for(make_api_user("reader", READ_FLEET)))


@pytest.fixture
def admin(client: Client) -> dict[str, str]:
    return bearer(access_for(make_api_user("fleet-admin", ADMIN_FLEET)))


@pytest.fixture
def fleet(db: Any) -> dict[str, Device]:
    nairobi, kampala = make_account(name="Nairobi"), make_account(name="Kampala")
    haulage = make_cost_centre("Haulage")
    vehicle = make_vehicle("KDA 123Z", cost_centre=haulage, assigned_city=make_city("Nairobi"))
    return {
        "on_truck": make_device(account=nairobi, imei="861000000000001", vehicle=vehicle, model="VL802"),
        "spare": make_device(account=nairobi, imei="861000000000002"),
        "ugandan": make_device(account=kampala, imei="862000000000003", lifecycle=Lifecycle.PROVISIONED),
    }


def imeis(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["imei"] for item in response.json()["items"]]


def test_it_lists_devices_with_account_plate_and_lifecycle(client, reader, fleet):
    response = client.get(DEVICES, **reader)
    body = response.json()
    assert body["count"] == 3
    first = body["items"][0]
    assert first == {
        "imei": "861000000000001",
        "name": "",
        "model": "VL802",
        "account": "Nairobi",
        "plate": "KDA123Z",
        "cost_centre": "Haulage",
        "assigned_city": "Nairobi",
        "lifecycle": "provisioned",
        "lifecycle_changed_at": first["lifecycle_changed_at"],
        "lifecycle_reason": "",
    }
    assert body["items"][1]["plate"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"account": "kampala"}, ["862000000000003"]),
        ({"imei": "8610"}, ["861000000000001", "861000000000002"]),
        ({"plate": "kda 123"}, ["861000000000001"]),
        ({"has_vehicle": "false"}, ["861000000000002", "862000000000003"]),
        ({"cost_centre": "haulage"}, ["861000000000001"]),
        ({"assigned_city": "Nairobi"}, ["861000000000001"]),
        ({"lifecycle": "active"}, []),
        ({"account": "Nairobi", "has_vehicle": "true"}, ["861000000000001"]),
    ],
)
def test_it_filters_devices(client, reader, fleet, query, expected):
    assert imeis(client.get(DEVICES, query, **reader)) == expected


def test_it_paginates_devices(client, reader, fleet):
    page = client.get(DEVICES, {"limit": 2, "offset": 2}, **reader).json()
    assert (page["count"], [d["imei"] for d in page["items"]]) == (3, ["862000000000003"])
    assert client.get(DEVICES, {"limit": 501}, **reader).status_code == 422


def test_it_refuses_a_nul_in_a_filter_instead_of_failing(client, reader, fleet):
    assert client.get(DEVICES, {"account": "a\x00b"}, **reader).status_code == 422


def transition(client: Client, auth: dict[str, Any], imei: str, to: str, reason: str = "installed") -> Any:
    return client.post(f"{DEVICES}/{imei}/lifecycle", {"to": to, "reason": reason}, "application/json", **auth)


def test_it_moves_a_device_along_its_lifecycle_and_records_who(client, admin, fleet):
    response = transition(client, admin, "861000000000002", "active")
    assert response.status_code == 200
    assert response.json()["lifecycle"] == "active"
    assert response.json()["lifecycle_reason"] == "installed"
    event = Events.objects.tracks(fleet["spare"]).filter(pgh_label="update").get()
    assert event.pgh_context["user"] == User.objects.get(username="fleet-admin").pk
    assert event.pgh_context["reason"] == "installed"


def test_it_refuses_a_transition_the_database_forbids_with_409(client, admin, fleet):
    response = transition(client, admin, "861000000000002", "decommissioned")
    assert response.status_code == 409
    assert response.json()["code"] == "lifecycle_refused"
    assert "allowed from provisioned: active" in response.json()["detail"]
    fleet["spare"].refresh_from_db()
    assert fleet["spare"].lifecycle == Lifecycle.PROVISIONED


def test_it_answers_404_for_an_unknown_imei_and_422_for_a_bad_one(client, admin, fleet):
    assert transition(client, admin, "869999999999999", "active").status_code == 404
    assert transition(client, admin, "not-an-imei", "active").status_code == 422
    assert transition(client, admin, "861000000000002", "active", reason="   ").status_code == 422


def test_it_needs_admin_fleet_for_lifecycle_changes(client, reader, fleet):
    response = transition(client, reader, "861000000000002", "active")
    assert response.status_code == 403
    fleet["spare"].refresh_from_db()
    assert fleet["spare"].lifecycle == Lifecycle.PROVISIONED
