"""The view contracts at the selector level: the dedup rule, state and freshness, filters, history, dispatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.gis.geos import Point

from domain.models import CostCentre, Device, Driver, DriverAssignment, Lifecycle, Vehicle
from state.dashboards.selectors import (
    ViewFilters,
    cost_centre_colour,
    dispatch_view,
    history_view,
    live_view,
    overview_view,
)
from state.models import Alarm, LivePosition, ParkingEvent, PositionHistory, Trip

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def fix(device, *, age_s, lat=-1.29, lng=36.82, speed=0.0, ignition=None, parsed_id=None):
    at = NOW - timedelta(seconds=age_s)
    LivePosition.objects.create(
        device_id=device.id, parsed_id=parsed_id or device.id, occurred_at=at, received_at=at, point=Point(lng, lat),
        speed_kmh=speed, ignition=ignition, updated_at=at,
    )  # fmt: skip


@pytest.fixture
def vehicle_two_devices(make_device):
    tracker = make_device(imei="860000000000001", model="VL802", lifecycle=Lifecycle.PROVISIONED)
    dongle = make_device(imei="860000000000002", model="VL502")
    vehicle = Vehicle.objects.create(plate="KCA 123A")
    Device.objects.filter(id__in=[tracker.id, dongle.id]).update(vehicle=vehicle)
    return vehicle, tracker, dongle


def _features(payload):
    return payload["geojson"]["features"]


def test_it_shows_a_vehicle_with_two_devices_once_with_the_freshest_fix(db, vehicle_two_devices):
    _, tracker, dongle = vehicle_two_devices
    fix(tracker, age_s=300, speed=0)
    fix(dongle, age_s=20, speed=40, ignition=True)
    (feature,) = _features(live_view(ViewFilters(), now=NOW))
    assert feature["properties"]["imei"] == dongle.imei
    assert feature["properties"]["operational_state"] == "moving"
    assert feature["properties"]["plate_tail"] == "123A"


def test_it_breaks_a_tie_by_device_class(db, vehicle_two_devices):
    _, tracker, dongle = vehicle_two_devices
    fix(tracker, age_s=30)
    fix(dongle, age_s=30, parsed_id=99)
    (feature,) = _features(live_view(ViewFilters(), now=NOW))
    assert feature["properties"]["imei"] == tracker.imei  # VL802 (wired) ranks before VL502 (OBD dongle)


def test_it_prefers_the_device_class_when_neither_device_has_a_fix(db, vehicle_two_devices):
    (feature,) = _features(live_view(ViewFilters(), now=NOW))
    assert feature["properties"]["device_model"] == "VL802"
    assert feature["properties"]["operational_state"] == "unknown"
    assert feature["geometry"] is None


def test_it_leaves_decommissioned_devices_out_and_flags_suspended_ones(db, make_device):
    gone = make_device(plate="KBZ 001A")
    Device.objects.filter(id=gone.id).update(lifecycle=Lifecycle.ACTIVE)
    Device.objects.filter(id=gone.id).update(lifecycle=Lifecycle.SUSPENDED)
    Device.objects.filter(id=gone.id).update(lifecycle=Lifecycle.DECOMMISSIONED)
    resting = make_device(plate="KBZ 002A")
    Device.objects.filter(id=resting.id).update(lifecycle=Lifecycle.ACTIVE)
    Device.objects.filter(id=resting.id).update(lifecycle=Lifecycle.SUSPENDED)
    fix(resting, age_s=10)
    (feature,) = _features(live_view(ViewFilters(), now=NOW))
    assert feature["properties"]["plate"] == "KBZ002A"
    assert feature["properties"]["suspended"] is True
    assert "suspended" in feature["properties"]["style_class"].split()


def test_it_counts_states_and_speaks_slo_language(db, make_device):
    for n, age in enumerate((10, 30, 700, 90_000)):
        fix(make_device(plate=f"KDA {n}00A", lifecycle=Lifecycle.ACTIVE), age_s=age, ignition=False)
    payload = live_view(ViewFilters(), now=NOW)
    summary = payload["summary"]
    assert summary["by_state"] == {"moving": 0, "idling": 0, "parked": 3, "offline": 1, "unknown": 0}
    assert summary["by_freshness"] == {"fresh": 2, "stale": 0, "late": 2, "none": 0}
    assert summary["freshness_line"] == "Fleet below freshness SLO: 2 of 4 active vehicles behind"
    assert {m["metric"] for m in payload["slo_status"]["metrics"]} >= {"fix_freshness_pct_60s"}


def test_it_counts_freshness_over_the_slos_population(db, make_device):
    """The dashboard's line and fix_freshness_pct_60s count the same devices: active ones, a silent one behind."""
    from slo.registry import measure

    fix(make_device(plate="KDB 100A", lifecycle=Lifecycle.ACTIVE), age_s=10)  # active, fresh
    make_device(plate="KDB 200A", lifecycle=Lifecycle.ACTIVE)  # active, never reported: behind
    fix(make_device(plate="KDB 300A"), age_s=10)  # provisioned: not expected to report
    resting = make_device(plate="KDB 400A", lifecycle=Lifecycle.ACTIVE)
    Device.objects.filter(id=resting.id).update(lifecycle=Lifecycle.SUSPENDED)
    fix(resting, age_s=5000)  # suspended: not counted either
    summary = live_view(ViewFilters(), now=NOW)["summary"]
    assert summary["vehicles"] == 4
    assert summary["freshness_line"] == "Fleet below freshness SLO: 1 of 2 active vehicles behind"
    assert measure("fix_freshness_pct_60s", now=NOW, window=timedelta(minutes=5)).sample_size == 2


