from __future__ import annotations

import pytest
from pghistory.models import Events

from domain.models import Account, Device, DriverAssignment, Lifecycle, Vehicle
from domain.services import (
    AssignmentOverlapError,
    DeviceImportError,
    LifecycleTransitionError,
    device_transition,
    devices_import_csv,
    vehicle_assign_driver,
)
from domain.tests.factories import at, make_account, make_driver, make_user, make_vehicle

# --- device_transition -----------------------------------------------------------------------------------


def test_it_moves_a_device_along_its_lifecycle(make_device) -> None:
    device = make_device()

    device_transition(device=device, to=Lifecycle.ACTIVE, reason="installed in KCA 123A")
    device_transition(device=device, to=Lifecycle.SUSPENDED, reason="vehicle in the garage")
    device_transition(device=device, to=Lifecycle.DECOMMISSIONED, reason="tracker broken")

    device.refresh_from_db()
    assert device.lifecycle == Lifecycle.DECOMMISSIONED
    assert device.lifecycle_reason == "tracker broken"


def test_it_refuses_a_transition_the_database_refuses_and_names_what_is_allowed(make_device) -> None:
    device = make_device(imei="860121060000999")

    with pytest.raises(LifecycleTransitionError) as excinfo:
        device_transition(device=device, to=Lifecycle.SUSPENDED, reason="oops")

    assert str(excinfo.value) == (
        "IMEI 860121060000999: cannot go from provisioned to suspended; allowed from provisioned: active"
    )
    device.refresh_from_db()
    assert device.lifecycle == Lifecycle.PROVISIONED
    assert device.lifecycle_reason == ""


def test_it_judges_the_row_in_the_database_not_a_stale_object(make_device) -> None:
    device = make_device()
    stale = Device.objects.get(pk=device.pk)
    device_transition(device=device, to=Lifecycle.ACTIVE, reason="installed")
    device_transition(device=device, to=Lifecycle.SUSPENDED, reason="unpaid")

    # `stale` still says provisioned; the database knows it is suspended, from where active is allowed.
    device_transition(device=stale, to=Lifecycle.ACTIVE, reason="paid")
    assert stale.lifecycle == Lifecycle.ACTIVE


def test_it_refuses_a_transition_from_the_final_state(make_device) -> None:
    device = make_device(imei="860121060000998")
    for to in (Lifecycle.ACTIVE, Lifecycle.SUSPENDED, Lifecycle.DECOMMISSIONED):
        device_transition(device=device, to=to, reason="r")

    with pytest.raises(LifecycleTransitionError, match="allowed from decommissioned: nothing"):
        device_transition(device=device, to=Lifecycle.ACTIVE, reason="revive")


def test_it_refuses_a_transition_to_the_current_state(make_device) -> None:
    device = make_device()
    device_transition(device=device, to=Lifecycle.ACTIVE, reason="installed")

    with pytest.raises(LifecycleTransitionError, match="already active"):
        device_transition(device=device, to=Lifecycle.ACTIVE, reason="again")
    device.refresh_from_db()
    assert device.lifecycle_reason == "installed"


@pytest.mark.parametrize("reason", ["", "   "])
def test_it_requires_a_reason(make_device, reason: str) -> None:
    device = make_device()

    with pytest.raises(LifecycleTransitionError, match="reason is required"):
        device_transition(device=device, to=Lifecycle.ACTIVE, reason=reason)
    device.refresh_from_db()
    assert device.lifecycle == Lifecycle.PROVISIONED


def test_it_records_the_user_and_reason_in_the_history(make_device) -> None:
    device = make_device()
    user = make_user("wanjiru")

    device_transition(device=device, to=Lifecycle.ACTIVE, reason="installed by Otieno", user=user)

    event = Events.objects.tracks(device).filter(pgh_label="update").get()
    assert event.pgh_diff["lifecycle"] == ["provisioned", "active"]
    assert event.pgh_context["user"] == user.pk
    assert event.pgh_context["reason"] == "installed by Otieno"


# --- vehicle_assign_driver -------------------------------------------------------------------------------


