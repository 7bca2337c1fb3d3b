"""Contracts of the domain's API (domain/api.py): `XxxIn` what a client sends, `XxxOut` what it gets back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from ninja import Field, Schema
from pydantic import StringConstraints

from domain.models import Device, Lifecycle

# Free text from a client: bounded, and never a NUL (PostgreSQL text cannot hold one; it would be a 500).
FilterText = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")]
ImeiText = Annotated[str, StringConstraints(pattern=r"^\d{14,17}$")]
ReasonText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=r"^[^\x00]*$")
]


class ErrorOut(Schema):
    detail: str
    code: str


class DeviceFiltersIn(Schema):
    """Filters of the device list; each one given narrows it (all of them: AND)."""

    account: FilterText | None = Field(None, description="Account name (case-insensitive)")
    lifecycle: Lifecycle | None = None
    imei: FilterText | None = Field(None, description="IMEI prefix")
    plate: FilterText | None = Field(None, description="Part of the plate, any spacing or case")
    has_vehicle: bool | None = Field(None, description="Only devices on a vehicle (true) or on none (false)")
    cost_centre: FilterText | None = Field(None, description="Cost centre name of the device's vehicle")
    assigned_city: FilterText | None = Field(None, description="Assigned city of the device's vehicle")


class DeviceOut(Schema):
    imei: str
    name: str
    model: str
    account: str
    plate: str | None
    cost_centre: str | None
    assigned_city: str | None
    lifecycle: Lifecycle
    lifecycle_changed_at: datetime
    lifecycle_reason: str

    @staticmethod
    def resolve_account(device: Device) -> str:
        return device.account.name

    @staticmethod
    def resolve_plate(device: Device) -> str | None:
        return device.vehicle.plate if device.vehicle else None

    @staticmethod
    def resolve_cost_centre(device: Device) -> str | None:
        centre = device.vehicle.cost_centre if device.vehicle else None
        return centre.name if centre else None

    @staticmethod
    def resolve_assigned_city(device: Device) -> str | None:
        city = device.vehicle.assigned_city if device.vehicle else None
        return city.name if city else None


class LifecycleIn(Schema):
    to: Lifecycle
    reason: ReasonText = Field(..., description="Why (kept in the device's history)")
