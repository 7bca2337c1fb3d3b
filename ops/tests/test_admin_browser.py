"""The clerks' admin in headless Chromium, against a real gateway and worker: the alarms list, a ticket with its
comments, the maintenance-due list. Screenshots go to .var/screenshots/ (ops-alarms.png, ops-ticket.png,
ops-maintenance-due.png).

    TEST_DATABASE_NAME=test_fleet_ops .venv/bin/pytest -n 0 ops/tests/test_admin_browser.py
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from devtools.testing.auth import PASSWORD
from devtools.testing.fixtures import RoleProcess, wait_until
from domain.models import Account, Device, Driver, Vehicle
from events.models import PushSource, SourceKind
from fleet.groups import OPS_CLERK, groups_ensure
from fleet.tests.browser import Browser, assert_test_database, chromium, needs_chromium
from ops.models import ServiceLog, Ticket
from ops.services import alarms_acknowledge, odometer_record, ticket_comment, ticket_open, ticket_transition
from state.models import Alarm, OdometerReading, Trip

pytestmark = [needs_chromium, pytest.mark.xdist_group("ops-admin-browser"), pytest.mark.django_db]

HUB_SECRET = "ops-admin-hub-7c1f"
# plate → IMEI
FLEET = {"KDA101A": "861880000000001", "KDB202B": "861880000000002", "UBA512C": "861880000000003"}
# (plate, alarm code, minutes ago): SOS, power cut, disassembly (tamper), collision, vibration
ALARMS = [("KDA101A", "1", 12), ("KDB202B", "2", 95), ("UBA512C", "19", 26 * 60), ("KDA101A", "44", 3 * 24 * 60),
          ("UBA512C", "3", 9 * 24 * 60)]  # fmt: skip


def jimi_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def push(base_url: str, path: str, items: list[dict[str, Any]]) -> None:
    body = urlencode({"token": HUB_SECRET, "data_list": json.dumps(items)})
    response = requests.post(f"{base_url}/push/iothub/ops-hub/{path}", data=body, timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert response.status_code == 200, response.text


def drive(imei: str, start: datetime, minutes: int) -> list[dict[str, Any]]:
    """Fixes every 10 s driving north at 36 km/h (6 km per 10 minutes)."""
    lat, lng = -1.2921, 36.8219
    return [
        {"deviceImei": imei, "gpsTime": jimi_time(start + timedelta(seconds=10 * k)),
         "lat": round(lat + k * 100 / 111_195, 6), "lng": lng, "gpsSpeed": 36, "acc": 1}
        for k in range(minutes * 6 + 1)
    ]  # fmt: skip


def build(base_url: str, now: datetime) -> SimpleNamespace:
    account = Account.objects.create(name="Demo fleet")
    PushSource.objects.create(name="ops-hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret=HUB_SECRET)
    vehicles = {plate: Vehicle.objects.create(plate=plate) for plate in FLEET}
    for plate, imei in FLEET.items():
        Device.objects.create(imei=imei, account=account, vehicle=vehicles[plate], lifecycle="provisioned")
    groups_ensure(apps=django_apps)
    clerk = get_user_model().objects.create_user(username="achieng", password=PASSWORD, is_staff=True,
                                                 first_name="Achieng", last_name="Otieno")  # fmt: skip
    clerk.groups.add(Group.objects.get(name=OPS_CLERK))
    mechanic = get_user_model().objects.create_user(username="otieno", password=PASSWORD, is_staff=True)
    mechanic.groups.add(Group.objects.get(name=OPS_CLERK))

    alarms = [
        {"type": "DEVICE", "msgClass": 0, "imei": FLEET[plate],
         "msg": {"alertType": code, "alarmTime": jimi_time(now - timedelta(minutes=ago)), "lat": -1.29, "lng": 36.82},
         "gateTime": jimi_time(now - timedelta(minutes=ago))}
        for plate, code, ago in ALARMS
    ]  # fmt: skip
    push(base_url, "pushalarm", alarms)
    push(base_url, "pushgps", drive(FLEET["KDA101A"], now - timedelta(hours=3), minutes=20))
    wait_until(lambda: Alarm.objects.count() == len(ALARMS) and Trip.objects.exists(), timeout=60, every=0.25)

    power_cut = Alarm.objects.get(code="2")
    alarms_acknowledge(parsed_ids=[power_cut.parsed_id], user=clerk, note="Driver confirmed a battery swap")

    sos = Alarm.objects.get(code="1")
    ticket = ticket_open(
        title="SOS on KDA101A", category="alarm", priority="urgent", vehicle=vehicles["KDA101A"],
        device=Device.objects.get(imei=FLEET["KDA101A"]), alarm_parsed_id=sos.parsed_id, alarm_type="sos_alert",
        description="SOS button pressed on the Thika road run.", assignee=mechanic, user=clerk,
        driver=Driver.objects.create(name="Baraka Mwangi", phone="+254722000111", hr_id="E1001"),
    )  # fmt: skip
    ticket_comment(ticket=ticket, body="Called the driver: he pressed it by mistake while parking.", user=clerk)
    ticket_transition(ticket=ticket, to="in_progress", user=mechanic, note="Checking the SOS button wiring on site.")
    ticket_comment(ticket=ticket, body="Button cover is cracked; ordered a new one.", user=mechanic)
    ticket_open(title="Tracker silent on UBA512C", category="device_check", priority="high",
                vehicle=vehicles["UBA512C"], user=clerk)  # fmt: skip

    today = timezone.localdate()
    # KDA101A: serviced at 40,000 km, next at 40,300; read 40,000 at the service, then 12 km driven: due soon.
    ServiceLog.objects.create(vehicle=vehicles["KDA101A"], service_date=today - timedelta(days=60), odometer_km=40_000,
                              work_done="Oil and filters", next_due_km=40_300)  # fmt: skip
    odometer_record(vehicle=vehicles["KDA101A"], odometer_km=40_000, read_at=now - timedelta(days=1), user=clerk)
    # KDB202B: next service by km already passed.
    ServiceLog.objects.create(vehicle=vehicles["KDB202B"], service_date=today - timedelta(days=200),
                              odometer_km=61_200, work_done="Brake pads", next_due_km=66_000)  # fmt: skip
    odometer_record(vehicle=vehicles["KDB202B"], odometer_km=66_480, read_at=now - timedelta(days=2), user=clerk,
                    source="correction", note="The 6,648 typed last week")  # fmt: skip
    # UBA512C: due by date in 9 days.
    ServiceLog.objects.create(vehicle=vehicles["UBA512C"], service_date=today - timedelta(days=170),
                              work_done="Annual inspection", next_due_date=today + timedelta(days=9))  # fmt: skip
    wait_until(
        lambda: OdometerReading.objects.count() == 2 and Alarm.objects.filter(acknowledged_at__isnull=False).exists(),
        timeout=60, every=0.25,
    )  # fmt: skip
    return SimpleNamespace(base_url=base_url, ticket=ticket)


@pytest.fixture(scope="module")
def site(django_db_setup: Any, django_db_blocker: Any) -> Iterator[SimpleNamespace]:
    with django_db_blocker.unblock():
        assert_test_database()
        gateway, worker = RoleProcess("gateway", env={"GATEWAY_WORKERS": "2"}), RoleProcess("worker")
        try:
            gateway.start()
            worker.start()
            gateway.wait_http("/health/gateway")
            yield build(gateway.base_url, timezone.now().replace(microsecond=0))
        finally:
            gateway.stop()
            worker.stop()
            call_command("flush", interactive=False, verbosity=0)


def errors(browser: Browser) -> list[dict[str, Any]]:
    """The browser's errors, but for the admin's missing favicon (it has none)."""
    return [e for e in browser.console_errors() if "favicon.ico" not in e["message"]]


@pytest.fixture(scope="module")
def clerk(site: SimpleNamespace) -> Iterator[Browser]:
    for browser in chromium(width=1400, height=1000):
        browser.base_url = site.base_url
        browser.get("/admin/login/")
        browser.find("#id_username").send_keys("achieng")
        browser.find("#id_password").send_keys(PASSWORD)
        browser.find("input[type=submit]").click()
        browser.wait(lambda d: "/admin/login/" not in d.current_url, message="the admin login did not go through")
        yield browser


def test_the_alarms_list_shows_open_and_acknowledged_alarms(clerk: Browser) -> None:
    clerk.get("/admin/state/alarm/")
    rows = clerk.find_all("#result_list tbody tr")
    assert len(rows) == len(ALARMS)
    text = clerk.find("#result_list").text
    assert "✓ acknowledged by achieng" in text
    assert text.count("● open") == len(ALARMS) - 1
    assert "SOS alert" in text
    assert "KDA101A" in text
    assert clerk.find("#changelist-filter").text.count("vehicle") >= 1
    clerk.screenshot("ops-alarms")
    assert errors(clerk) == []


def test_a_ticket_shows_its_comment_thread_and_sla(clerk: Browser, site: SimpleNamespace) -> None:
    clerk.driver.set_window_size(1400, 2000)
    clerk.get(f"/admin/ops/ticket/{site.ticket.pk}/change/")
    page = clerk.find("#content").text
    assert "Called the driver" in page
    assert "Checking the SOS button wiring on site." in page
    assert "left" in page  # the SLA timer
    clerk.screenshot("ops-ticket")
    clerk.driver.set_window_size(1400, 1000)
    clerk.get("/admin/ops/ticket/")
    assert len(clerk.find_all("#result_list tbody tr")) == Ticket.objects.count()
    assert errors(clerk) == []


def test_the_maintenance_due_list_shows_what_is_due_by_km_and_by_date(clerk: Browser) -> None:
    clerk.get("/admin/ops/servicelog/due/")
    text = clerk.find("#result_list").text
    assert "KDB202B" in text
    assert "⚠ overdue" in text
    assert "◔ due soon" in text
    assert "UBA512C" in text
    clerk.screenshot("ops-maintenance-due")
    assert errors(clerk) == []
