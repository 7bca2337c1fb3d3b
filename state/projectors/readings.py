"""Owner of the reading tables: state_alarms, state_heartbeats, state_device_events, state_obd_readings,
state_fuel_readings, state_temperature_readings, state_lbs_readings, state_odometer_readings.

One row per parsed event, keyed by its id: a refresh deletes the rows of the given events and inserts what
events_parsed holds for them now (inserted, rewritten by a reparse, or gone). Each table is one SELECT of typed
columns out of the payload; they share this module because they share everything else.

Acknowledgements: an `alarm_ack` event (ops, events/parsers/ops.py) is dated at its alarm's time on the alarm's
device and names the alarm by its dedup key. An alarm row is inserted with its first acknowledgement looked up by
that key (one index probe: events_parsed_device_time), and an acknowledgement that changes re-inserts the alarms at
its device and time (`alarms_at`): either order of arrival, a reparse and a replay give the same row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from domain.plates import normalize_plate

_POINT = (
    "CASE WHEN abs((p.payload->>'lat')::float8) <= 90 AND abs((p.payload->>'lng')::float8) <= 180"
    " AND NOT ((p.payload->>'lat')::float8 = 0 AND (p.payload->>'lng')::float8 = 0)"
    " THEN ST_SetSRID(ST_MakePoint((p.payload->>'lng')::float8, (p.payload->>'lat')::float8), 4326)::geography END"
)


def _f(name: str) -> str:
    return f"(p.payload->>'{name}')::float8"


def _t(name: str) -> str:
    return f"p.payload->>'{name}'"


def _b(name: str) -> str:
    return f"(p.payload->>'{name}')::boolean"


def _i(name: str) -> str:
    return f"(p.payload->>'{name}')::float8::int"


# A WhatsApp fuel purchase or an odometer reading names a plate, maybe no device: the vehicle comes from the
# normalised plate.
_PLATES_JOIN = """
LEFT JOIN (SELECT pl.plate, v.id AS vehicle_id
             FROM jsonb_to_recordset(%(plates)s::jsonb) AS pl(plate text, normalised text)
             JOIN domain_vehicles v ON v.plate = pl.normalised) pl ON pl.plate = p.payload->>'plate'
"""
PLATE_KINDS = ("fuel", "odometer_reading")

# The alarm's first acknowledgement (see the module's docstring), from the log itself.
_ACK_JOIN = """
LEFT JOIN LATERAL (SELECT (a.payload->>'acknowledged_at')::timestamptz AS at, a.payload->>'acknowledged_by' AS by
                     FROM events_parsed a
                    WHERE a.kind = 'alarm_ack' AND a.device_id = p.device_id AND a.occurred_at = p.occurred_at
                      AND a.payload->>'alarm_key' = p.dedup_key
                    ORDER BY 1, a.id LIMIT 1) ack ON true
