"""The clerks' admin: the alarms list, tickets, what is due, odometer readings and driver assignments — through
Django's test client, with an Ops clerk (the role group), and the actions that go through the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps as django_apps
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devtools.testing.auth import PASSWORD
from domain.models import Device, DriverAssignment
from domain.tests.factories import make_driver, make_vehicle
from events.models import PushSource, RawEvent, SourceKind
from fleet.groups import DISPATCHER, OPS_CLERK, groups_ensure
from ops import admin as ops_admin
from ops.models import ServiceLog, Ticket, TicketComment
from ops.services import ticket_open, ticket_transition
from ops.tests.pipeline import immediate, push_alarm, run
from state.models import Alarm, OdometerReading
from state.tests.drives import drive, feed

pytestmark = pytest.mark.django_db

ALARMS = reverse("admin:state_alarm_changelist")
TICKETS = reverse("admin:ops_ticket_changelist")
DUE = reverse("admin:ops_servicelog_due")
IMEI, OTHER = "861210600000901", "861210600000902"


def member(group: str, username: str) -> Client:
    groups_ensure(apps=django_apps)
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def clerk(db) -> Client:
    return member(OPS_CLERK, "achieng")


@pytest.fixture
def fleet(account):
    """Two vehicles with a tracker each; SOS and power-cut alarms on the first, a vibration on the second."""
    immediate()
    kda, kdb = make_vehicle("KDA 101A"), make_vehicle("KDB 202B")
    Device.objects.create(imei=IMEI, account=account, vehicle=kda)
    Device.objects.create(imei=OTHER, account=account, vehicle=kdb)
    hub = PushSource.objects.create(name="hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret="hub-secret-3")
    now = timezone.now().replace(microsecond=0)
    push_alarm(hub, imei=IMEI, code="1", at=now - timedelta(minutes=10))  # SOS, critical
    push_alarm(hub, imei=IMEI, code="2", at=now - timedelta(days=2))  # power cut, critical
    push_alarm(hub, imei=OTHER, code="3", at=now - timedelta(days=10))  # vibration, warning
    run()
    return kda, kdb


def listed(response) -> list[str]:
    assert response.status_code == 200
    return [getattr(obj, "normalised_name", None) or str(obj) for obj in response.context["cl"].result_list]


def test_it_lists_alarms_with_their_filters_and_search(clerk, fleet):
    assert listed(clerk.get(ALARMS)) == ["sos_alert", "power_cut_off_alert", "vibration_alert"]
    page = clerk.get(ALARMS).content.decode()
    assert "● open" in page
    assert "KDA101A" in page
    assert listed(clerk.get(ALARMS, {"severity": "warning"})) == ["vibration_alert"]
    assert listed(clerk.get(ALARMS, {"type": "power_cut_off_alert"})) == ["power_cut_off_alert"]
    assert listed(clerk.get(ALARMS, {"vehicle": "KDB202B"})) == ["vibration_alert"]
    assert listed(clerk.get(ALARMS, {"age": "1h"})) == ["sos_alert"]
    assert listed(clerk.get(ALARMS, {"age": "older"})) == ["vibration_alert"]
    assert listed(clerk.get(ALARMS, {"q": "kdb 202b"})) == ["vibration_alert"]
    assert listed(clerk.get(ALARMS, {"q": IMEI})) == ["sos_alert", "power_cut_off_alert"]
    assert listed(clerk.get(ALARMS, {"status": "acknowledged"})) == []


def test_it_acknowledges_from_the_list_by_writing_an_event(clerk, fleet):
    sos = Alarm.objects.get(code="1")
    response = clerk.post(ALARMS, {"action": "acknowledge", ACTION_CHECKBOX_NAME: [sos.parsed_id]}, follow=True)

    assert "1 acknowledgement recorded" in response.content.decode()
    assert Alarm.objects.get(code="1").acknowledged_at is None  # not written by the admin
    assert RawEvent.objects.filter(source_kind="ops", push_kind="alarm_ack").count() == 1
    run()
    assert listed(clerk.get(ALARMS, {"status": "acknowledged"})) == ["sos_alert"]
    assert "✓ acknowledged by achieng" in clerk.get(ALARMS, {"status": "acknowledged"}).content.decode()
    assert listed(clerk.get(ALARMS, {"status": "open"})) == ["power_cut_off_alert", "vibration_alert"]


def test_it_offers_the_alarm_actions_only_with_write_ops(fleet):
    manager = member("Manager", "boss")  # views alarms and holds write:ops, but opens no tickets
    actions = dict(manager.get(ALARMS).context["action_form"].fields["action"].choices)
    assert "acknowledge" in actions
    assert "open_ticket" not in actions
    reader = get_user_model().objects.create_user(username="reader", password=PASSWORD, is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_alarm"))
    client = Client()
    client.force_login(reader)
    assert client.get(ALARMS).context["action_form"] is None  # sees the list, may not act on it
    sos = Alarm.objects.get(code="1")
    client.post(ALARMS, {"action": "acknowledge", ACTION_CHECKBOX_NAME: [sos.parsed_id]})
    assert not RawEvent.objects.filter(source_kind="ops").exists()


def test_it_opens_a_ticket_from_an_alarm_once(clerk, fleet):
    sos = Alarm.objects.get(code="1")
    form = {"action": "open_ticket", ACTION_CHECKBOX_NAME: [sos.parsed_id]}

    clerk.post(ALARMS, form)
    clerk.post(ALARMS, form)

    ticket = Ticket.objects.get()
    assert (ticket.alarm_parsed_id, ticket.alarm_type, ticket.priority, ticket.category) == (
        sos.parsed_id, "sos_alert", "urgent", "alarm",
    )  # fmt: skip
    assert (ticket.vehicle.plate, ticket.device.imei) == ("KDA101A", IMEI)
    assert f"#{ticket.pk}" in clerk.get(ALARMS).content.decode()


def test_it_keeps_tickets_with_search_filters_sla_and_bulk_moves(clerk, fleet):
    kda, kdb = fleet
    first = ticket_open(title="Door sensor", category="other", priority="urgent", vehicle=kda)
    second = ticket_open(title="Replace tracker", category="device_check", vehicle=kdb)
    Ticket.objects.filter(pk=first.pk).update(sla_due_at=timezone.now() - timedelta(hours=1))

    assert listed(clerk.get(TICKETS, {"q": "kdb-202b"})) == [str(second)]
    assert listed(clerk.get(TICKETS, {"sla": "overdue"})) == [str(first)]
    assert listed(clerk.get(TICKETS, {"priority__exact": "urgent"})) == [str(first)]
    page = clerk.get(TICKETS).content.decode()
    assert "⚠ overdue by 1 h" in page
    assert "left" in page

    both = [first.pk, second.pk]
    clerk.post(TICKETS, {"action": "move_in_progress", ACTION_CHECKBOX_NAME: both})
    refused = clerk.post(TICKETS, {"action": "move_closed", ACTION_CHECKBOX_NAME: both}, follow=True)
    assert "Refused: ticket #" in refused.content.decode()
    assert "cannot go from in_progress to closed" in refused.content.decode()
    clerk.post(TICKETS, {"action": "move_resolved", ACTION_CHECKBOX_NAME: both})
    clerk.post(TICKETS, {"action": "move_closed", ACTION_CHECKBOX_NAME: both})
    assert set(Ticket.objects.values_list("status", flat=True)) == {"closed"}


def test_it_assigns_tickets_in_bulk_after_asking_to_whom(clerk, fleet):
    ticket = ticket_open(title="Check", category="other")
    otieno = get_user_model().objects.create_user(username="otieno", password=PASSWORD, is_staff=True)
    form = {"action": "assign", ACTION_CHECKBOX_NAME: [ticket.pk]}

    ask = clerk.post(TICKETS, form)
    assert ask.status_code == 200
    assert "Assign 1 ticket(s)" in ask.content.decode()
    clerk.post(TICKETS, {**form, "confirm": "yes", "assignee": otieno.pk})

    assert Ticket.objects.get().assignee == otieno


def test_it_opens_a_ticket_in_the_admin_with_its_sla_and_comments_inline(clerk, fleet):
    kda, _ = fleet
    inline = {"comments-TOTAL_FORMS": 1, "comments-INITIAL_FORMS": 0, "comments-0-body": "Driver reports a rattle"}
    form = {"title": "Rattle", "category": "maintenance", "priority": "high", "description": "", "vehicle": kda.pk,
            **inline}  # fmt: skip

    response = clerk.post(reverse("admin:ops_ticket_add"), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    ticket = Ticket.objects.get()
    assert ticket.sla_due_at is not None
    assert ticket.sla_due_at - ticket.opened_at == timedelta(hours=8)  # ticket_sla_high_h
    assert ticket.created_by.username == "achieng"
    comment = TicketComment.objects.get()
    assert (comment.body, comment.author.username) == ("Driver reports a rattle", "achieng")
    change = clerk.get(reverse("admin:ops_ticket_change", args=[ticket.pk])).content.decode()
    assert "Driver reports a rattle" in change
    history = clerk.get(reverse("admin:ops_ticket_history", args=[ticket.pk]))
    assert history.status_code == 200
    assert [entry.user for entry in history.context["history_entries"]] == ["achieng"]


def test_it_shows_the_history_of_a_move_with_who_and_why(clerk, fleet):
    ticket = ticket_open(title="Check", category="other")
    ticket_transition(ticket=ticket, to="in_progress", user=get_user_model().objects.get(username="achieng"), note="x")
    entries = clerk.get(reverse("admin:ops_ticket_history", args=[ticket.pk])).context["history_entries"]
    assert (entries[0].user, entries[0].reason) == ("achieng", "status → in_progress: x")
    assert ("status", "open", "in_progress") in [(str(n), o, v) for n, o, v in entries[0].changes]


def test_it_lists_what_is_due_by_km_from_odometer_and_derived_distance_and_by_date(clerk, fleet, account):
    kda, kdb = fleet
    today = timezone.localdate()
    service = {"vehicle": kda.pk, "service_date": today - timedelta(days=90), "odometer_km": 40_000, "work_done": "Oil",
               "currency": "KES", "next_due_km": 40_400}  # fmt: skip
    assert clerk.post(reverse("admin:ops_servicelog_add"), service).status_code == 302
    ServiceLog.objects.create(vehicle=kdb, service_date=today - timedelta(days=170), work_done="Brakes",
                              next_due_date=today + timedelta(days=5))  # fmt: skip
    run()  # the service's odometer, written as an event, is folded into the readings
    assert OdometerReading.objects.get().odometer_km == 40_000
    start = datetime.now(UTC) - timedelta(hours=2)
    feed(drive(Device.objects.get(imei=IMEI).pk, start, seconds=600), account_id=account.id)  # 6 km at 36 km/h

    rows = {row.plate: row for row, _ in clerk.get(DUE).context["rows"]}

    assert set(rows) == {"KDA101A", "KDB202B"}
    assert 5.5 < rows["KDA101A"].driven_since_km < 6.5
    assert 390 < rows["KDA101A"].km_left < 395  # 40,400 - (40,000 + 6): within maintenance_due_soon_km
    assert rows["KDA101A"].status == "due soon"
    assert (rows["KDB202B"].status, rows["KDB202B"].days_left, rows["KDB202B"].km_left) == ("due soon", 5, None)
    page = clerk.get(DUE).content.decode()
    assert "◔ due soon" in page
    assert "open a ticket" in page

    ServiceLog.objects.filter(vehicle=kda).update(next_due_km=40_003)
    overdue = {row.plate: row for row, _ in clerk.get(DUE).context["rows"]}["KDA101A"]
    assert overdue.status == "overdue"
    ServiceLog.objects.filter(vehicle=kda).update(next_due_km=60_000)
    assert [row.plate for row, _ in clerk.get(DUE).context["rows"]] == ["KDB202B"]
    assert [row.plate for row, _ in clerk.get(DUE, {"all": "1"}).context["rows"]] == ["KDB202B", "KDA101A"]


def test_it_records_an_odometer_reading_and_a_driver_assignment_as_events(fleet):
    kda, _ = fleet
    clerk = member(OPS_CLERK, "wanjiru")
    dispatcher = member(DISPATCHER, "dispatch")
    response = clerk.post(reverse("admin:state_odometerreading_add"), {
        "vehicle": kda.pk, "odometer_km": 52_000, "read_at": "2026-03-02 09:00", "source": "correction", "note": "",
    })  # fmt: skip
    assert response.status_code == 302
    driver = make_driver("Baraka")
    response = dispatcher.post(reverse("admin:domain_driverassignment_add"), {
        "vehicle": kda.pk, "driver": driver.pk, "start": "2026-03-02 08:00",
    })  # fmt: skip
    assert response.status_code == 302
    assert not DriverAssignment.objects.exists()
    assert not OdometerReading.objects.exists()
    assert sorted(RawEvent.objects.filter(source_kind="ops").values_list("push_kind", flat=True)) == [
        "driver_assignment", "odometer_reading",
    ]  # fmt: skip
    run()
    reading = OdometerReading.objects.get()
    assert (reading.odometer_km, reading.source, reading.occurred_at) == (
        52_000, "correction", datetime(2026, 3, 2, 6, 0, tzinfo=UTC),  # 09:00 in Nairobi
    )  # fmt: skip
    assert DriverAssignment.objects.get().driver == driver
    assert clerk.post(reverse("admin:domain_driverassignment_add"), {}).status_code == 403  # not a clerk's job


def test_it_counts_a_big_list_from_the_statistics(clerk, fleet, monkeypatch):
    monkeypatch.setattr(ops_admin, "COUNT_CAP", 2)
    response = clerk.get(ALARMS)
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 3
    assert len(response.context["cl"].result_list) == 3