def test_it_filters_by_cost_centre_plate_as_typed_and_state(db, make_device):
    north = CostCentre.objects.create(name="North")
    a, b = make_device(plate="KCA 111A"), make_device(plate="KCB 222B")
    Vehicle.objects.filter(plate="KCA111A").update(cost_centre=north)
    fix(a, age_s=10, speed=50, ignition=True)
    fix(b, age_s=10)
    only = live_view(ViewFilters.from_json('{"cost_centre": "North"}'), now=NOW)
    assert [f["properties"]["plate"] for f in _features(only)] == ["KCA111A"]
    assert _features(only)[0]["properties"]["cost_centre_colour"] == cost_centre_colour("North")
    typed = live_view(ViewFilters.from_json('{"vehicle_numbers": ["kcb-222b"]}'), now=NOW)
    assert [f["properties"]["plate"] for f in _features(typed)] == ["KCB222B"]
    moving = live_view(ViewFilters.from_json('{"operational_state": ["moving"]}'), now=NOW)
    assert [f["properties"]["plate"] for f in _features(moving)] == ["KCA111A"]


def test_it_names_the_driver_on_duty(db, make_device):
    device = make_device(plate="KCC 333C")
    driver = Driver.objects.create(name="Achieng Otieno")
    DriverAssignment.objects.create(driver=driver, vehicle=device.vehicle, period=(NOW - timedelta(days=1), None))
    (feature,) = _features(live_view(ViewFilters(), now=NOW))
    assert feature["properties"]["driver"] == "Achieng Otieno"


@pytest.mark.parametrize("raw", ["{", "[1]", '{"colour": "red"}'])
def test_it_refuses_bad_filters_clearly(raw):
    with pytest.raises(ValueError, match=r"filter|JSON"):
        ViewFilters.from_json(raw)


def test_it_draws_history_trips_from_ok_fixes_within_31_days(db, make_device):
    device = make_device(plate="KCD 444D")
    start = NOW - timedelta(hours=2)
    for i in range(5):
        verdict = "jump" if i == 2 else "ok"
        PositionHistory.objects.create(
            parsed_id=100 + i, device_id=device.id, occurred_at=start + timedelta(minutes=i), received_at=NOW,
            lat=-1.29 + i * 0.001, lng=36.82 + (1 if verdict == "jump" else 0), verdict=verdict,
            point=Point(36.82 + (1 if verdict == "jump" else 0), -1.29 + i * 0.001),
        )  # fmt: skip
    Trip.objects.create(
        device_id=device.id, source="derived", started_at=start, ended_at=start + timedelta(minutes=4),
        distance_m=450, duration_s=240, idle_s=0, max_speed_kmh=30, start_point=Point(36.82, -1.29),
        end_point=Point(36.82, -1.286),
    )  # fmt: skip
    ParkingEvent.objects.create(device_id=device.id, source="derived", mode="parking", started_at=start + timedelta(
        minutes=5), duration_s=900, point=Point(36.82, -1.286))  # fmt: skip
    Alarm.objects.create(parsed_id=7, device_id=device.id, occurred_at=start, received_at=start, code="1",
                         normalised_name="sos", severity="critical", point=Point(36.82, -1.29))  # fmt: skip
    payload = history_view(ViewFilters(), since=NOW - timedelta(days=1), until=NOW, tolerance_m=1, now=NOW)
    assert (payload["summary"]["trips"], payload["summary"]["stops"], payload["summary"]["alarms"]) == (1, 1, 1)
    line = next(f for f in _features(payload) if f["properties"]["kind"] == "trip")
    assert line["geometry"]["type"] == "LineString"
    coordinates = line["geometry"]["coordinates"]
    assert coordinates[0] == [36.82, -1.29]
    assert coordinates[-1] == [36.82, -1.286]
    assert all(abs(lng - 36.82) < 1e-6 for lng, _ in coordinates)  # the jump (1 degree east) is not drawn
    with pytest.raises(ValueError, match="31 days"):
        history_view(ViewFilters(), since=NOW - timedelta(days=32), until=NOW)


