"""Reads of the ops layer: what an ops action needs to know before it is written, and what is due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone

from domain.models import Account, Device, Lifecycle, Vehicle
from slo.thresholds import threshold


class AccountUnknown(LookupError):
    pass


def vehicle_account_id(vehicle: Vehicle) -> int:
    """The account a vehicle's ops events are filed under: its tracker's (an operating one first, the newest), else
    the only account there is. A vehicle has no account of its own; events do (events_parsed.account)."""
    devices = Device.objects.filter(vehicle=vehicle).order_by("-created_at", "-id")
    account_id = (
        devices.exclude(lifecycle=Lifecycle.DECOMMISSIONED).values_list("account_id", flat=True).first()
        or devices.values_list("account_id", flat=True).first()
    )
    if account_id is not None:
        return account_id
    accounts = list(Account.objects.values_list("id", flat=True)[:2])
    if len(accounts) == 1:
        return accounts[0]
    raise AccountUnknown(f"{vehicle.plate} has no tracker, so its account is unknown: fit a device to it first")


@dataclass(frozen=True)
class AlarmRef:
    """An alarm as an acknowledgement names it: its row, and its parsed event's key, device and account."""

    parsed_id: int
    occurred_at: datetime
    dedup_key: str
    imei: str
    account_id: int
    normalised_name: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None


def alarm_refs(*, parsed_ids: list[int]) -> dict[int, AlarmRef]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.parsed_id, a.occurred_at, p.dedup_key, d.imei, p.account_id, a.normalised_name,"
            "       a.acknowledged_at, a.acknowledged_by"
            "  FROM state_alarms a"
            "  JOIN events_parsed p ON p.id = a.parsed_id AND p.occurred_at = a.occurred_at"
            "  JOIN domain_devices d ON d.id = a.device_id"
            " WHERE a.parsed_id = ANY(%s)",
            [parsed_ids],
        )
        return {row[0]: AlarmRef(*row) for row in cursor.fetchall()}


# --- Maintenance due ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaintenanceRow:
    """A vehicle's next service, from its latest service entry, against its odometer now: the latest odometer
    reading (state_odometer_readings: read, corrected, or noted at a service) plus the distance its devices' derived
    trips covered since that reading."""

    vehicle_id: int
    plate: str
    service_id: int
    service_date: date
    service_km: float | None
    next_due_km: float | None
    next_due_date: date | None
    reading_km: float | None
    reading_at: datetime | None
    driven_since_km: float
    today: date
    soon_km: float
    soon_days: float

    @property
    def odometer_km(self) -> float | None:
        return None if self.reading_km is None else self.reading_km + self.driven_since_km

    @property
    def km_left(self) -> float | None:
        if self.next_due_km is None or self.odometer_km is None:
            return None
        return self.next_due_km - self.odometer_km

    @property
    def days_left(self) -> int | None:
        return None if self.next_due_date is None else (self.next_due_date - self.today).days

    @property
    def status(self) -> str:
        """overdue (past the km or the date), due soon (within maintenance_due_soon_km / _days), or ok."""
        km, days = self.km_left, self.days_left
        if (km is not None and km <= 0) or (days is not None and days <= 0):
            return "overdue"
        if (km is not None and km <= self.soon_km) or (days is not None and days <= self.soon_days):
            return "due soon"
        return "ok"

    @property
    def due(self) -> bool:
        return self.status != "ok"


_MAINTENANCE = """
WITH last_service AS (
    SELECT DISTINCT ON (s.vehicle_id) s.vehicle_id, s.id, s.service_date, s.odometer_km, s.next_due_km, s.next_due_date
      FROM ops_service_logs s
     WHERE s.next_due_km IS NOT NULL OR s.next_due_date IS NOT NULL OR %(all)s
     ORDER BY s.vehicle_id, s.service_date DESC, s.id DESC
)
SELECT v.id, v.plate, ls.id, ls.service_date, ls.odometer_km, ls.next_due_km, ls.next_due_date, lr.odometer_km,
       lr.occurred_at,
       coalesce((SELECT sum(t.distance_m) FROM state_trips t JOIN domain_devices d ON d.id = t.device_id
                  WHERE d.vehicle_id = v.id AND t.source = 'derived' AND t.started_at >= lr.occurred_at), 0) / 1000.0
  FROM last_service ls
  JOIN domain_vehicles v ON v.id = ls.vehicle_id
  LEFT JOIN LATERAL (SELECT r.odometer_km, r.occurred_at FROM state_odometer_readings r
                      WHERE r.vehicle_id = v.id ORDER BY r.occurred_at DESC, r.parsed_id DESC LIMIT 1) lr ON true
 WHERE %(vehicle)s::bigint IS NULL OR v.id = %(vehicle)s::bigint
 ORDER BY v.plate
"""


def maintenance_plan(*, now: datetime | None = None, vehicle_id: int | None = None) -> list[MaintenanceRow]:
    """Every vehicle whose latest service entry says when the next is due, most urgent first (overdue, then due soon,
    then by km and days left)."""
    now = now or timezone.now()
    today = now.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE)).date()
    soon_km, soon_days = threshold("maintenance_due_soon_km"), threshold("maintenance_due_soon_days")
    with connection.cursor() as cursor:
        cursor.execute(_MAINTENANCE, {"all": False, "vehicle": vehicle_id})
        names = ("vehicle_id", "plate", "service_id", "service_date", "service_km", "next_due_km", "next_due_date",
                 "reading_km", "reading_at", "driven_since_km")  # fmt: skip
        rows = [
            MaintenanceRow(**dict(zip(names, row, strict=True)), today=today, soon_km=soon_km, soon_days=soon_days)
            for row in cursor.fetchall()
        ]
    rank = {"overdue": 0, "due soon": 1, "ok": 2}
    big = float("inf")
    return sorted(
        rows,
        key=lambda r: (rank[r.status], r.km_left if r.km_left is not None else big, r.days_left or big, r.plate),
    )


def ticket_alarm_keys() -> list[tuple[int, str, datetime]]:
    """The parsed events tickets name as their alarm, now or in their history: (id, dedup key, device time). A backup
    keeps these, so that a restore which parses the log again — giving the same events other ids — can point each
    ticket at its alarm's new id (ops.services.ticket_alarms_renumber)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id, p.dedup_key, p.occurred_at FROM events_parsed p"
            " WHERE p.id IN (SELECT alarm_parsed_id FROM ops_tickets WHERE alarm_parsed_id IS NOT NULL"
            "                UNION SELECT alarm_parsed_id FROM ops_ticketevent WHERE alarm_parsed_id IS NOT NULL)"
            " ORDER BY p.id"
        )
        return [(r[0], r[1], r[2]) for r in cursor.fetchall()]
