"""Tickets, the service log and the dispatch log: the rules the database enforces, whoever writes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.utils import timezone
from pghistory.models import Events

from domain.tests.factories import make_driver, make_user, make_vehicle
from ops.models import DispatchLog, ServiceLog, Ticket, TicketCategory, TicketComment, TicketPriority, TicketStatus
from ops.services import TicketTransitionError, ticket_comment, ticket_open, ticket_transition, ticket_update

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


def _open(**kwargs) -> Ticket:
    return ticket_open(title="Door sensor", category=TicketCategory.OTHER, **kwargs)


def _raw_set_status(ticket: Ticket, status: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ops_tickets SET status = %s WHERE id = %s", [status, ticket.pk])


def _back_date_status_change(ticket: Ticket, by: timedelta) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(status_changed_at=timezone.now() - by)


def test_it_moves_a_ticket_along_the_allowed_transitions() -> None:
    ticket = _open()
    for to in ("in_progress", "waiting", "in_progress", "resolved", "in_progress", "resolved", "closed"):
        ticket = ticket_transition(ticket=ticket, to=to)
        assert ticket.status == to
    assert ticket.closed_at is not None


def test_it_refuses_a_move_the_database_forbids_issued_as_raw_sql() -> None:
    ticket = _open()

    with pytest.raises(ProgrammingError, match='Invalid transition of field "status"'), transaction.atomic():
        _raw_set_status(ticket, "closed")  # open → closed skips the resolution

    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN


def test_it_names_the_allowed_moves_when_the_database_refuses_one() -> None:
    ticket = _open()

    with pytest.raises(TicketTransitionError, match="cannot go from open to waiting; allowed from open: in_progress"):
        ticket_transition(ticket=ticket, to="waiting")

    ticket = ticket_transition(ticket=ticket, to="resolved")
    ticket = ticket_transition(ticket=ticket, to="closed")
    for to in ("open", "in_progress", "waiting", "resolved"):
        with pytest.raises(TicketTransitionError, match="nothing \\(final state\\)"):
            ticket_transition(ticket=ticket, to=to)


def test_it_decides_against_the_row_in_the_database_not_a_stale_copy() -> None:
    ticket = _open()
    stale = Ticket.objects.get(pk=ticket.pk)
    ticket_transition(ticket=ticket, to="resolved")
    ticket_transition(ticket=ticket, to="closed")

    with pytest.raises(TicketTransitionError, match="cannot go from closed to in_progress"):
        ticket_transition(ticket=stale, to="in_progress")


def test_it_refuses_a_same_status_move_and_an_unknown_status() -> None:
    ticket = _open()
    with pytest.raises(TicketTransitionError, match="already open"):
        ticket_transition(ticket=ticket, to="open")
    with pytest.raises(TicketTransitionError, match="not a ticket status"):
        ticket_transition(ticket=ticket, to="done")


def test_it_sets_the_sla_deadline_from_the_priority_threshold() -> None:
    urgent = _open(priority=TicketPriority.URGENT)
    low = _open(priority=TicketPriority.LOW)

    assert urgent.sla_due_at is not None
    assert low.sla_due_at is not None
    assert urgent.sla_due_at - urgent.opened_at == 4 * H  # the ticket_sla_urgent_h row
    assert low.sla_due_at - low.opened_at == 72 * H

    ticket_update(ticket=low, priority=TicketPriority.HIGH)
    low.refresh_from_db()
    assert low.sla_due_at - low.opened_at == 8 * H


def test_it_stops_the_sla_clock_while_waiting() -> None:
    ticket = ticket_transition(ticket=_open(), to="in_progress")
    ticket = ticket_transition(ticket=ticket, to="waiting")
    before = ticket.sla_due_at
    assert before is not None
    _back_date_status_change(ticket, 2 * H)  # two hours waiting on a garage

    ticket = ticket_transition(ticket=ticket, to="in_progress")

    assert ticket.sla_due_at is not None
    assert abs((ticket.sla_due_at - before) - 2 * H) < timedelta(seconds=5)


def test_it_stamps_the_resolution_and_clears_it_when_reopened() -> None:
    ticket = ticket_transition(ticket=_open(), to="resolved")
    assert ticket.resolved_at is not None

    ticket = ticket_transition(ticket=ticket, to="in_progress")

    assert ticket.resolved_at is None
    assert ticket.status_changed_at >= ticket.opened_at


def test_it_keeps_one_open_ticket_per_automation_key() -> None:
    vehicle = make_vehicle("KDA101A")
    first = Ticket.objects.create(title="SOS", category="alarm", vehicle=vehicle, auto_key="alarm:1:sos")

    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket.objects.create(title="SOS again", category="alarm", vehicle=vehicle, auto_key="alarm:1:sos")

    ticket_transition(ticket=first, to="resolved")
    again = Ticket.objects.create(title="SOS again", category="alarm", vehicle=vehicle, auto_key="alarm:1:sos")
    assert again.pk != first.pk


def test_it_keeps_a_comment_thread_and_the_history_with_who_and_why() -> None:
    clerk = make_user("achieng")
    ticket = _open(user=clerk)
    ticket_comment(ticket=ticket, body="Called the driver", user=clerk)
    ticket_transition(ticket=ticket, to="in_progress", user=clerk, note="On it")

    assert list(TicketComment.objects.filter(ticket=ticket).values_list("body", flat=True)) == [
        "Called the driver",
        "On it",
    ]
    events = list(Events.objects.tracks(ticket).order_by("pgh_created_at", "pgh_id"))
    assert [e.pgh_label for e in events] == ["insert", "update"]
    assert events[-1].pgh_diff["status"] == ["open", "in_progress"]
    assert events[-1].pgh_context["user"] == clerk.pk
    assert events[-1].pgh_context["reason"] == "status → in_progress: On it"


def test_it_refuses_a_service_entry_whose_next_service_is_behind_it() -> None:
    vehicle = make_vehicle("KDA102A")
    ServiceLog.objects.create(
        vehicle=vehicle, service_date=date(2026, 3, 1), odometer_km=10_000, work_done="Oil", next_due_km=15_000
    )
    for bad in (
        {"odometer_km": 10_000, "next_due_km": 9_000},
        {"next_due_date": date(2026, 2, 1)},
        {"cost": -5},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            ServiceLog.objects.create(vehicle=vehicle, service_date=date(2026, 3, 1), work_done="Oil", **bad)


def test_it_refuses_a_dispatch_that_arrives_before_it_leaves() -> None:
    vehicle, driver = make_vehicle("KDA103A"), make_driver("Baraka")
    now = timezone.now()
    DispatchLog.objects.create(vehicle=vehicle, driver=driver, destination="Thika", planned_departure=now)
    for bad in (
        {"planned_arrival": now - H},
        {"actual_arrival": now},  # arrived without leaving
        {"actual_departure": now, "actual_arrival": now - H},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            DispatchLog.objects.create(vehicle=vehicle, destination="Thika", planned_departure=now, **bad)
