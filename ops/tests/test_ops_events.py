"""Ops actions that change derived state go through the log: an acknowledgement, an odometer reading or correction and
a manual driver assignment are events appended to events_raw, parsed and projected like any push — so a full replay
(even after the state tables are emptied, even with a re-parse) keeps them, with who and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from domain.models import Device, DriverAssignment
from domain.tests.factories import make_account, make_driver, make_user, make_vehicle
from events.models import PushSource, RawEvent, SourceKind
from ops.services import OpsError, alarms_acknowledge, driver_assign, odometer_record
from ops.tests.pipeline import immediate, push_alarm, run
from state.models import Alarm, OdometerReading

pytestmark = pytest.mark.django_db

IMEI = "861210600000777"
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def hub(account):
    immediate()
    return PushSource.objects.create(name="hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret="hub-secret-1")


@pytest.fixture
def vehicle(account):
    vehicle = make_vehicle("KDA 101A")
    Device.objects.create(imei=IMEI, account=account, vehicle=vehicle)
    return vehicle


def state_hash() -> str:
    out = StringIO()
    call_command("state_hash", stdout=out)
    return out.getvalue()


def test_it_acknowledges_through_the_log_and_keeps_it_over_a_full_replay(hub, vehicle):
    push_alarm(hub, imei=IMEI, code="1", at=T0)  # SOS
    push_alarm(hub, imei=IMEI, code="2", at=T0 + timedelta(minutes=5))  # power cut, left open
    run()
    sos = Alarm.objects.get(code="1")
    assert (sos.normalised_name, sos.acknowledged_at, sos.acknowledged_by) == ("sos_alert", None, None)

    before = datetime.now(UTC)
    written, skipped = alarms_acknowledge(parsed_ids=[sos.parsed_id], user=make_user("achieng"), note="called driver")
    assert (len(written), skipped) == (1, [])
    assert Alarm.objects.get(code="1").acknowledged_at is None  # the admin wrote an event, not the state table
    raw = RawEvent.objects.get(id=written[0])
    assert (raw.source_kind, raw.push_kind, raw.source.kind) == ("ops", "alarm_ack", "ops")
    run()

    acked = Alarm.objects.get(code="1")
    assert acked.acknowledged_by == "achieng"
    assert acked.acknowledged_at is not None
    assert before <= acked.acknowledged_at <= datetime.now(UTC)
    assert Alarm.objects.get(code="2").acknowledged_at is None
    digest = state_hash()

    call_command("replay", verbosity=0)
    assert state_hash() == digest
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE state_alarms")
    call_command("replay", verbosity=0)
    assert state_hash() == digest
    call_command("replay", "--reparse", verbosity=0)  # the raw log parsed again, ops rows included
    assert state_hash() == digest
    again = Alarm.objects.get(code="1")
    assert (again.acknowledged_by, again.acknowledged_at) == ("achieng", acked.acknowledged_at)


def test_it_keeps_the_first_of_two_acknowledgements_and_refuses_a_third(hub, vehicle):
    push_alarm(hub, imei=IMEI, code="1", at=T0)
    run()
    sos = Alarm.objects.get()
    alarms_acknowledge(parsed_ids=[sos.parsed_id], user=make_user("first"))
    alarms_acknowledge(parsed_ids=[sos.parsed_id], user=make_user("second"))  # before the projection caught up
    run()
    assert Alarm.objects.get().acknowledged_by == "first"

    written, skipped = alarms_acknowledge(parsed_ids=[sos.parsed_id, 999_999], user=make_user("third"))
    assert written == []
    assert skipped[0].startswith(f"alarm #{sos.parsed_id}: acknowledged by first at ")
    assert skipped[1] == "alarm #999999: no such alarm"


def test_it_acknowledges_an_alarm_whose_event_arrives_after_the_acknowledgement_is_projected(hub, vehicle):
    """Order of arrival does not matter: the alarm row looks its acknowledgement up whenever it is folded."""
    push_alarm(hub, imei=IMEI, code="1", at=T0)
    run()
    alarms_acknowledge(parsed_ids=[Alarm.objects.get().parsed_id], user=make_user("achieng"))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE state_alarms")  # as if the alarm had not been folded yet
    run()  # only the acknowledgement is folded: it re-folds the alarm it names
    assert Alarm.objects.get().acknowledged_by == "achieng"


def test_it_keeps_an_odometer_reading_and_its_correction_over_a_full_replay(hub, vehicle):
    clerk = make_user("wanjiru")
    odometer_record(vehicle=vehicle, odometer_km=10_000, read_at=T0, user=clerk)
    odometer_record(vehicle=vehicle, odometer_km=1_234, read_at=T0 + timedelta(days=1), user=clerk)  # a typo
    odometer_record(
        vehicle=vehicle, odometer_km=12_340, read_at=T0 + timedelta(days=1), user=clerk, source="correction",
        note="typo: 1,234",
    )  # fmt: skip
    assert not OdometerReading.objects.exists()  # events, not rows
    run()

    rows = list(
        OdometerReading.objects.order_by("occurred_at", "recorded_at").values_list(
            "vehicle_id", "odometer_km", "source"
        )
    )
    assert rows == [(vehicle.pk, 10_000, "reading"), (vehicle.pk, 1_234, "reading"), (vehicle.pk, 12_340, "correction")]
    digest = state_hash()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE state_odometer_readings")
    call_command("replay", verbosity=0)
    assert state_hash() == digest
    correction = OdometerReading.objects.get(source="correction")
    assert (correction.recorded_by, correction.note, correction.plate) == ("wanjiru", "typo: 1,234", "KDA101A")


def test_it_refuses_odometer_readings_that_cannot_be(vehicle):
    with pytest.raises(OpsError, match="cannot read -1 km"):
        odometer_record(vehicle=vehicle, odometer_km=-1, read_at=T0, user=None)
    with pytest.raises(OpsError, match="in the future"):
        odometer_record(vehicle=vehicle, odometer_km=1, read_at=datetime.now(UTC) + timedelta(hours=1), user=None)
    make_account()  # with two accounts, a vehicle without a tracker has no account to file its reading under
    untracked = make_vehicle("KDC 2C")
    with pytest.raises(OpsError, match="no tracker"):
        odometer_record(vehicle=untracked, odometer_km=5, read_at=T0, user=None)


def test_it_applies_a_manual_driver_assignment_and_restores_it_by_replay(hub, vehicle):
    driver = make_driver("Baraka Mwangi")
    driver_assign(vehicle=vehicle, driver=driver, start=T0, note="night shift", user=make_user("dispatch"))
    assert not DriverAssignment.objects.exists()
    run()

    assignment = DriverAssignment.objects.get()
    assert (assignment.driver, assignment.vehicle, assignment.period.lower, assignment.period.upper) == (
        driver, vehicle, T0, None,
    )  # fmt: skip
    assert assignment.note == "night shift · assigned by dispatch"
    call_command("replay", verbosity=0)
    assert DriverAssignment.objects.count() == 1  # re-applying changes nothing
    DriverAssignment.objects.all().delete()  # lost from the domain: the log has it
    call_command("replay", verbosity=0)
    assert DriverAssignment.objects.get().driver == driver


def test_it_refuses_an_overlapping_assignment_before_writing_anything(hub, vehicle):
    driver_assign(vehicle=vehicle, driver=make_driver("Achieng"), start=T0, user=None)
    run()
    with pytest.raises(OpsError, match="Achieng is on KDA101A for an overlapping period"):
        driver_assign(vehicle=vehicle, driver=make_driver("Baraka"), start=T0 + timedelta(days=1), user=None)
    assert RawEvent.objects.filter(push_kind="driver_assignment").count() == 1
