"""Report exports, opened the way a manager would (openpyxl, csv) and checked against the database."""

from __future__ import annotations

import csv
import email
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.gis.geos import Point
from openpyxl import load_workbook

from devtools.testing.fakes import fake_smtp_server
from domain.models import CostCentre, Vehicle
from ops.models import CostRate
from ops.reports import REPORTS, ReportFilters, report_csv, report_xlsx
from ops.weekly_report import last_week, weekly_report_send
from state.models import Alarm, ParkingEvent, Trip

T0 = datetime(2026, 11, 16, 5, 0, tzinfo=UTC)  # Monday 08:00 in Nairobi
WEEK = ReportFilters(since=T0 - timedelta(days=1), until=T0 + timedelta(days=7))


@pytest.fixture
def fleet_data(db, make_device):
    north = CostCentre.objects.create(name="North")
    CostRate.objects.create(cost_centre=north, valid_from=date(2026, 1, 1), per_km=Decimal("25.00"))
    dev_a = make_device(plate="KCA 123A")
    dev_b = make_device(plate="KCB 456B")
    Vehicle.objects.filter(devices__in=[dev_a, dev_b]).update(cost_centre=north)

    def trip(device, start, km, source="derived", matched=None):
        return Trip.objects.create(
            device_id=device.id,
            source=source,
            started_at=start,
            ended_at=start + timedelta(minutes=30),
            distance_m=km * 1000 if source == "derived" else None,
            reported_distance=km if source == "jimi" else None,
            duration_s=1800,
            max_speed_kmh=60,
            avg_speed_kmh=30,
            idle_s=120,
            fixes=10,
            start_point=Point(36.82, -1.29),
            end_point=Point(36.9, -1.3),
            matched_started_at=matched,
        )

    trip(dev_a, T0, 12.5)
    trip(dev_a, T0 + timedelta(hours=3), 7.5)
    trip(dev_b, T0 + timedelta(days=1), 20.0)
    trip(dev_a, T0 + timedelta(minutes=1), 12.0, source="jimi", matched=T0)  # the same trip, reported: not counted
    ParkingEvent.objects.create(
        device_id=dev_a.id,
        source="derived",
        mode="idling",
        started_at=T0 + timedelta(minutes=40),
        ended_at=T0 + timedelta(minutes=50),
        duration_s=600,
        point=Point(36.9, -1.3),
    )
    Alarm.objects.create(
        parsed_id=1,
        device_id=dev_b.id,
        occurred_at=T0,
        received_at=T0,
        code="1",
        name="SOS alert",
        normalised_name="sos",
        severity="critical",
        point=Point(36.8, -1.2),
    )
    return {"a": dev_a, "b": dev_b}


def _xlsx_rows(name, filters=WEEK) -> list[list[Any]]:
    with report_xlsx(REPORTS[name], filters) as out:
        sheet = load_workbook(out, read_only=True).active
        return [list(r) for r in sheet.iter_rows(values_only=True)]


def test_it_exports_trips_in_nairobi_time_without_double_counting_jimi(fleet_data):
    rows = _xlsx_rows("trips")
    assert rows[0][3:5] == ["start (Africa/Nairobi)", "end (Africa/Nairobi)"]
    assert [(r[0], r[3], r[6], r[10]) for r in rows[1:]] == [
        ("KCA123A", "2026-11-16 08:00:00", 12.5, "derived"),
        ("KCA123A", "2026-11-16 11:00:00", 7.5, "derived"),
        ("KCB456B", "2026-11-17 08:00:00", 20.0, "derived"),
    ]
    # A trip without a distance would leave an empty cell, and the sheet's sum would fail on it.
    assert sum(r[6] for r in rows[1:]) == sum(t.distance_m or 0.0 for t in Trip.objects.filter(source="derived")) / 1000


def test_it_filters_by_vehicle_number_as_typed(fleet_data):
    filters = ReportFilters(since=WEEK.since, until=WEEK.until, vehicle_numbers=("kcb-456b",))
    assert [r[0] for r in _xlsx_rows("trips", filters)[1:]] == ["KCB456B"]


def test_it_streams_csv_with_the_same_rows(fleet_data):
    lines = list(report_csv(REPORTS["trips"], WEEK))
    rows = list(csv.reader(io.StringIO("".join(lines))))
    assert len(rows) == 4
    assert rows[1][1] == fleet_data["a"].imei