def test_it_simplifies_long_tracks_by_the_tolerance(db, make_device):
    device = make_device(plate="KCE 555E")
    start = NOW - timedelta(hours=3)
    for i in range(200):  # an almost straight road with 1 m wiggles
        lat, lng = -1.29 + i * 0.0001, 36.82 + (0.00001 if i % 2 else 0)
        PositionHistory.objects.create(parsed_id=1000 + i, device_id=device.id, occurred_at=start + timedelta(
            seconds=10 * i), received_at=NOW, lat=lat, lng=lng, verdict="ok", point=Point(lng, lat))  # fmt: skip
    Trip.objects.create(device_id=device.id, source="derived", started_at=start,
                        ended_at=start + timedelta(seconds=1990), distance_m=2200, duration_s=1990)  # fmt: skip
    coarse = history_view(ViewFilters(), since=NOW - timedelta(days=1), until=NOW, tolerance_m=25, now=NOW)
    fine = history_view(ViewFilters(), since=NOW - timedelta(days=1), until=NOW, tolerance_m=0, now=NOW)

    def points(payload):
        return len(next(f for f in _features(payload) if f["properties"]["kind"] == "trip")["geometry"]["coordinates"])

    assert points(coarse) < 10 < points(fine)


def test_it_proposes_the_nearest_available_vehicle_first(db, make_device):
    near_offline, near, far = (make_device(plate=p) for p in ("KCF 001F", "KCF 002F", "KCF 003F"))
    fix(near_offline, age_s=200_000, lat=-1.2901)
    fix(near, age_s=30, lat=-1.2950)
    fix(far, age_s=30, lat=-1.3500)
    payload = dispatch_view(ViewFilters(), lat=-1.29, lng=36.82, limit=3, now=NOW)
    plates = [f["properties"]["plate"] for f in _features(payload) if f["properties"].get("plate")]
    assert plates == ["KCF002F", "KCF003F", "KCF001F"]
    assert payload["summary"]["nearest_available_m"] == pytest.approx(556, abs=5)


def test_it_groups_the_overview_by_cost_centre(db, make_device):
    north = CostCentre.objects.create(name="North")
    a = make_device(plate="KCG 100G")
    Vehicle.objects.filter(plate="KCG100G").update(cost_centre=north)
    fix(a, age_s=10, speed=30, ignition=True)
    make_device(plate="KCG 200G")
    Trip.objects.create(device_id=a.id, source="derived", started_at=NOW - timedelta(hours=1), distance_m=5000,
                        duration_s=600)  # fmt: skip
    summary = overview_view(ViewFilters(), now=NOW)["summary"]
    centres = {c["cost_centre"]: c for c in summary["cost_centres"]}
    assert centres["North"]["by_state"] == {"moving": 1}
    assert centres[None]["by_state"] == {"unknown": 1}
    assert summary["today"]["distance_km"] == 5.0


def test_it_lists_the_newest_alarms_of_the_last_day_in_the_overview(db, make_device):
    device = make_device(plate="KCH 100H")
    fix(device, age_s=10)
    for n, (hours, code, name, severity) in enumerate(
        ((1, "1", "SOS alert", "critical"), (3, "6", "Overspeed", "warning"), (30, "90", "Low battery", "info"))
    ):
        at = NOW - timedelta(hours=hours)
        Alarm.objects.create(parsed_id=900 + n, device_id=device.id, occurred_at=at, received_at=at,
                             code=code, name=name, normalised_name=name.lower(), severity=severity)  # fmt: skip
    recent = overview_view(ViewFilters(), now=NOW)["summary"]["recent_alarms"]
    assert [(a["plate"], a["name"], a["severity"]) for a in recent] == [
        ("KCH100H", "SOS alert", "critical"),
        ("KCH100H", "Overspeed", "warning"),
    ]  # newest first; the one from yesterday morning is out
    assert recent[0]["occurred_at"].endswith("+03:00")
