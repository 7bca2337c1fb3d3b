"""The SLO targets and operational thresholds every installation starts with.

Seeded by a migration and again after every `migrate`/test flush (post_migrate): rows that exist are never
overwritten, since ops may have tuned them. Trip and parking parameters default to Traccar's (minimum trip
200 m / 180 s, stop gap 3600 s, minimum parking 300 s).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

MIN = timedelta(minutes=1)

TARGETS = [
    # metric, kind, threshold, comparison, unit, window, business hours, description
    ("fix_freshness_pct_60s", "slo", 95, ">=", "%", 5 * MIN, True,
     "Share of active devices' time in the window with a fix at most fresh_fix_max_age_s old."),
    ("trip_lag_p95_sec", "slo", 600, "<=", "s", 60 * MIN, False,
     "p95 of the time from a trip's end (device time) to its row in state_trips."),
    ("route_p95_ms", "slo", 500, "<=", "ms", 5 * MIN, False, "p95 latency of the routing endpoint."),
    ("parser_lag_p95_sec", "slo", 30, "<=", "s", 5 * MIN, False,
     "p95 of received_at → parsed_at over raw events received in the window."),
    ("contract_drift_days", "slo", 1, "<=", "days", 24 * 60 * MIN, False,
     "Days since the last contract check that found Jimi's responses matching our models."),
    # Operational state and freshness
    ("fresh_fix_max_age_s", "threshold", 60, "<=", "s", None, False,
     "A fix at most this old is fresh (the freshness SLO and the per-vehicle freshness class)."),
    ("stale_fix_max_age_s", "threshold", 600, "<=", "s", None, False,
     "Older than fresh but at most this old is stale; older is late."),
    ("offline_after_s", "threshold", 86400, "<=", "s", None, False,
     "No fix and no heartbeat for this long: the vehicle is offline."),
    ("moving_speed_kmh", "threshold", 5, ">=", "km/h", None, False, "At or above this speed a fix is moving."),
    ("standstill_radius_m", "threshold", 10, "<=", "m", None, False,
     "A slow fix within this distance of a standstill's first fix adds no trip distance (GPS jitter)."),
    # Trips and parking (Traccar's defaults)
    ("trip_min_distance_m", "threshold", 200, ">=", "m", None, False, "Shorter movements are not trips."),
    ("trip_min_duration_s", "threshold", 180, ">=", "s", None, False, "Shorter movements are not trips."),
    ("trip_stop_gap_s", "threshold", 3600, ">=", "s", None, False,
     "A gap without fixes this long closes a trip at its last fix."),
    ("parking_min_duration_s", "threshold", 300, ">=", "s", None, False,
     "A stop at least this long is a parking (ignition off) or an idling (ignition on)."),
    # Fix quality verdicts
    ("fix_max_speed_kmh", "threshold", 250, "<=", "km/h", None, False,
     "A fix whose implied speed from both neighbours exceeds this is an implausible jump."),
    ("fix_future_tolerance_s", "threshold", 300, "<=", "s", None, False,
     "A fix dated further than this past its arrival is in the future."),
    ("trip_max_duration_s", "threshold", 86400, "<=", "s", None, False,
     "A trip still going after this long is split in two (a tracker that never reports a stop, GPS drift): keeps "
     "re-folding a moving vehicle's trip bounded work."),
    # Roads: routing
    ("route_snap_max_m", "threshold", 200, "<=", "m", None, False,
     "A route end farther than this from every road segment is off the graph (the routing endpoint answers 422)."),
    ("route_speed_min_samples", "threshold", 10, ">=", "samples", None, False,
     "A segment's observed speed band costs routes once it holds this many map-matched samples; below, maxspeed "
     "or the class speed."),
    # Roads: map matching (Newson & Krumm's hidden Markov model, geo/matching/)
    ("mapmatch_sigma_m", "threshold", 8, "<=", "m", None, False,
     "Standard deviation of GPS error: the emission probability is a Gaussian of the fix-to-road distance."),
    ("mapmatch_beta_m", "threshold", 3, "<=", "m", None, False,
     "Scale of the transition probability: an exponential of |route distance - great-circle distance|."),
    ("mapmatch_search_radius_m", "threshold", 50, "<=", "m", None, False,
     "Road segments within this distance of a fix are its candidates; a fix with none is skipped."),
    ("mapmatch_max_gap_s", "threshold", 180, "<=", "s", None, False,
     "Fixes further apart in time are matched as separate chains (no route is guessed across the gap)."),
    ("mapmatch_band_min_confidence", "threshold", 0.8, ">=", "", None, False,
     "A whole-segment traversal matched with at least this confidence counts in the segment's speed band."),
    # Roads: geocoding from our own roads (when no online geocoder answers)
    ("geocode_offline_max_m", "threshold", 100, "<=", "m", None, False,
     "The offline address names the nearest named road only when it is at most this far from the point."),
    ("geocode_junction_max_m", "threshold", 300, "<=", "m", None, False,
     "The offline address names the nearest crossing street (\"40 m from ...\") only when it is at most this far."),
    # Ops: tickets (hours from opening to the SLA deadline, per priority; time spent waiting is added)
    ("ticket_sla_urgent_h", "threshold", 4, "<=", "h", None, False, "SLA of an urgent ticket."),
    ("ticket_sla_high_h", "threshold", 8, "<=", "h", None, False, "SLA of a high-priority ticket."),
    ("ticket_sla_normal_h", "threshold", 24, "<=", "h", None, False, "SLA of a normal ticket."),
    ("ticket_sla_low_h", "threshold", 72, "<=", "h", None, False, "SLA of a low-priority ticket."),
    # Ops: maintenance (a vehicle is "due soon" this close to its next service, by km or by days)
    ("maintenance_due_soon_km", "threshold", 500, "<=", "km", None, False,
     "A vehicle within this distance of its next service (odometer plus derived distance) is due soon."),
    ("maintenance_due_soon_days", "threshold", 14, "<=", "days", None, False,
     "A vehicle within this many days of its next service date is due soon."),
    # Ops: automations (alarm tickets, device checks)
    ("alarm_ticket_max_age_s", "threshold", 86400, "<=", "s", None, False,
     "A watched alarm (SOS, power cut, tamper, collision) older than this opens no ticket (a first run, old history)."),
    ("device_check_silent_s", "threshold", 172800, "<=", "s", None, False,
     "An active device with no fix, heartbeat or reading for this long opens a device-check ticket."),
]  # fmt: skip


def slo_targets_seed(model: Any) -> int:
    """Create the missing default rows with `model` (the real or a migration's historical SloTarget)."""
    created = 0
    for metric, kind, value, comparison, unit, window, business, description in TARGETS:
        _, made = model.objects.get_or_create(
            metric=metric,
            defaults={
                "kind": kind, "threshold": value, "comparison": comparison, "unit": unit, "window": window,
                "business_hours_only": business, "description": description,
            },
        )  # fmt: skip
        created += made
    return created