def test_it_assigns_a_driver(db) -> None:
    vehicle, driver = make_vehicle("KCA 123A"), make_driver("Achieng")

    assignment = vehicle_assign_driver(vehicle=vehicle, driver=driver, start=at(1), end=at(8))

    assert assignment.period.lower == at(1)
    assert assignment.period.upper == at(8)


def test_it_names_the_clash_when_a_vehicle_is_already_driven(db) -> None:
    vehicle = make_vehicle("KCA 123A")
    vehicle_assign_driver(vehicle=vehicle, driver=make_driver("Achieng"), start=at(1))

    with pytest.raises(AssignmentOverlapError, match="KCA123A already has Achieng from 2025-03-01 00:00 until further"):
        vehicle_assign_driver(vehicle=vehicle, driver=make_driver("Baraka"), start=at(3), end=at(4))
    assert DriverAssignment.objects.count() == 1


def test_it_names_the_clash_when_a_driver_is_already_driving(db) -> None:
    driver = make_driver("Achieng")
    vehicle_assign_driver(vehicle=make_vehicle("KCA 123A"), driver=driver, start=at(1), end=at(5))

    with pytest.raises(AssignmentOverlapError, match="Achieng is already assigned on KCA123A from 2025-03-01"):
        vehicle_assign_driver(vehicle=make_vehicle("KDB 456B"), driver=driver, start=at(4), end=at(6))


def test_it_allows_the_next_assignment_to_start_when_the_last_ends(db) -> None:
    vehicle = make_vehicle()
    vehicle_assign_driver(vehicle=vehicle, driver=make_driver(), start=at(1), end=at(5))

    vehicle_assign_driver(vehicle=vehicle, driver=make_driver(), start=at(5))

    assert DriverAssignment.objects.filter(vehicle=vehicle).count() == 2


def test_it_refuses_an_assignment_that_ends_before_it_starts(db) -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        vehicle_assign_driver(vehicle=make_vehicle(), driver=make_driver(), start=at(5), end=at(5))


# --- devices_import_csv ----------------------------------------------------------------------------------

GOOD_CSV = """imei,model,account,plate,sim_number
860121060000001,VL802,Nairobi,kca 123a,0722000001
860121060000002,JC450Pro,nairobi,KCA-123A,
860121060000003,VL802,Nairobi,,
"""


def _summary(report) -> list[tuple[int, str, str]]:
    return [(row.line, row.imei, row.action) for row in report.rows]


def test_it_previews_an_import_without_writing(account: Account) -> None:
    report = devices_import_csv(file_text=GOOD_CSV, dry_run=True)

    assert _summary(report) == [
        (2, "860121060000001", "create"),
        (3, "860121060000002", "create"),
        (4, "860121060000003", "create"),
    ]
    assert report.rows[0].messages == ["new vehicle KCA123A"]
    assert report.rows[1].messages == []  # the preview sees the vehicle its line 2 would create
    assert not Device.objects.exists()
    assert not Vehicle.objects.exists()


def test_it_commits_an_import(account: Account) -> None:
    report = devices_import_csv(file_text=GOOD_CSV, dry_run=False)

    assert report.counts == {"create": 3, "update": 0, "unchanged": 0, "error": 0}
    first = Device.objects.get(imei="860121060000001")
    assert (first.model, first.vehicle.plate, first.sim_number, first.account) == (
        "VL802",
        "KCA123A",
        "0722000001",
        account,
    )
    assert Device.objects.get(imei="860121060000002").vehicle == first.vehicle
    assert Device.objects.get(imei="860121060000003").vehicle is None
    assert set(Device.objects.values_list("lifecycle", flat=True)) == {Lifecycle.PROVISIONED}


def test_it_updates_known_devices_and_reports_unchanged_ones(make_device, account: Account) -> None:
    make_device(imei="860121060000001", model="VL802", plate="KCA123A")
    moved = make_device(imei="860121060000002", model="VL802")
    device_transition(device=moved, to=Lifecycle.ACTIVE, reason="installed")

    report = devices_import_csv(
        file_text="imei,model,account,plate\n860121060000001,VL802,Nairobi,KCA 123A\n"
        "860121060000002,JC450Pro,Nairobi,KDB 456B\n",
        dry_run=False,
    )

    assert _summary(report) == [(2, "860121060000001", "unchanged"), (3, "860121060000002", "update")]
    assert report.rows[1].messages == ["changed: model, vehicle", "new vehicle KDB456B"]
    moved.refresh_from_db()
    assert (moved.model, moved.vehicle.plate, moved.lifecycle) == ("JC450Pro", "KDB456B", Lifecycle.ACTIVE)