def test_it_sums_daily_mileage_per_vehicle_and_local_day(fleet_data):
    rows = _xlsx_rows("daily_mileage")
    assert [(r[0], r[2], r[3], r[4]) for r in rows[1:]] == [
        ("KCA123A", "2026-11-16", 2, 20.0),
        ("KCB456B", "2026-11-17", 1, 20.0),
    ]


def test_it_prices_utilisation_with_the_cost_rate_in_force(fleet_data):
    (header, north) = _xlsx_rows("utilisation")
    assert header[0] == "cost centre"
    assert north[:5] == ["North", 2, 2, 3, 40.0]
    assert north[8:] == [1000.0, "KES"]  # 40 km at 25 KES/km


def test_it_divides_utilisation_by_the_vehicles_the_filters_select(fleet_data):
    from dataclasses import replace

    from domain.models import AssignedCity

    nairobi = AssignedCity.objects.create(name="Nairobi", country_code="KE")
    kampala = AssignedCity.objects.create(name="Kampala", country_code="UG")
    Vehicle.objects.filter(plate="KCA123A").update(assigned_city=nairobi)
    Vehicle.objects.filter(plate="KCB456B").update(assigned_city=kampala)
    (_header, north) = _xlsx_rows("utilisation", replace(WEEK, assigned_cities=("Nairobi",)))
    assert north[:5] == ["North", 1, 1, 2, 20.0]  # one Nairobi vehicle, its two trips: not both North vehicles
    hours = (WEEK.until - WEEK.since).total_seconds() / 3600
    assert north[7] == round(100 * 1.0 / hours, 2)  # 1 h of driving over one vehicle's hours


def test_it_shows_cost_centres_without_trips_at_zero(fleet_data):
    south = CostCentre.objects.create(name="South")
    Vehicle.objects.create(plate="KDA 789C", cost_centre=south)
    rows = {r[0]: r for r in _xlsx_rows("utilisation")[1:]}
    assert rows["South"][:8] == ["South", 1, 0, 0, 0.0, 0.0, 0.0, 0.0]


def test_it_exports_parking_and_alarms(fleet_data):
    parking = _xlsx_rows("parking")
    assert [(r[3], r[6]) for r in parking[1:]] == [("idling", 10.0)]
    alarms = _xlsx_rows("alarms")
    assert [(r[0], r[5], r[6]) for r in alarms[1:]] == [("KCB456B", "SOS alert", "critical")]


def test_it_mails_last_weeks_reports_on_monday(fleet_data, settings):
    monday_next = T0 + timedelta(days=7, hours=-2)  # Monday 06:00 EAT of the next week
    assert last_week(monday_next)[0].isoformat() == "2026-11-16T00:00:00+03:00"
    with fake_smtp_server() as (port, mailbox):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.REPORT_EMAILS = ["managers@example.com"]
        weekly_report_send(now=monday_next)
    (sent,) = mailbox.messages
    message = email.message_from_string(sent["data"])
    # get_payload(decode=True) of an attachment: its bytes.
    attachments: dict[str | None, Any] = {
        p.get_filename(): p.get_payload(decode=True) for p in message.walk() if p.get_filename()
    }
    assert set(attachments) == {
        "utilisation-2026-11-16.xlsx",
        "daily_mileage-2026-11-16.xlsx",
        "alarms-2026-11-16.xlsx",
    }
    sheet = load_workbook(io.BytesIO(attachments["utilisation-2026-11-16.xlsx"]), read_only=True).active
    assert list(sheet.iter_rows(values_only=True))[1][0] == "North"


def test_it_exports_from_the_admin_for_selected_vehicles(fleet_data, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("manager", password="pw-manager-123"))
    vehicle = Vehicle.objects.get(plate="KCB456B")
    chosen = {"action": "export_trips", "_selected_action": [vehicle.id]}
    asked = client.post("/admin/domain/vehicle/", chosen, follow=False)
    assert asked.status_code == 200
    assert "Content-Disposition" not in asked  # first the page asking for the dates
    range_ = {"export": "yes", "since": "2026-11-15T00:00", "until": "2026-11-23T00:00"}  # EAT
    response = client.post("/admin/domain/vehicle/", {**chosen, **range_}, follow=False)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="trips-')
    rows = list(load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).active.values)
    assert [r[0] for r in rows[1:]] == ["KCB456B"]  # the week's trips of the selected vehicle only
