"""Operational state and freshness, computed at read time against slo_targets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from domain.models import Device
from slo.models import SloTarget
from slo.thresholds import thresholds_forget
from state.selectors import StateThresholds, operational_state, vehicle_states
from state.tests.drives import Ev, feed, fix

T = StateThresholds(fresh_s=60, stale_s=600, offline_s=86400, moving_kmh=5)


@pytest.fixture(autouse=True)
def _fresh_thresholds():
    thresholds_forget()
    yield
    thresholds_forget()


def _state(now, **kw):
    args = {"fix_at": None, "fix_speed_kmh": None, "fix_ignition": None, "heartbeat_at": None,
            "heartbeat_ignition": None, **kw}  # fmt: skip
    return operational_state(now=now, t=T, **args)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, "unknown"),
        ({"fix_at": -30, "fix_speed_kmh": 40, "fix_ignition": True}, "moving"),
        ({"fix_at": -30, "fix_speed_kmh": 40, "fix_ignition": False}, "parked"),  # towed, or GPS drift
        ({"fix_at": -30, "fix_speed_kmh": 0, "fix_ignition": True}, "idling"),
        ({"fix_at": -30, "fix_speed_kmh": 0, "fix_ignition": False}, "parked"),
        ({"fix_at": -1200, "fix_speed_kmh": 40, "heartbeat_at": -10, "heartbeat_ignition": False}, "parked"),
        ({"fix_at": -1200, "fix_speed_kmh": 0, "fix_ignition": False, "heartbeat_at": -10,
          "heartbeat_ignition": True}, "idling"),
        ({"fix_at": -90000, "fix_speed_kmh": 40}, "offline"),
        ({"fix_at": -90000, "heartbeat_at": -60}, "parked"),
    ],
)  # fmt: skip
def test_it_derives_the_operational_state(kw, expected):
    now = timezone.now()
    for key in ("fix_at", "heartbeat_at"):
        if key in kw:
            kw[key] = now + timedelta(seconds=kw[key])
    assert _state(now, **kw) == expected


@pytest.mark.django_db
def test_it_flips_state_and_freshness_when_a_threshold_row_changes(make_device, account):
    d = make_device()
    now = timezone.now()
    feed([fix(d.id, now - timedelta(seconds=120), -1.29, 36.82, 12.0, received_at=now)], account_id=account.id)
    [before] = vehicle_states(device_ids=[d.id], now=now)
    assert (before.state, before.freshness) == ("moving", "stale")
    SloTarget.objects.filter(metric="moving_speed_kmh").update(threshold=20)
    SloTarget.objects.filter(metric="fresh_fix_max_age_s").update(threshold=300)
    thresholds_forget()
    [after] = vehicle_states(device_ids=[d.id], now=now)
    assert (after.state, after.freshness) == ("idling", "fresh")


@pytest.mark.django_db
def test_it_leaves_out_decommissioned_devices_and_flags_suspended_ones(make_device, account):
    kept, suspended, gone = make_device(), make_device(), make_device()
    for device, steps in ((suspended, ["active", "suspended"]), (gone, ["active", "suspended", "decommissioned"])):
        for step in steps:
            Device.objects.filter(id=device.id).update(lifecycle=step)
    now = timezone.now()
    feed([Ev("heartbeat", suspended.id, now, {"ignition": False})], account_id=account.id)
    states = {s.device_id: s for s in vehicle_states(account_id=account.id, now=now)}
    assert set(states) == {kept.id, suspended.id}
    assert states[suspended.id].suspended
    assert not states[kept.id].suspended
    assert (states[kept.id].state, states[kept.id].freshness) == ("unknown", "none")
    assert states[suspended.id].state == "parked"
