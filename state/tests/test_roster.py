"""The HR roster reaches the domain: a driver_roster push is parsed into driver_record events, which the drivers
projector applies to domain drivers and assignments (domain.services.roster_record_apply) — the newest roster's word
per driver, the roster's own assignments only, and the same domain after a replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from pghistory.models import Events

from domain.models import AssignmentSource, Driver, DriverAssignment
from domain.services import vehicle_assign_driver
from domain.tests.factories import make_driver, make_vehicle
from events.models import PushSource, SourceKind
from events.services import raw_events_drain
from state.tests.drives import project

pytestmark = pytest.mark.django_db

NOV1, DEC1 = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
JANE = {"hr_id": "E1001", "name": "Jane Wanjiru", "phone": "+254711000000", "licence_number": "DL-123456",
        "active": True, "vehicle_plate": "kda 101a", "assigned_from": "2026-11-01", "assigned_until": None}  # fmt: skip
OMONDI = {"hr_id": "E1002", "name": "Omondi Otieno"}


@pytest.fixture
def hr(account) -> PushSource:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the commit-time work-list triggers fire now
    make_vehicle("KDA 101A")
    make_vehicle("KDB 202B")
    return PushSource.objects.create(name="hr", kind=SourceKind.HMAC, account=account, secret="hr-secret-1")


def roster(source: PushSource, extracted_at: str, *drivers: dict[str, Any]) -> None:
    """A driver_roster push as the gateway stores it, then the worker's path: parse, project."""
    body = json.dumps({"type": "driver_roster", "extracted_at": extracted_at, "drivers": list(drivers)})
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body, headers)"
            " VALUES (%s, 'hmac', 'hmac', 'application/json', %s, '{}')",
            [source.id, body.encode()],
        )
    raw_events_drain(batch_size=100, budget_s=60)
    project()


def assignments() -> list[tuple[str, str, datetime, datetime | None, str]]:
    return [
        (a.driver.hr_id or a.driver.name, a.vehicle.plate, a.period.lower, a.period.upper, a.source)
        for a in DriverAssignment.objects.select_related("driver", "vehicle").order_by("period", "id")
    ]


def test_it_turns_a_roster_push_into_drivers_and_assignments(hr):
    roster(hr, "2026-11-20T06:00:00Z", JANE, OMONDI)

    jane = Driver.objects.get(hr_id="E1001")
    assert (jane.name, jane.phone, jane.licence_number, jane.active) == (
        "Jane Wanjiru",
        "+254711000000",
        "DL-123456",
        True,
    )
    assert jane.hr_synced_at == datetime(2026, 11, 20, 6, tzinfo=UTC)
    assert Driver.objects.get(hr_id="E1002").name == "Omondi Otieno"
    assert assignments() == [("E1001", "KDA101A", NOV1, None, AssignmentSource.HR)]
    history = Events.objects.tracks(jane).order_by("pgh_id").first()
    assert history is not None
    assert history.pgh_context["reason"] == "HR roster of 2026-11-20 06:00"


def test_it_moves_a_driver_to_the_vehicle_a_newer_roster_names_and_replays_to_the_same(hr):
    roster(hr, "2026-11-20T06:00:00Z", JANE)
    roster(hr, "2026-11-27T06:00:00Z", {**JANE, "name": "Jane W. Kamau", "vehicle_plate": "KDB202B",
                                        "assigned_from": "2026-12-01"})  # fmt: skip

    assert Driver.objects.get(hr_id="E1001").name == "Jane W. Kamau"
    expected = [("E1001", "KDA101A", NOV1, DEC1, "hr"), ("E1001", "KDB202B", DEC1, None, "hr")]
    assert assignments() == expected
    before = Events.objects.count()

    call_command("replay", "--projector", "drivers", verbosity=0)
    assert assignments() == expected
    assert Events.objects.count() == before  # re-applying the log changed nothing

    DriverAssignment.objects.all().delete()
    Driver.objects.all().delete()  # the domain lost them: the log has them
    call_command("replay", "--projector", "drivers", verbosity=0)
    assert Driver.objects.get(hr_id="E1001").name == "Jane W. Kamau"
    assert assignments()[-1] == ("E1001", "KDB202B", DEC1, None, "hr")


def test_it_ignores_an_older_roster_that_arrives_late(hr):
    roster(hr, "2026-11-27T06:00:00Z", {**JANE, "name": "Jane W. Kamau"})
    roster(hr, "2026-11-20T06:00:00Z", {**JANE, "vehicle_plate": "KDB202B"})

    assert Driver.objects.get(hr_id="E1001").name == "Jane W. Kamau"
    assert assignments() == [("E1001", "KDA101A", NOV1, None, "hr")]


def test_it_leaves_a_clerks_assignment_alone(hr):
    clerk_made = vehicle_assign_driver(vehicle=make_vehicle("KDC 303C"), driver=make_driver("Baraka"), start=NOV1)
    roster(hr, "2026-11-20T06:00:00Z", {**JANE, "vehicle_plate": "KDC303C"})

    assert Driver.objects.get(hr_id="E1001").name == "Jane Wanjiru"  # the driver is updated all the same
    assert assignments() == [("Baraka", "KDC303C", NOV1, None, "manual")]
    assert DriverAssignment.objects.get().pk == clerk_made.pk


def test_it_deactivates_a_driver_and_refuses_an_unknown_plate_without_losing_the_rest(hr):
    roster(hr, "2026-11-20T06:00:00Z", JANE)
    roster(hr, "2026-11-27T06:00:00Z", {**JANE, "active": False, "vehicle_plate": "KZZ 999Z"}, OMONDI)

    assert Driver.objects.get(hr_id="E1001").active is False
    assert Driver.objects.filter(hr_id="E1002").exists()
    assert assignments() == [("E1001", "KDA101A", NOV1, None, "hr")]  # no vehicle KZZ999Z: nothing made up
