"""Owner of state_devices: per device, the latest heartbeat, ICCID / VIN and counts — recomputed from the reading
tables (same projector, same transaction, so always consistent with them). The latest fix is not here: it is
state_live_positions, which the positions projector owns; state.selectors reads both."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

_SUMMARY = """
SELECT d.id,
       hb.occurred_at, hb.power_level, hb.gsm_signal, hb.ignition, hb.charging,
       (SELECT e.value FROM state_device_events e WHERE e.device_id = d.id AND e.event = 'iccid'
         ORDER BY e.occurred_at DESC, e.parsed_id DESC LIMIT 1),
       (SELECT e.value FROM state_device_events e WHERE e.device_id = d.id AND e.event = 'vin'
         ORDER BY e.occurred_at DESC, e.parsed_id DESC LIMIT 1),
       greatest((SELECT max(occurred_at) FROM state_heartbeats x WHERE x.device_id = d.id),
                (SELECT max(occurred_at) FROM state_alarms x WHERE x.device_id = d.id),
                (SELECT max(occurred_at) FROM state_obd_readings x WHERE x.device_id = d.id),
                (SELECT max(occurred_at) FROM state_fuel_readings x WHERE x.device_id = d.id),
                (SELECT max(occurred_at) FROM state_temperature_readings x WHERE x.device_id = d.id),
                (SELECT max(occurred_at) FROM state_lbs_readings x WHERE x.device_id = d.id)),
       (SELECT count(*) FROM state_heartbeats x WHERE x.device_id = d.id),
       (SELECT count(*) FROM state_alarms x WHERE x.device_id = d.id),
       (SELECT count(*) FROM state_obd_readings x WHERE x.device_id = d.id)
       + (SELECT count(*) FROM state_fuel_readings x WHERE x.device_id = d.id)
       + (SELECT count(*) FROM state_temperature_readings x WHERE x.device_id = d.id)
       + (SELECT count(*) FROM state_lbs_readings x WHERE x.device_id = d.id)
  FROM {devices}
  LEFT JOIN LATERAL (SELECT * FROM state_heartbeats h WHERE h.device_id = d.id
                      ORDER BY h.occurred_at DESC, h.parsed_id DESC LIMIT 1) hb ON true
"""

_COLUMNS = (
    "device_id, last_heartbeat_at, power_level, gsm_signal, ignition, charging, iccid, vin, last_reading_at,"
    " heartbeats, alarms, readings"
)

_EVERY_DEVICE = """(
    SELECT device_id AS id FROM state_heartbeats UNION SELECT device_id FROM state_alarms
    UNION SELECT device_id FROM state_device_events UNION SELECT device_id FROM state_obd_readings
    UNION SELECT device_id FROM state_fuel_readings UNION SELECT device_id FROM state_temperature_readings
    UNION SELECT device_id FROM state_lbs_readings)"""


def devices_refresh(*, device_ids: Sequence[int | None]) -> None:
    ids = sorted({d for d in device_ids if d is not None})
    if not ids:
        return
    updates = ", ".join(f"{c.strip()} = EXCLUDED.{c.strip()}" for c in _COLUMNS.split(",")[1:])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO state_devices ({_COLUMNS})"
            + _SUMMARY.format(devices="unnest(%(ids)s::bigint[]) AS d(id)")
            + f" ON CONFLICT (device_id) DO UPDATE SET {updates}",
            {"ids": ids},
        )
        # A device none of whose readings remain has no summary.
        cursor.execute(
            "DELETE FROM state_devices s WHERE s.device_id = ANY(%(ids)s)"
            " AND s.last_reading_at IS NULL AND s.iccid IS NULL AND s.vin IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM state_device_events e WHERE e.device_id = s.device_id)",
            {"ids": ids},
        )


def devices_rebuild_all() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE state_devices")
        cursor.execute(
            f"INSERT INTO state_devices ({_COLUMNS})"
            + _SUMMARY.format(devices=f"(SELECT id FROM {_EVERY_DEVICE} u WHERE id IS NOT NULL) d")
        )
