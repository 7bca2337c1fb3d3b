"""Reads of the ops layer: what an ops action needs to know before it is written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from domain.models import Account, Device, Lifecycle, Vehicle


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
