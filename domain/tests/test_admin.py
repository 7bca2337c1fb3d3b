"""The admin as an ops clerk uses it, through Django's test client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from domain.models import Account, Device, DriverAssignment, Lifecycle, Vehicle
from domain.services import device_transition
from domain.tests.factories import at, make_account, make_city, make_cost_centre, make_driver, make_user, make_vehicle

DEVICES = reverse("admin:domain_device_changelist")
VEHICLES = reverse("admin:domain_vehicle_changelist")
IMPORT = reverse("admin:domain_device_import_csv")


@pytest.fixture
def clerk(db: Any, client: Client) -> Client:
    client.force_login(make_user("wanjiru", superuser=True))
    return client


def _listed(response) -> list[str]:
    assert response.status_code == 200
    return [str(obj) for obj in response.context["cl"].result_list]


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _in_state(device: Device, lifecycle: str) -> Device:
    path = {"provisioned": [], "active": ["active"], "suspended": ["active", "suspended"]}[lifecycle]
    for to in path:
        device_transition(device=device, to=to, reason="set-up")
    return device


# --- Search and filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["kca 123a", "kca-123a", "KCA123A", "123a"])
def test_it_finds_a_vehicle_by_an_unnormalised_plate(clerk: Client, term: str) -> None:
    make_vehicle("KCA 123A")
    make_vehicle("KDB 456B")

    assert _listed(clerk.get(VEHICLES, {"q": term})) == ["KCA123A"]


def test_it_finds_a_device_by_plate_and_by_imei(clerk: Client, make_device: Callable[..., Device]) -> None:
    make_device(imei="860121060000001", plate="KCA123A")
    make_device(imei="860121060000002", plate="KDB456B")

    assert _listed(clerk.get(DEVICES, {"q": "kca-123a"})) == ["860121060000001"]
    assert _listed(clerk.get(DEVICES, {"q": "860121060000002"})) == ["860121060000002"]


def test_it_finds_a_device_by_name_and_iccid(clerk: Client, make_device: Callable[..., Device]) -> None:
    make_device(imei="860121060000001", name="Van 7", iccid="8925402001")
    make_device(imei="860121060000002", name="Pickup 3", iccid="8925402999")

    assert _listed(clerk.get(DEVICES, {"q": "van 7"})) == ["860121060000001"]
    assert _listed(clerk.get(DEVICES, {"q": "8925402999"})) == ["860121060000002"]


def test_it_finds_drivers_and_assignments(clerk: Client) -> None:
    achieng = make_driver("Achieng Otieno", phone="+254722000111", hr_id="HR-17")
    make_driver("Baraka Mwangi", phone="+254733000222", hr_id="HR-18")
    DriverAssignment.objects.create(driver=achieng, vehicle=make_vehicle("KCA123A"), period=(at(1), None))
    drivers = reverse("admin:domain_driver_changelist")
    assignments = reverse("admin:domain_driverassignment_changelist")

    for term in ("achieng", "722000111", "HR-17"):
        assert _listed(clerk.get(drivers, {"q": term})) == ["Achieng Otieno"]
    assert _listed(clerk.get(assignments, {"q": "kca 123a"})) == ["Achieng Otieno on KCA123A"]
    assert _listed(clerk.get(assignments, {"q": "baraka"})) == []


def test_it_filters_devices(clerk: Client, make_device: Callable[..., Device], account: Account) -> None:
    cc, city = make_cost_centre("Last mile"), make_city("Kisumu")
    on_kisumu = make_device(imei="860121060000001", plate="KCA123A")
    assert on_kisumu.vehicle_id is not None
    Vehicle.objects.filter(pk=on_kisumu.vehicle_id).update(cost_centre=cc, assigned_city=city)
    _in_state(make_device(imei="860121060000002"), "active")
    make_device(imei="860121060000003", account=make_account(name="Kampala"))

    assert _listed(clerk.get(DEVICES, {"lifecycle__exact": "active"})) == ["860121060000002"]
    assert _listed(clerk.get(DEVICES, {"account__id__exact": account.pk})) == ["860121060000001", "860121060000002"]
    assert _listed(clerk.get(DEVICES, {"vehicle__cost_centre__id__exact": cc.pk})) == ["860121060000001"]
    assert _listed(clerk.get(DEVICES, {"vehicle__assigned_city__id__exact": city.pk})) == ["860121060000001"]


def test_it_filters_vehicles(clerk: Client) -> None:
    cc, city = make_cost_centre("Last mile"), make_city("Kampala", "UG")
    make_vehicle("KCA123A", cost_centre=cc, depot="Industrial Area")
    make_vehicle("UAX123B", assigned_city=city, depot="Nakawa")

    assert _listed(clerk.get(VEHICLES, {"cost_centre__id__exact": cc.pk})) == ["KCA123A"]
    assert _listed(clerk.get(VEHICLES, {"assigned_city__id__exact": city.pk})) == ["UAX123B"]
    assert _listed(clerk.get(VEHICLES, {"depot": "Nakawa"})) == ["UAX123B"]


# --- Lifecycle actions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "start", "to"),
    [
        ("activate", "provisioned", "active"),
        ("activate", "suspended", "active"),  # re-activate
        ("suspend", "active", "suspended"),
        ("decommission", "suspended", "decommissioned"),
    ],
)
def test_it_moves_devices_through_an_action_with_a_reason(
    clerk: Client, make_device: Callable[..., Device], action: str, start: str, to: str
) -> None:
    devices = [_in_state(make_device(), start) for _ in range(2)]
    selected = {"action": action, ACTION_CHECKBOX_NAME: [d.pk for d in devices]}

    page = clerk.post(DEVICES, {**selected, "index": 0})
    assert page.status_code == 200
    assert "admin/domain/device/lifecycle_confirm.html" in [t.name for t in page.templates]
    assert all(d.imei in page.content.decode() for d in devices)
    assert Device.objects.filter(lifecycle=start).count() == 2  # nothing moved yet

    done = clerk.post(DEVICES, {**selected, "confirm": "yes", "reason": "ticket OPS-42"}, follow=True)

    assert _messages(done) == [f"2 devices are now {to}."]
    for device in devices:
        device.refresh_from_db()
        assert (device.lifecycle, device.lifecycle_reason) == (to, "ticket OPS-42")


def test_it_refuses_an_invalid_transition_and_names_the_imei(clerk: Client, make_device: Callable[..., Device]) -> None:
    fresh = make_device(imei="860121060000001")
    running = _in_state(make_device(imei="860121060000002"), "active")
    selected = {"action": "suspend", ACTION_CHECKBOX_NAME: [fresh.pk, running.pk]}

    done = clerk.post(DEVICES, {**selected, "confirm": "yes", "reason": "unpaid"}, follow=True)

    assert _messages(done) == [
        "Refused: IMEI 860121060000001: cannot go from provisioned to suspended; allowed from provisioned: active",
        "1 device is now suspended.",
    ]
    fresh.refresh_from_db()
    running.refresh_from_db()
    assert (fresh.lifecycle, running.lifecycle) == (Lifecycle.PROVISIONED, Lifecycle.SUSPENDED)


def test_it_asks_again_when_the_reason_is_missing(clerk: Client, make_device: Callable[..., Device]) -> None:
    device = make_device()

    page = clerk.post(
        DEVICES, {"action": "activate", ACTION_CHECKBOX_NAME: [device.pk], "confirm": "yes", "reason": " "}
    )

    assert page.status_code == 200
    assert page.context["form"].errors == {"reason": ["This field is required."]}
    device.refresh_from_db()
    assert device.lifecycle == Lifecycle.PROVISIONED


def test_it_keeps_the_lifecycle_read_only_on_the_change_form(
    clerk: Client, make_device: Callable[..., Device], account: Account
) -> None:
    device = _in_state(make_device(imei="860121060000001"), "active")
    url = reverse("admin:domain_device_change", args=[device.pk])
    form = {
        "imei": device.imei,
        "account": account.pk,
        "vehicle": "",
        "name": "Van 7",
        "model": "VL802",
        "sim_number": "",
        "iccid": "",
        "lifecycle": "decommissioned",
    }

    response = clerk.post(url, form)

    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.name, device.lifecycle) == ("Van 7", Lifecycle.ACTIVE)


# --- CSV import ------------------------------------------------------------------------------------------

CSV = b"imei,model,account,plate\n860121060000001,VL802,Nairobi,kca 123a\n86012106000000X,VL802,Nairobi,\n"


def test_it_previews_then_commits_a_csv_import(clerk: Client, account: Account) -> None:
    assert IMPORT.encode() in clerk.get(DEVICES).content  # the "Import from CSV" button

    preview = clerk.post(IMPORT, {"csv_file": SimpleUploadedFile("devices.csv", CSV), "dry_run": "on"})

    assert preview.status_code == 200
    report = preview.context["report"]
    assert [(row.line, row.action) for row in report.rows] == [(2, "create"), (3, "error")]
    assert '<tr class="import-error">' in preview.content.decode()
    assert not Device.objects.exists()
    assert not Vehicle.objects.exists()
    commit_text = preview.context["commit_form"]["csv_text"].value()

    done = clerk.post(IMPORT, {"csv_text": commit_text})

    assert done.status_code == 200
    assert not done.context["report"].dry_run
    assert _messages(done) == ["Import done: 1 created, 0 updated, 0 unchanged, 1 skipped (errors)."]
    assert Device.objects.get().vehicle.plate == "KCA123A"


def test_it_asks_for_a_file(clerk: Client) -> None:
    response = clerk.post(IMPORT, {"dry_run": "on"})

    assert response.context["form"].non_field_errors() == ["Choose a CSV file."]


def test_it_shows_a_file_level_problem_as_a_form_error(clerk: Client) -> None:
    response = clerk.post(IMPORT, {"csv_file": SimpleUploadedFile("d.csv", b"imei,plate\n1,2\n"), "dry_run": "on"})

    assert response.context["report"] is None
    assert "missing: model, account" in response.context["form"].non_field_errors()[0]


def test_it_refuses_staff_without_permissions(db: Any, client: Client, account: Account) -> None:
    client.force_login(make_user("intern"))

    assert client.get(DEVICES).status_code == 403
    assert client.get(IMPORT).status_code == 403
    assert client.post(IMPORT, {"csv_file": SimpleUploadedFile("d.csv", CSV)}).status_code == 403
    assert not Device.objects.exists()


def test_it_refuses_the_import_without_the_add_permission(db: Any, client: Client) -> None:
    client.force_login(make_user("viewer", perms=("domain.view_device", "domain.change_device")))

    assert IMPORT.encode() not in client.get(DEVICES).content
    assert client.get(IMPORT).status_code == 403


def test_it_moves_a_lifecycle_in_the_admin_only_with_the_scope_the_api_asks_for(
    db: Any, client: Client, make_device: Callable[..., Device]
) -> None:
    device = make_device()
    changer = make_user("changer", perms=("domain.view_device", "domain.change_device"))
    client.force_login(changer)
    form = {"action": "activate", ACTION_CHECKBOX_NAME: [device.pk], "confirm": "yes", "reason": "OPS-9"}

    client.post(DEVICES, form)
    device.refresh_from_db()
    assert device.lifecycle == Lifecycle.PROVISIONED  # changing devices is not enough: admin:fleet is

    changer.user_permissions.add(Permission.objects.get(codename="scope_admin_fleet"))
    client.post(DEVICES, form)
    device.refresh_from_db()
    assert device.lifecycle == Lifecycle.ACTIVE


# --- History ---------------------------------------------------------------------------------------------


def test_it_shows_who_changed_what_in_the_history(clerk: Client, make_device: Callable[..., Device]) -> None:
    device = make_device(imei="860121060000001", name="Van 7")
    form = {
        "imei": device.imei,
        "account": device.account_id,
        "vehicle": "",
        "name": "Van 8",
        "model": "",
        "sim_number": "",
        "iccid": "",
    }
    assert clerk.post(reverse("admin:domain_device_change", args=[device.pk]), form).status_code == 302
    clerk.post(DEVICES, {"action": "activate", ACTION_CHECKBOX_NAME: [device.pk], "confirm": "yes", "reason": "OPS-7"})

    page = clerk.get(reverse("admin:domain_device_history", args=[device.pk]))

    assert page.status_code == 200
    activated, renamed, created = page.context["history_entries"]
    assert (renamed.user, renamed.url, renamed.changes) == (
        "wanjiru",
        reverse("admin:domain_device_change", args=[device.pk]),
        [("name", "Van 7", "Van 8")],
    )
    assert (activated.user, activated.reason) == ("wanjiru", "OPS-7")
    assert ("lifecycle", "provisioned", "active") in activated.changes
    assert (created.label, created.user) == ("insert", "")  # made by the fixture, outside any request
    html = page.content.decode()
    assert "wanjiru" in html
    assert "Van 7 → Van 8" in html
    assert clerk.get(page.context["events_url"]).status_code == 200  # pghistory's own events admin


def test_it_shows_related_objects_by_name_in_the_history(clerk: Client, make_device: Callable[..., Device]) -> None:
    device = make_device(plate="KCA123A")
    Device.objects.filter(pk=device.pk).update(vehicle=make_vehicle("KDB456B"))

    page = clerk.get(reverse("admin:domain_device_history", args=[device.pk]))

    moved = page.context["history_entries"][0]
    assert ("vehicle", "KCA123A", "KDB456B") in moved.changes


# --- Reference data forms --------------------------------------------------------------------------------


def test_it_normalises_a_plate_typed_in_the_vehicle_form(clerk: Client) -> None:
    add = reverse("admin:domain_vehicle_add")
    inline = {"devices-TOTAL_FORMS": 0, "devices-INITIAL_FORMS": 0}  # the read-only devices inline

    assert clerk.post(add, {"plate": "kca 123a", "model": "", "depot": "", **inline}).status_code == 302
    duplicate = clerk.post(add, {"plate": "KCA-123A", "model": "", "depot": "", **inline})

    assert duplicate.status_code == 200
    assert "already exists" in str(duplicate.context["adminform"].form.errors["plate"])
    assert list(Vehicle.objects.values_list("plate", flat=True)) == ["KCA123A"]


def test_it_refuses_an_overlapping_assignment_as_a_form_error(clerk: Client) -> None:
    vehicle = make_vehicle("KCA123A")
    DriverAssignment.objects.create(driver=make_driver("Achieng"), vehicle=vehicle, period=(at(1), None))
    add = reverse("admin:domain_driverassignment_add")  # ops' form: a new assignment goes through the log

    response = clerk.post(add, {"driver": make_driver().pk, "vehicle": vehicle.pk, "start": "2025-03-05 08:00"})

    assert response.status_code == 200
    assert "Achieng is on KCA123A for an overlapping period" in response.content.decode()
    assert DriverAssignment.objects.count() == 1
    assert DriverAssignment.objects.count() == 1