def test_it_reports_error_rows_by_line_and_commits_the_valid_ones(account: Account) -> None:
    make_account(name="Kampala")
    text = (
        "imei,model,account,plate\n"
        "860121060000001,VL802,Nairobi,KCA 123A\n"  # 2 ok
        "86012106000000X,VL802,Nairobi,\n"  # 3 bad IMEI
        "860121060000003,VL802,Mombasa,\n"  # 4 unknown account
        "860121060000004,VL802,Nairobi,KCA#123\n"  # 5 bad plate
        "860121060000005,VL802,Nairobi,\n"  # 6 duplicate…
        "860121060000005,VL802,Kampala,UAX 123B\n"  # 7 …of line 6
        "860121060000007,VL802,Kampala,UAX 123B\n"  # 8 ok
    )

    report = devices_import_csv(file_text=text, dry_run=False)

    assert [(row.line, row.action) for row in report.rows] == [
        (2, "create"), (3, "error"), (4, "error"), (5, "error"), (6, "error"), (7, "error"), (8, "create"),
    ]  # fmt: skip
    messages = {row.line: row.messages for row in report.rows}
    assert messages[3] == ["IMEI '86012106000000X' is not 14 to 17 digits"]
    assert messages[4] == ["unknown account 'Mombasa'"]
    assert messages[5] == ["'KCA#123' is not a number plate"]
    assert messages[6] == messages[7] == ["IMEI 860121060000005 is on lines 6, 7 of this file; keep one"]
    assert set(Device.objects.values_list("imei", flat=True)) == {"860121060000001", "860121060000007"}
    assert set(Vehicle.objects.values_list("plate", flat=True)) == {"KCA123A", "UAX123B"}


def test_it_never_moves_a_device_to_another_account_nor_touches_a_decommissioned_one(make_device) -> None:
    make_account(name="Kampala")
    make_device(imei="860121060000001")
    dead = make_device(imei="860121060000002")
    for to in (Lifecycle.ACTIVE, Lifecycle.SUSPENDED, Lifecycle.DECOMMISSIONED):
        device_transition(device=dead, to=to, reason="r")

    report = devices_import_csv(
        file_text="imei,model,account\n860121060000001,VL802,Kampala\n860121060000002,VL802,Nairobi\n",
        dry_run=False,
    )

    assert report.rows[0].messages == ["already registered under account Nairobi; not moved"]
    assert report.rows[1].messages == ["decommissioned; a decommissioned device is not updated"]
    assert set(Device.objects.values_list("model", flat=True)) == {""}


def test_it_rolls_back_a_row_whose_fields_are_invalid(account: Account) -> None:
    report = devices_import_csv(
        file_text=f"imei,model,account,plate,iccid\n860121060000001,VL802,Nairobi,KCA 123A,{'8' * 30}\n",
        dry_run=False,
    )

    assert report.rows[0].action == "error"
    assert report.rows[0].messages[0].startswith("iccid: ")
    assert not Vehicle.objects.exists()  # the vehicle created for the row went with it


def test_it_records_the_importing_user_in_the_history(account: Account) -> None:
    user = make_user("wanjiru")

    devices_import_csv(file_text=GOOD_CSV, dry_run=False, user=user)

    event = Events.objects.tracks(Device.objects.get(imei="860121060000001")).get()
    assert event.pgh_context == {"user": user.pk, "reason": "CSV import"}


def test_it_refuses_a_file_without_the_required_columns(db) -> None:
    with pytest.raises(DeviceImportError, match="missing: account"):
        devices_import_csv(file_text="imei,model,plate\n860121060000001,VL802,KCA123A\n", dry_run=True)


def test_it_reads_excel_csv_with_a_bom_and_blank_rows(account: Account) -> None:
    text = "\ufeffIMEI,Model,Account\r\n860121060000001,VL802,Nairobi\r\n,,\r\n"

    report = devices_import_csv(file_text=text, dry_run=True)

    assert _summary(report) == [(2, "860121060000001", "create")]
