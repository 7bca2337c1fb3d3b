"""The write:ops API (/api/ops/): acknowledge an alarm, open / update / comment a ticket, record an odometer reading
or a service entry — typed, in the OpenAPI document, each behind write:ops (the auth matrix proves the refusals)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from devtools.testing.auth import PASSWORD, access_for, bearer, make_api_user
from domain.models import Device
from domain.tests.factories import make_vehicle
from events.models import PushSource, RawEvent, SourceKind
from fleet.api import api
from ops.models import ServiceLog, Ticket, TicketComment
from ops.tests.pipeline import immediate, push_alarm, run
from state.models import Alarm, OdometerReading

pytestmark = pytest.mark.django_db

IMEI = "861210600000888"
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def clerk() -> dict[str, str]:
    return bearer(access_for(make_api_user("achieng", "write:ops")))


@pytest.fixture
def vehicle(account):
    vehicle = make_vehicle("KDA 202B")
    Device.objects.create(imei=IMEI, account=account, vehicle=vehicle)
    return vehicle


@pytest.fixture
def alarm(account, vehicle) -> Alarm:
    immediate()
    hub = PushSource.objects.create(name="hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret="hub-secret-2")
    push_alarm(hub, imei=IMEI, code="1", at=T0)
    run()
    return Alarm.objects.get()


def send(method: str, path: str, body: dict, auth: dict[str, str]):
    return getattr(Client(), method)(f"/api/ops{path}", json.dumps(body), "application/json", **auth)


def test_it_acknowledges_an_alarm_through_the_log(clerk, alarm):
    response = send("post", f"/alarms/{alarm.parsed_id}/acknowledge", {"note": "driver safe"}, clerk)

    assert response.status_code == 202, response.content
    assert RawEvent.objects.get(id=response.json()["raw_id"]).push_kind == "alarm_ack"
    run()
    alarm.refresh_from_db()
    assert alarm.acknowledged_by == "achieng"
    again = send("post", f"/alarms/{alarm.parsed_id}/acknowledge", {}, clerk)
    assert (again.status_code, again.json()["code"]) == (409, "already_acknowledged")
    assert send("post", "/alarms/424242/acknowledge", {}, clerk).status_code == 404


def test_it_opens_a_ticket_linked_to_an_alarm_with_its_sla(clerk, alarm):
    make_api_user("otieno")
    body = {"title": "SOS on KDA 202B", "category": "alarm", "priority": "urgent", "plate": "kda-202b",
            "alarm_id": alarm.parsed_id, "assignee": "otieno"}  # fmt: skip
    response = send("post", "/tickets", body, clerk)

    assert response.status_code == 201, response.content
    out = response.json()
    assert (out["plate"], out["alarm_id"], out["alarm_type"], out["assignee"], out["status"]) == (
        "KDA202B", alarm.parsed_id, "sos_alert", "otieno", "open",
    )  # fmt: skip
    opened, sla = datetime.fromisoformat(out["opened_at"]), datetime.fromisoformat(out["sla_due_at"])
    assert sla - opened == timedelta(hours=4)
    assert out["allowed_moves"] == ["in_progress", "resolved"]
    assert send("post", "/tickets", {**body, "plate": "KZZ 999Z"}, clerk).status_code == 404
    assert send("post", "/tickets", {"title": ""}, clerk).status_code == 422


def test_it_updates_a_ticket_and_refuses_a_move_the_database_refuses(clerk, vehicle):
    ticket = send("post", "/tickets", {"title": "Check tracker", "plate": vehicle.plate}, clerk).json()
    path = f"/tickets/{ticket['id']}"

    moved = send("patch", path, {"status": "in_progress", "priority": "high", "note": "on it"}, clerk)
    assert moved.status_code == 200, moved.content
    assert (moved.json()["status"], moved.json()["priority"]) == ("in_progress", "high")
    assert [c["body"] for c in moved.json()["comments"]] == ["on it"]

    refused = send("patch", path, {"status": "closed", "title": "renamed in a refused request"}, clerk)
    assert refused.status_code == 409
    assert refused.json()["code"] == "transition_refused"
    assert "allowed from in_progress: waiting, resolved" in refused.json()["detail"]
    stored = Ticket.objects.get(pk=ticket["id"])
    assert (stored.status, stored.title) == ("in_progress", "Check tracker")  # nothing of the request stayed

    comment = send("post", f"{path}/comments", {"body": "parts ordered"}, clerk)
    assert (comment.status_code, comment.json()["author"]) == (201, "achieng")
    assert TicketComment.objects.filter(ticket_id=ticket["id"]).count() == 2
    assert send("patch", "/tickets/999999", {"status": "resolved"}, clerk).status_code == 404


def test_it_records_an_odometer_reading_through_the_log(clerk, vehicle):
    response = send("post", "/vehicles/kda 202b/odometer", {"odometer_km": 48_210.5, "read_at": T0.isoformat()}, clerk)

    assert response.status_code == 202, response.content
    immediate()
    run()
    reading = OdometerReading.objects.get()
    assert (reading.vehicle_id, reading.odometer_km, reading.recorded_by, reading.occurred_at) == (
        vehicle.pk, 48_210.5, "achieng", T0,
    )  # fmt: skip
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert send("post", "/vehicles/KDA202B/odometer", {"odometer_km": 1, "read_at": future}, clerk).status_code == 422
    assert send("post", "/vehicles/KZZ999Z/odometer", {"odometer_km": 1}, clerk).status_code == 404
    assert send("post", "/vehicles/KDA202B/odometer", {"odometer_km": -1}, clerk).status_code == 422


def test_it_records_a_service_entry_and_its_odometer(clerk, vehicle):
    body = {"service_date": "2026-03-01", "work_done": "Oil and filters", "odometer_km": 40_000, "cost": "12500.00",
            "next_due_km": 45_000, "next_due_date": "2026-09-01"}  # fmt: skip
    response = send("post", "/vehicles/KDA202B/service", body, clerk)

    assert response.status_code == 201, response.content
    assert response.json()["plate"] == "KDA202B"
    assert ServiceLog.objects.get().recorded_by.username == "achieng"
    assert RawEvent.objects.get(push_kind="odometer_reading").source_kind == "ops"
    behind = send("post", "/vehicles/KDA202B/service", {**body, "next_due_km": 39_000}, clerk)
    assert behind.status_code == 422
    assert "must be after this one" in behind.json()["detail"]
    assert send("post", "/vehicles/KDA202B/service", {**body, "cost": "-1"}, clerk).status_code == 422


def test_it_documents_every_ops_operation_typed_and_behind_write_ops():
    schema = api.get_openapi_schema()
    ops = {(path, method): op for path, item in schema["paths"].items() for method, op in item.items()
           if path.startswith("/api/ops/")}  # fmt: skip
    assert set(ops) == {
        ("/api/ops/alarms/{alarm_id}/acknowledge", "post"),
        ("/api/ops/tickets", "post"),
        ("/api/ops/tickets/{ticket_id}", "patch"),
        ("/api/ops/tickets/{ticket_id}/comments", "post"),
        ("/api/ops/vehicles/{plate}/odometer", "post"),
        ("/api/ops/vehicles/{plate}/service", "post"),
    }
    for op in ops.values():
        assert {scope for requirement in op["security"] for scopes in requirement.values() for scope in scopes} == {
            "write:ops"
        }
        assert "requestBody" in op
    assert {"TicketOut", "TicketIn", "TicketUpdateIn", "ServiceIn", "OdometerIn", "ActionOut"} <= set(
        schema["components"]["schemas"]
    )


def test_it_refuses_a_reader_and_lets_a_session_with_the_scope_write(alarm):
    reader = bearer(access_for(make_api_user("reader", "read:fleet")))
    assert send("post", "/tickets", {"title": "x"}, reader).status_code == 403
    make_api_user("dispatcher", "write:ops")
    session = Client()
    session.login(username="dispatcher", password=PASSWORD)
    response = session.post("/api/ops/tickets", json.dumps({"title": "From the pages"}), "application/json")
    assert response.status_code == 201
