"""IoT Hub pushes whose field lists were never published (docs/jimi.md): /pushobd, /pushfaultinfo, /pushoil,
/pushtem, /pushtripreport. Parsed defensively: imei and a time are required, recognised fields are read
leniently, and every field the device sent is kept under `extra`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, computed_field

from events.parsers.base import ParsedEvent
from events.parsers.fields import Imei, SoftFloat, SoftLat, SoftLng, SoftText, SoftTime, SoftUnit, Time
from events.parsers.items import DEVICE_IMEI, ItemModel
from events.parsers.kinds import reading_event


class SensorReading(ItemModel):
    """Base of the undocumented IoT Hub pushes (/pushobd, /pushoil, /pushtem, /pushtripreport, /pushfaultinfo):
    their field lists were never published, so every field is kept in `extra` and the fields we
    recognise are read leniently (an unreadable guess is null, not an item error)."""

    KEEP_ALL_FIELDS = True

    imei: Imei = Field(exclude=True, validation_alias=DEVICE_IMEI)
    reading_time: Time = Field(
        exclude=True, validation_alias=AliasChoices("gpsTime", "gateTime", "dataReportTime", "eventTime")
    )
    lat: SoftLat = None
    lng: SoftLng = None


class ObdReading(SensorReading):
    """kind obd (names from the jimi.device.obd.list / obd.fault field tables of the Open API)."""

    RECORD: ClassVar[Literal["data", "fault"]] = "data"

    odometer_km: SoftFloat = Field(None, validation_alias="odometerReading")
    device_mileage_km: SoftFloat = Field(None, validation_alias="deviceAccumulatedMileage")
    remaining_fuel: SoftFloat = Field(None, validation_alias="remainingFuel")
    remaining_fuel_pct: SoftFloat = Field(None, validation_alias="remainingFuelPercentage")
    coolant_temp_c: SoftFloat = Field(None, validation_alias="coolantTemperature")
    battery_voltage_raw: SoftFloat = Field(None, validation_alias="vehicleBatterVoltage")  # "118": unit unconfirmed
    rpm: SoftFloat = Field(None, validation_alias="currentRPM")
    speed_kmh: SoftFloat = Field(None, validation_alias="currentSpeed")
    vin: SoftText = None
    fault_code: SoftText = Field(None, validation_alias="faultCode")
    fault_detail: SoftText = Field(None, validation_alias="faultDetail")

    @computed_field
    @property
    def record(self) -> Literal["data", "fault"]:
        return self.RECORD


class ObdFault(ObdReading):
    RECORD = "fault"


FUEL_FIELDS = ("oil", "fuel", "oilValue", "fuelValue", "trackerOil", "oilLevel", "fuelLevel", "remainingFuel")


class DeviceFuelReading(SensorReading):
    """kind fuel, source "device" (IoT Hub /pushoil). Values may carry a unit: trackerOil "0.00L" (Q5)."""

    fuel_value: SoftFloat = Field(None, validation_alias=AliasChoices(*FUEL_FIELDS))
    fuel_unit: SoftUnit = Field(None, validation_alias=AliasChoices(*FUEL_FIELDS))
    fuel_pct: SoftFloat = Field(
        None, validation_alias=AliasChoices("oilPercent", "fuelPercent", "remainingFuelPercentage")
    )

    @computed_field
    @property
    def source(self) -> Literal["device"]:
        return "device"


class TemperatureReading(SensorReading):
    """kind temperature (IoT Hub /pushtem: temperature and humidity)."""

    temperature_c: SoftFloat = Field(None, validation_alias=AliasChoices("temperature", "temp", "tem"))
    humidity_pct: SoftFloat = Field(None, validation_alias=AliasChoices("humidity", "hum"))


class TripPush(SensorReading):
    """kind trip_report from IoT Hub /pushtripreport: same names as Trip, read leniently."""

    reading_time: Time = Field(
        exclude=True, validation_alias=AliasChoices("startTime", "gpsTime", "gateTime", "dataReportTime", "eventTime")
    )
    start_time: SoftTime = Field(None, validation_alias="startTime")
    end_time: SoftTime = Field(None, validation_alias="endTime")
    start_lat: SoftLat = Field(None, validation_alias="startLat")
    start_lng: SoftLng = Field(None, validation_alias="startLng")
    end_lat: SoftLat = Field(None, validation_alias="endLat")
    end_lng: SoftLng = Field(None, validation_alias="endLng")
    distance: SoftFloat = Field(None, validation_alias=AliasChoices("totalMileage", "distance", "mileage"))
    avg_speed_kmh: SoftFloat = Field(None, validation_alias=AliasChoices("averageSpeed", "avgSpeed"))
    max_speed_kmh: SoftFloat = Field(None, validation_alias="maxSpeed")
    travel_time: SoftText = Field(None, validation_alias=AliasChoices("travelTime", "runTimeSecond", "elapsed"))


PUSHOBD_VERSION = 1


def parse_pushobd_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return reading_event("obd", ObdReading.model_validate(item))


PUSHFAULTINFO_VERSION = 1


def parse_pushfaultinfo_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return reading_event("obd", ObdFault.model_validate(item))


PUSHOIL_VERSION = 1


def parse_pushoil_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return reading_event("fuel", DeviceFuelReading.model_validate(item))


PUSHTEM_VERSION = 1


def parse_pushtem_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return reading_event("temperature", TemperatureReading.model_validate(item))


PUSHTRIPREPORT_VERSION = 1


def parse_pushtripreport_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return reading_event("trip_report", TripPush.model_validate(item))