"""


@dataclass(frozen=True)
class ReadingTable:
    table: str
    kinds: tuple[str, ...]
    columns: dict[str, str]  # column → SQL expression over events_parsed p (and the join's aliases)
    join: str = ""


TABLES = (
    ReadingTable("state_alarms", ("alarm",), {
        "code": _t("code"), "name": _t("name"), "normalised_name": _t("normalised_name"),
        "severity": _t("severity"), "cleared": f"coalesce({_b('cleared')}, false)", "point": _POINT,
        "speed_kmh": _f("speed_kmh"), "msg_class": _i("msg_class"), "acknowledged_at": "ack.at",
        "acknowledged_by": "ack.by",
    }, join=_ACK_JOIN),
    ReadingTable("state_heartbeats", ("heartbeat",), {
        "power_level": _i("power_level"), "gsm_signal": _i("gsm_signal"), "ignition": _b("ignition"),
        "gps_positioned": _b("gps_positioned"), "charging": _b("charging"), "armed": _b("armed"),
        "oil_cut": _b("oil_cut"),
    }),
    ReadingTable("state_device_events", ("device_event", "device_meta"), {
        "event": "coalesce(p.payload->>'event', p.payload->>'meta_type')", "timezone": _t("timezone"),
        "value": _t("value"),
    }),
    ReadingTable("state_obd_readings", ("obd",), {
        "record": f"coalesce({_t('record')}, 'data')", "point": _POINT, "odometer_km": _f("odometer_km"),
        "device_mileage_km": _f("device_mileage_km"), "remaining_fuel": _f("remaining_fuel"),
        "remaining_fuel_pct": _f("remaining_fuel_pct"), "coolant_temp_c": _f("coolant_temp_c"),
        "battery_voltage_raw": _f("battery_voltage_raw"), "rpm": _f("rpm"), "speed_kmh": _f("speed_kmh"),
        "vin": _t("vin"), "fault_code": _t("fault_code"), "fault_detail": _t("fault_detail"),
    }),
    ReadingTable("state_fuel_readings", ("fuel",), {
        "source": f"coalesce({_t('source')}, 'device')", "vehicle_id": "pl.vehicle_id", "point": _POINT,
        "fuel_value": _f("fuel_value"), "fuel_unit": _t("fuel_unit"), "fuel_pct": _f("fuel_pct"),
        "external_id": _t("external_id"), "plate": _t("plate"), "litres": _f("litres"), "amount": _f("amount"),
        "currency": _t("currency"), "odometer_km": _f("odometer_km"), "station": _t("station"),
        "reported_by": _t("reported_by"),
    }, join=_PLATES_JOIN),
    ReadingTable("state_temperature_readings", ("temperature",), {
        "point": _POINT, "temperature_c": _f("temperature_c"), "humidity_pct": _f("humidity_pct"),
    }),
    ReadingTable("state_lbs_readings", ("lbs",), {
        "post_type": _t("post_type"), "mcc": _i("mcc"), "mnc": _i("mnc"),
        "cells": "coalesce(p.payload->'cells', '[]'::jsonb)",
    }),
    ReadingTable("state_odometer_readings", ("odometer_reading",), {
        "vehicle_id": "pl.vehicle_id", "plate": _t("plate"), "odometer_km": _f("odometer_km"),
        "source": _t("source"), "recorded_by": _t("recorded_by"),
        "recorded_at": "(p.payload->>'recorded_at')::timestamptz", "note": _t("note"),
    }, join=_PLATES_JOIN),
)  # fmt: skip


def _insert_sql(spec: ReadingTable, where: str, source: str = "events_parsed") -> str:
    names = ", ".join(spec.columns)
    exprs = ", ".join(spec.columns.values())
    return (
        f"INSERT INTO {spec.table} (parsed_id, device_id, occurred_at, received_at, {names})"
        f" SELECT p.id, p.device_id, p.occurred_at, p.received_at, {exprs} FROM {source} p {spec.join}"
        f" WHERE p.kind = ANY(%(kinds)s) AND {where}"
    )


def _plates(where: str, params: dict[str, Any], source: str = "events_parsed") -> str:
    """The plates in scope (fuel purchases, odometer readings), normalised in Python by the one function that owns
    plate syntax."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT p.payload->>'plate' FROM {source} p WHERE p.kind = ANY(%(plate_kinds)s)"
            f" AND p.payload->>'plate' IS NOT NULL AND {where}",
            {**params, "plate_kinds": list(PLATE_KINDS)},
        )
        rows = []
        for (plate,) in cursor.fetchall():
            try:
                rows.append({"plate": plate, "normalised": normalize_plate(plate)})
            except ValueError:
                continue  # not a plate: the row keeps its text, with no vehicle
    return json.dumps(rows)


def alarms_at(*, keys: Sequence[tuple[int | None, datetime]]) -> list[tuple[int, datetime]]:
    """(parsed id, time) of the alarm events at these (device, time) keys: what an acknowledgement there touches."""
    keys = [(device, at) for device, at in keys if device is not None]
    if not keys:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id, p.occurred_at FROM events_parsed p"
            " JOIN unnest(%s::bigint[], %s::timestamptz[]) AS k(device_id, occurred_at)"
            "   ON p.device_id = k.device_id AND p.occurred_at = k.occurred_at"
            " WHERE p.kind = 'alarm'",
            [[k[0] for k in keys], [k[1] for k in keys]],
        )
        return list(cursor.fetchall())


def readings_refresh(*, parsed_ids: Sequence[int], occurred: Sequence[datetime]) -> None:
    """Make the reading rows of these parsed events match events_parsed (insert, rewrite or drop)."""
    where = "p.id = ANY(%(ids)s) AND p.occurred_at = ANY(%(ats)s)"
    params = {"ids": list(parsed_ids), "ats": sorted(set(occurred))}
    _rewrite(where, params, delete_where="parsed_id = ANY(%(ids)s)")


def readings_rebuild(*, where: str, params: dict[str, Any], delete_where: str) -> int:
    """Replay: rebuild the rows matching `where` (events_parsed alias p) / `delete_where` (the table's columns).
    The log has no index on kind: its reading events are copied aside once instead of scanned once per table."""
    kinds = [kind for spec in TABLES for kind in spec.kinds]
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE replay_readings ON COMMIT DROP AS SELECT p.* FROM events_parsed p"
            f" WHERE p.kind = ANY(%(all_kinds)s) AND {where}",
            {**params, "all_kinds": kinds},
        )
        n: int = cursor.rowcount
    _rewrite("true", params, delete_where=delete_where, source="replay_readings")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE replay_readings")
    return n


def _rewrite(where: str, params: dict[str, Any], *, delete_where: str, source: str = "events_parsed") -> None:
    params = {**params, "plates": _plates(where, params, source)}
    with connection.cursor() as cursor:
        for spec in TABLES:
            cursor.execute(f"DELETE FROM {spec.table} WHERE {delete_where}", params)
            cursor.execute(_insert_sql(spec, where, source), {**params, "kinds": list(spec.kinds)})


def readings_truncate() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(spec.table for spec in TABLES))
