"""Report exports for managers: trips, parking/idling, alarms, daily mileage, utilisation by cost centre.

Each report is one SQL query over the state tables joined to domain identity, streamed row by row (a server-side
cursor), rendered as CSV (streamed) or XLSX. Times are shown in DISPLAY_TIME_ZONE and the header row names
the zone. Trip totals count derived trips plus Jimi-reported trips that matched none, never both.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from openpyxl import Workbook

from state.dashboards.selectors import identity_where
from state.selectors import counted_sql

ROWS_PER_FETCH = 2000


@dataclass(frozen=True)
class ReportFilters:
    since: datetime
    until: datetime
    cost_centres: tuple[str, ...] = ()
    assigned_cities: tuple[str, ...] = ()
    vehicle_numbers: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()

    def where(self) -> tuple[str, dict[str, Any]]:
        """SQL conditions on the aliases v (vehicle), d (device), cc, ac, a — and their parameters."""
        return identity_where(
            cost_centres=self.cost_centres, assigned_cities=self.assigned_cities,
            vehicle_numbers=self.vehicle_numbers, accounts=self.accounts,
        )  # fmt: skip


IDENTITY_JOINS = """
  JOIN domain_devices d ON d.id = x.device_id
  JOIN domain_accounts a ON a.id = d.account_id
  LEFT JOIN domain_vehicles v ON v.id = d.vehicle_id
  LEFT JOIN domain_cost_centres cc ON cc.id = v.cost_centre_id
  LEFT JOIN domain_assigned_cities ac ON ac.id = v.assigned_city_id
"""

COUNTED = counted_sql("x")


def _local(column: str) -> str:
    return f"to_char({column} AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS')"


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    columns: tuple[str, ...]
    sql: str
    time_columns: tuple[str, ...] = field(default=())

    def header(self) -> list[str]:
        zone = settings.DISPLAY_TIME_ZONE
        return [f"{c} ({zone})" if c in self.time_columns else c for c in self.columns]


REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report(
            name="trips",
            title="Trips",
            columns=(
                "vehicle", "imei", "cost centre", "start", "end", "duration (min)", "distance (km)",
                "max speed (km/h)", "avg speed (km/h)", "idle (min)", "source", "reported distance (Jimi unit)",
                "start lat", "start lng", "end lat", "end lng",
            ),
            time_columns=("start", "end"),
            sql=f"""
SELECT v.plate, d.imei, cc.name, {_local("x.started_at")}, {_local("x.ended_at")},
       round((x.duration_s / 60)::numeric, 1), round((x.distance_m / 1000)::numeric, 3),
       round(x.max_speed_kmh::numeric, 1), round(x.avg_speed_kmh::numeric, 1), round((x.idle_s / 60)::numeric, 1),
       x.source, x.reported_distance,
       ST_Y(x.start_point::geometry), ST_X(x.start_point::geometry),
       ST_Y(x.end_point::geometry), ST_X(x.end_point::geometry)
  FROM state_trips x {IDENTITY_JOINS}
 WHERE x.started_at >= %(since)s AND x.started_at < %(until)s AND {COUNTED} {{filters}}
 ORDER BY v.plate NULLS LAST, d.imei, x.started_at""",
        ),
        Report(
            name="parking",
            title="Parking and idling",
            columns=("vehicle", "imei", "cost centre", "mode", "start", "end", "duration (min)", "lat", "lng",
                     "address", "source"),
            time_columns=("start", "end"),
            sql=f"""
SELECT v.plate, d.imei, cc.name, x.mode, {_local("x.started_at")}, {_local("x.ended_at")},
       round((x.duration_s / 60)::numeric, 1), ST_Y(x.point::geometry), ST_X(x.point::geometry), x.address, x.source
  FROM state_parking_events x {IDENTITY_JOINS}
 WHERE x.started_at >= %(since)s AND x.started_at < %(until)s
   AND {COUNTED} {{filters}}
 ORDER BY v.plate NULLS LAST, d.imei, x.started_at""",
        ),
        Report(
            name="alarms",
            title="Alarms",
            columns=("vehicle", "imei", "cost centre", "time", "code", "alarm", "severity", "cleared", "lat", "lng",
                     "speed (km/h)"),
            time_columns=("time",),
            sql=f"""
SELECT v.plate, d.imei, cc.name, {_local("x.occurred_at")}, x.code, coalesce(x.name, x.normalised_name),
       x.severity, x.cleared, ST_Y(x.point::geometry), ST_X(x.point::geometry), x.speed_kmh
  FROM state_alarms x {IDENTITY_JOINS}
 WHERE x.occurred_at >= %(since)s AND x.occurred_at < %(until)s {{filters}}
 ORDER BY v.plate NULLS LAST, d.imei, x.occurred_at""",
        ),
        Report(
            name="daily_mileage",
            title="Daily mileage per vehicle",
            columns=("vehicle", "cost centre", "day", "trips", "distance (km)", "driving (h)", "idle (h)",
                     "max speed (km/h)"),
            time_columns=("day",),
            sql=f"""
