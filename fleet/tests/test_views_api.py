"""The view endpoints over HTTP: shapes a renderer relies on, scopes, limits, bad input answered 422."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.gis.geos import Point
from django.utils import timezone
from openpyxl import load_workbook

from devtools.testing.auth import access_for, bearer, make_api_user
from slo.schemas import SloStatusOut
from state.dashboards.schemas import DispatchViewOut, HistoryViewOut, LiveViewOut, OverviewViewOut
from state.models import LivePosition, Trip


@pytest.fixture
def reader(db):
    return bearer(access_for(make_api_user("dispatcher", "read:fleet")))


@pytest.fixture
def moving_vehicle(make_device):
    device = make_device(plate="KCA 123A", lifecycle="active")
    now = timezone.now()
    LivePosition.objects.create(device_id=device.id, parsed_id=1, occurred_at=now - timedelta(seconds=20),
                                received_at=now, point=Point(36.82, -1.29), speed_kmh=42, heading=90,
                                ignition=True, updated_at=now)  # fmt: skip
    Trip.objects.create(device_id=device.id, source="derived", started_at=now - timedelta(hours=2),
                        ended_at=now - timedelta(hours=1), distance_m=12_000, duration_s=3600,
                        start_point=Point(36.8, -1.3), end_point=Point(36.82, -1.29))  # fmt: skip
    return device


def test_it_serves_the_live_view_ready_to_paint(client, reader, moving_vehicle):
    response = client.get("/api/views/live", **reader)
    assert response.status_code == 200
    body = response.json()
    LiveViewOut.model_validate(body)  # the documented contract holds
    assert set(body) == {"summary", "geojson", "slo_status"}
    (feature,) = body["geojson"]["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [36.82, -1.29]}
    props = feature["properties"]
    assert (props["plate"], props["plate_tail"], props["operational_state"]) == ("KCA123A", "123A", "moving")
    assert props["style_class"] == "vehicle state-moving fresh-fresh"
    assert props["device_time"].endswith("+03:00")
    assert body["summary"]["by_state"]["moving"] == 1
    assert body["summary"]["freshness_line"] == "All 1 active vehicles fresh."
    assert {m["metric"] for m in body["slo_status"]["metrics"]} >= {"parser_lag_p95_sec"}


def test_it_answers_bad_filters_with_422_and_a_reason(client, reader, db):
    response = client.get("/api/views/live", {"filters": '{"colour": "red"}'}, **reader)
    assert response.status_code == 422
    assert "unknown filter" in response.content.decode()


def test_it_serves_history_dispatch_and_overview(client, reader, moving_vehicle):
    history = client.get("/api/views/history", {"days": 1, "filters": json.dumps({"vehicle_numbers": ["kca123a"]})},
                         **reader).json()  # fmt: skip
    HistoryViewOut.model_validate(history)
    assert history["summary"]["trips"] == 1
    assert history["summary"]["distance_km"] == 12.0
    dispatch = client.get("/api/views/dispatch", {"lat": -1.29, "lng": 36.83}, **reader).json()
    DispatchViewOut.model_validate(dispatch)
    assert dispatch["summary"]["available"] == 1
    assert dispatch["geojson"]["features"][1]["properties"]["distance_m"] == pytest.approx(1113, abs=5)
    overview = client.get("/api/views/overview", **reader).json()
    OverviewViewOut.model_validate(overview)
    assert overview["summary"]["today"]["trips"] in (0, 1)  # depends on the hour in Nairobi
    assert overview["summary"]["cost_centres"][0]["by_state"] == {"moving": 1}


def test_it_refuses_a_history_longer_than_31_days(client, reader, db):
    until = datetime(2026, 11, 1, tzinfo=UTC)
    response = client.get("/api/views/history", {"since": (until - timedelta(days=32)).isoformat(),
                                                  "until": until.isoformat()}, **reader)  # fmt: skip
    assert response.status_code == 422
    assert "31 days" in response.content.decode()


def test_it_needs_read_fleet_for_views_slo_and_reports(client, db):
    ops_only = bearer(access_for(make_api_user("clerk", "write:ops")))
    for path in ("/api/views/live", "/api/slo/status", "/api/reports/trips"):
        assert client.get(path).status_code == 401
        assert client.get(path, **ops_only).status_code == 403


def test_it_serves_slo_status(client, reader, db):
    body = client.get("/api/slo/status", **reader).json()
    SloStatusOut.model_validate(body)
    assert body["ok"] is True
    assert {m["metric"]: m["state"] for m in body["metrics"]}["parser_lag_p95_sec"] == "not_measured"


def test_it_exports_reports_as_csv_and_xlsx(client, reader, moving_vehicle):
    csv_response = client.get("/api/reports/trips", {"format": "csv"}, **reader)
    assert csv_response.status_code == 200
    assert csv_response["Content-Type"].startswith("text/csv")
    lines = b"".join(csv_response.streaming_content).decode().splitlines()
    assert lines[0].startswith("vehicle,imei,cost centre,start (Africa/Nairobi)")
    assert lines[1].startswith("KCA123A,")
    xlsx = client.get("/api/reports/daily_mileage", {"format": "xlsx"}, **reader)
    assert xlsx.status_code == 200
    rows = list(load_workbook(io.BytesIO(b"".join(xlsx.streaming_content)), read_only=True).active.values)
    assert rows[1][0] == "KCA123A"
    assert rows[1][4] == 12.0
    assert client.get("/api/reports/nope", **reader).status_code == 404


def test_it_rate_limits_dashboards_per_ip(client, reader, db, settings):
    settings.RATE_LIMIT_DASHBOARDS_PER_MIN = 3
    codes = [client.get("/api/views/live", REMOTE_ADDR="10.9.8.7", **reader).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


@pytest.mark.parametrize("path", ["/api/views/history", "/api/reports/trips"])
def test_it_refuses_dates_outside_any_fleets_life(client, reader, path):
    response = client.get(path, {"until": "0001-01-02T00:00:00"}, **reader)
    assert response.status_code == 422
    assert "between 2000 and 2100" in response.content.decode()
