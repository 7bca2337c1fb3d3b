"""jimi.user.device.list rows → device_meta (meta_type `device_info`): what the platform knows of each device of the
account — name, model, SIM, plate, VIN, driver, expiry. Unknown IMEIs are provisioned by the parse like any event's.

A device record has no device time. It is dated by the UTC day it was polled: the same record polled all day (every
few minutes) is one event, a changed record is a new one (kinds.device_record_event)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, computed_field

from events.parsers.base import ParsedEvent
from events.parsers.fields import Imei, OnOff, OptText, OptTime
from events.parsers.items import ItemModel
from events.parsers.kinds import device_record_event

DEVICE_LIST_VERSION = 1


class DeviceRecord(ItemModel):
    imei: Imei = Field(exclude=True, validation_alias="imei")
    value: OptText = Field(None, validation_alias="deviceName")  # the device's name, as device_meta's value
    model: OptText = Field(None, validation_alias="mcType")
    use_scope: OptText = Field(None, validation_alias="mcTypeUseScope")
    sim: OptText = None
    expires_at: OptTime = Field(None, validation_alias="expiration")
    activated_at: OptTime = Field(None, validation_alias="activationTime")
    plate: OptText = Field(None, validation_alias="vehicleNumber")
    vehicle_name: OptText = Field(None, validation_alias="vehicleName")
    vin: OptText = Field(None, validation_alias="carFrame")
    driver_name: OptText = Field(None, validation_alias="driverName")
    driver_phone: OptText = Field(None, validation_alias="driverPhone")
    enabled: OnOff = Field(None, validation_alias="enabledFlag")

    @computed_field
    @property
    def meta_type(self) -> Literal["device_info"]:
        return "device_info"


def parse_device_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return device_record_event(DeviceRecord.model_validate(row), received_at)
