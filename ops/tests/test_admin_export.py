"""The admin's export actions ask for the date range first (the last 30 days unless changed), then download."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.gis.geos import Point
from django.utils import timezone
from openpyxl import load_workbook

from domain.models import CostCentre, Vehicle
from state.models import Trip

T0 = datetime(2026, 11, 16, 5, 0, tzinfo=UTC)  # 08:00 in Nairobi


@pytest.fixture
def manager(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("manager", password="pw-manager-123"))
    return client


@pytest.fixture
def trips(db, make_device):
    north = CostCentre.objects.create(name="North")
    device = make_device(plate="KCA 123A")
    Vehicle.objects.filter(devices=device).update(cost_centre=north)
    for start in (T0, T0 + timedelta(days=3)):
        Trip.objects.create(
            device_id=device.id, source="derived", started_at=start, ended_at=start + timedelta(minutes=30),
            distance_m=12000, duration_s=1800, max_speed_kmh=60, avg_speed_kmh=24, idle_s=0, fixes=10,
            start_point=Point(36.82, -1.29), end_point=Point(36.9, -1.3),
        )  # fmt: skip
    return Vehicle.objects.get(plate="KCA123A")


def _rows(response) -> list[tuple]:
    assert response["Content-Disposition"].startswith("attachment;")
    return list(load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).active.values)


def test_it_asks_for_the_range_first_defaulting_to_the_last_30_days(manager, trips):
    response = manager.post("/admin/domain/vehicle/", {"action": "export_trips", "_selected_action": [trips.id]})
    assert response.status_code == 200
    assert "Content-Disposition" not in response
    page = response.content.decode()
    assert "KCA123A" in page
    assert 'name="export" value="yes"' in page
    assert f'name="_selected_action" value="{trips.id}"' in page
    assert 'name="action" value="export_trips"' in page
    now = timezone.now().astimezone(ZoneInfo("Africa/Nairobi"))
    since = re.search(r'name="since" value="([^"]+)"', page).group(1)
    until = re.search(r'name="until" value="([^"]+)"', page).group(1)
    assert until == now.strftime("%Y-%m-%dT%H:%M") or until == (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert since[:10] == (now - timedelta(days=30)).strftime("%Y-%m-%d")


def test_it_exports_the_range_chosen_in_the_display_zone(manager, trips):
    chosen = {"action": "export_trips", "_selected_action": [trips.id], "export": "yes"}
    # 08:00 EAT on the 16th is 05:00 UTC: a range starting at 08:01 EAT leaves the first trip out.
    late = manager.post("/admin/domain/vehicle/", {**chosen, "since": "2026-11-16T08:01", "until": "2026-11-30T00:00"})
    assert len(_rows(late)) == 1 + 1
    both = manager.post("/admin/domain/vehicle/", {**chosen, "since": "2026-11-16T08:00", "until": "2026-11-30T00:00"})
    assert [r[0] for r in _rows(both)[1:]] == ["KCA123A", "KCA123A"]


def test_it_refuses_an_empty_range_on_the_same_page(manager, trips):
    chosen = {"action": "export_trips", "_selected_action": [trips.id], "export": "yes"}
    response = manager.post(
        "/admin/domain/vehicle/", {**chosen, "since": "2026-11-20T00:00", "until": "2026-11-19T00:00"}
    )
    assert response.status_code == 200
    assert "Content-Disposition" not in response
    assert "must be after" in response.content.decode()


def test_the_cost_centre_export_asks_too(manager, trips):
    centre = CostCentre.objects.get(name="North")
    chosen = {"action": "export_utilisation", "_selected_action": [centre.id]}
    assert "Content-Disposition" not in manager.post("/admin/domain/costcentre/", chosen)
    response = manager.post(
        "/admin/domain/costcentre/",
        {**chosen, "export": "yes", "since": "2026-11-15T00:00", "until": "2026-11-22T00:00"},
    )
    assert [r[0] for r in _rows(response)[1:]] == ["North"]


def test_it_keeps_a_selection_across_pages(manager, trips):
    chosen = {"action": "export_trips", "_selected_action": [trips.id], "select_across": "1"}
    page = manager.post("/admin/domain/vehicle/", chosen).content.decode()
    assert 'name="select_across" value="1"' in page
    assert 'name="_selected_action"' not in page
