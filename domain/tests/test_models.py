"""The rules the database itself enforces, whoever writes: checks, the lifecycle FSM, no double-booking."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, ProgrammingError, connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

from domain.models import Account, Device, DriverAssignment, Lifecycle
from domain.tests.factories import at, make_driver, make_vehicle


def _raw_set_lifecycle(device: Device, lifecycle: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE domain_devices SET lifecycle = %s WHERE id = %s", [lifecycle, device.pk])


@pytest.mark.parametrize("imei", ["86012106000001", "860121060000012", "8601210600000123", "86012106000001234"])
def test_it_accepts_imeis_of_14_to_17_digits(account: Account, imei: str) -> None:
    device = Device(imei=imei, account=account)
    device.full_clean()
    device.save()
    assert Device.objects.get(imei=imei).account == account


@pytest.mark.parametrize("imei", ["8601210600000", "860121060000012345", "86012106000001A", "8601 210600000"])
def test_it_refuses_bad_imeis_in_full_clean_and_in_the_database(account: Account, imei: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        Device(imei=imei, account=account).full_clean()
    assert "imei" in excinfo.value.message_dict

    # 18 digits overflow varchar(17) before the check constraint is reached: refused all the same.
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        Device.objects.create(imei=imei, account=account)
    assert not Device.objects.filter(imei=imei).exists()


def test_it_refuses_an_invalid_lifecycle_transition_issued_as_raw_sql(make_device) -> None:
    device = make_device()

    # psycopg 3 raises a plpgsql RAISE EXCEPTION (SQLSTATE P0001) as a ProgrammingError.
    with pytest.raises(ProgrammingError, match='Invalid transition of field "lifecycle"'), transaction.atomic():
        _raw_set_lifecycle(device, "decommissioned")

    device.refresh_from_db()
    assert device.lifecycle == Lifecycle.PROVISIONED


def test_it_lets_a_valid_raw_sql_transition_through_and_stamps_the_time(make_device) -> None:
    device = make_device()
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    Device.objects.filter(pk=device.pk).update(lifecycle_changed_at=long_ago)

    _raw_set_lifecycle(device, "active")

    device.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        (db_now,) = cursor.fetchone()
    assert device.lifecycle == Lifecycle.ACTIVE
    assert device.lifecycle_changed_at == db_now  # now() is the transaction's start, stamped by the trigger


def test_it_does_not_stamp_when_the_lifecycle_is_untouched(make_device) -> None:
    device = make_device()
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    Device.objects.filter(pk=device.pk).update(lifecycle_changed_at=long_ago)

    Device.objects.filter(pk=device.pk).update(name="van 7")

    device.refresh_from_db()
    assert device.lifecycle_changed_at == long_ago


def _assign(driver, vehicle, start, end=None) -> DriverAssignment:
    return DriverAssignment.objects.create(driver=driver, vehicle=vehicle, period=DateTimeTZRange(start, end, "[)"))


def test_it_refuses_two_drivers_on_one_vehicle_at_once(db) -> None:
    vehicle = make_vehicle()
    _assign(make_driver(), vehicle, at(1), at(10))

    with pytest.raises(IntegrityError, match="driver_assignment_vehicle_no_overlap"), transaction.atomic():
        _assign(make_driver(), vehicle, at(5), at(12))


def test_it_refuses_one_driver_on_two_vehicles_at_once(db) -> None:
    driver = make_driver()
    _assign(driver, make_vehicle(), at(1))  # open-ended: until further notice

    with pytest.raises(IntegrityError, match="driver_assignment_driver_no_overlap"), transaction.atomic():
        _assign(driver, make_vehicle(), at(20), at(21))


def test_it_allows_adjacent_assignments(db) -> None:
    driver, vehicle = make_driver(), make_vehicle()
    _assign(driver, vehicle, at(1), at(5))
    _assign(driver, vehicle, at(5), at(9))
    _assign(make_driver(), vehicle, at(9))

    assert DriverAssignment.objects.filter(vehicle=vehicle).count() == 3