SELECT coalesce(v.plate, d.imei), cc.name, to_char(x.started_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD'), count(*),
       round((sum(x.distance_m) / 1000)::numeric, 3), round((sum(x.duration_s) / 3600)::numeric, 2),
       round((sum(x.idle_s) / 3600)::numeric, 2), round(max(x.max_speed_kmh)::numeric, 1)
  FROM state_trips x {IDENTITY_JOINS}
 WHERE x.started_at >= %(since)s AND x.started_at < %(until)s AND {COUNTED} {{filters}}
 GROUP BY 1, 2, 3
 ORDER BY 1, 3""",
        ),
        Report(
            name="utilisation",
            title="Utilisation by cost centre",
            columns=("cost centre", "vehicles", "vehicles that drove", "trips", "distance (km)", "driving (h)",
                     "idle (h)", "utilisation (% of vehicle-hours driving)", "cost", "currency"),
            sql=f"""
WITH trips AS (
  SELECT coalesce(cc.name, '(none)') AS centre, x.id AS trip_id, d.vehicle_id, x.distance_m, x.duration_s,
         x.idle_s, rate.per_km, rate.currency
    FROM state_trips x {IDENTITY_JOINS}
    LEFT JOIN LATERAL (
      SELECT r.per_km, r.currency FROM ops_cost_rates r
       WHERE r.cost_centre_id = v.cost_centre_id AND r.valid_from <= (x.started_at AT TIME ZONE %(tz)s)::date
       ORDER BY r.valid_from DESC LIMIT 1) rate ON true
   WHERE x.started_at >= %(since)s AND x.started_at < %(until)s AND {COUNTED} {{filters}}
), fleet AS (
  -- The vehicles the same filters select (a vehicle's account: any of its devices'), every cost centre kept.
  SELECT coalesce(cc.name, '(none)') AS centre, count(DISTINCT v.id) AS vehicles
    FROM domain_vehicles v
    LEFT JOIN domain_cost_centres cc ON cc.id = v.cost_centre_id
    LEFT JOIN domain_assigned_cities ac ON ac.id = v.assigned_city_id
    LEFT JOIN domain_devices d ON d.vehicle_id = v.id
    LEFT JOIN domain_accounts a ON a.id = d.account_id
   WHERE true {{filters}}
   GROUP BY 1
), centres AS (
  SELECT centre FROM fleet UNION SELECT centre FROM trips
)
SELECT c.centre, coalesce(f.vehicles, 0), count(DISTINCT t.vehicle_id), count(t.trip_id),
       round((coalesce(sum(t.distance_m), 0) / 1000)::numeric, 3),
       round((coalesce(sum(t.duration_s), 0) / 3600)::numeric, 2),
       round((coalesce(sum(t.idle_s), 0) / 3600)::numeric, 2),
       round((100 * coalesce(sum(t.duration_s), 0) / nullif(coalesce(f.vehicles, 0)
             * extract(epoch FROM %(until)s::timestamptz - %(since)s::timestamptz), 0))::numeric, 2),
       round(sum(t.distance_m / 1000 * t.per_km)::numeric, 2), min(t.currency)
  FROM centres c LEFT JOIN fleet f ON f.centre = c.centre LEFT JOIN trips t ON t.centre = c.centre
 GROUP BY c.centre, f.vehicles
 ORDER BY c.centre""",
        ),
    )
}  # fmt: skip


def report_rows(report: Report, filters: ReportFilters) -> Iterator[tuple[Any, ...]]:
    """The report's rows, fetched from a server-side cursor (a 90-day export never sits in memory whole)."""
    conditions, params = filters.where()
    sql = report.sql.format(filters=conditions)
    params.update(since=filters.since, until=filters.until, tz=settings.DISPLAY_TIME_ZONE)
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(ROWS_PER_FETCH):
            yield from rows


class _Echo:
    def write(self, value: str) -> str:
        return value


def report_csv(report: Report, filters: ReportFilters) -> Iterator[str]:
    """CSV lines, generated as the rows arrive (for StreamingHttpResponse)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(report.header())
    for row in report_rows(report, filters):
        yield writer.writerow(["" if v is None else v for v in row])


def report_xlsx(report: Report, filters: ReportFilters) -> io.BufferedRandom:
    """An XLSX file (write-only workbook, spooled to disk past a few MB), positioned at its start."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(report.title[:31])
    sheet.append(report.header())
    for row in report_rows(report, filters):
        sheet.append([float(v) if _is_decimal(v) else v for v in row])
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the response, which closes it
    workbook.save(out)
    out.seek(0)
    return out


def _is_decimal(value: Any) -> bool:
    return type(value).__name__ == "Decimal"
