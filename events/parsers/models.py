"""Payload models of the kinds several sources share: the shape projectors read (`model_dump(mode="json")`).

Source-specific models live beside their parser (LBS in iothub/device.py, sensor readings in
iothub/sensors.py, reports in poll/reports.py, fuel purchases and drivers in hmac_json.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, AliasPath, BeforeValidator, Field, computed_field

from events.parsers import alarm_codes
from events.parsers.fields import (
    Heading,
    Hex,
    Imei,
    Lat,
    Lng,
    OnOff,
    OptFloat,
    OptInt,
    OptLat,
    OptLng,
    OptPositionType,
    OptText,
    OptTime,
    Retransmitted,
    Text,
    Time,
    to_lower_text,
)
from events.parsers.items import DEVICE_IMEI, ItemModel


class PositionFix(ItemModel):
    """kind position_fix. Aliases here are the IoT Hub /pushgps names (docs/jimi.md)."""

    imei: Imei = Field(exclude=True, validation_alias=DEVICE_IMEI)
    gps_time: Time = Field(exclude=True, validation_alias="gpsTime")
    lat: Lat  # lat = lng = 0 is kept: an expired device reports it (Q6), a projector decides
    lng: Lng
    speed_kmh: OptFloat = Field(None, validation_alias=AliasChoices("gpsSpeed", "speed"))
    heading: Heading = Field(None, validation_alias="direction")
    satellites: OptInt = Field(None, validation_alias=AliasChoices("satelliteNum", "gpsNum"))
    ignition: OnOff = Field(None, validation_alias=AliasChoices("acc", "accStatus", "ignition"))
    position_type: OptPositionType = Field(None, validation_alias=AliasChoices("postType", "posType"))
    retransmitted: Retransmitted = Field(False, validation_alias="gpsMode")
    gate_time: OptTime = Field(None, validation_alias="gateTime")
    altitude_m: OptFloat = Field(None, validation_alias="altitude")
    odometer_m: OptFloat = Field(None, validation_alias="distance")  # IoT Hub distance is metres (Q5)
    battery_pct: OptFloat = Field(None, validation_alias=AliasChoices("electQuantity", "elecQuantity"))


class Heartbeat(ItemModel):
    """kind heartbeat (IoT Hub /pushhb)."""

    imei: Imei = Field(exclude=True, validation_alias=DEVICE_IMEI)
    gate_time: Time = Field(exclude=True, validation_alias="gateTime")
    power_level: OptInt = Field(None, validation_alias="powerLevel")
    gsm_signal: OptInt = Field(None, validation_alias="gsmSign")
    ignition: OnOff = Field(None, validation_alias="acc")
    gps_positioned: OnOff = Field(None, validation_alias="gpsPos")
    charging: OnOff = Field(None, validation_alias="powerStatus")
    armed: OnOff = Field(None, validation_alias="fortify")
    oil_cut: OnOff = Field(None, validation_alias="oilEle")  # 0 = oil/electricity connected, 1 = cut


REMOVE_ALARM = "removeAlarmType"


class Alarm(ItemModel):
    """kind alarm. One model for all three spellings (Q3): IoT Hub `msg.alertType`, TSP push `alarmType`,
    alarm.list `alertTypeId` — and names `alarmName` / `alertTypeName` / `alarmTypeName`."""

    imei: Imei = Field(exclude=True, validation_alias=DEVICE_IMEI)
    alert_type: Text = Field(
        exclude=True, validation_alias=AliasChoices("alarmType", AliasPath("msg", "alertType"), "alertTypeId")
    )
    given_name: OptText = Field(
        None, exclude=True, validation_alias=AliasChoices("alarmName", "alertTypeName", "alarmTypeName")
    )
    removed_type: OptText = Field(None, exclude=True, validation_alias=AliasPath("msg", REMOVE_ALARM))
    lat: OptLat = Field(None, validation_alias=AliasChoices(AliasPath("msg", "lat"), "lat"))
    lng: OptLng = Field(None, validation_alias=AliasChoices(AliasPath("msg", "lng"), "lng"))
    speed_kmh: OptFloat = Field(
        None,
        validation_alias=AliasChoices(AliasPath("msg", "gpsSpeed"), AliasPath("msg", "speed"), "gpsSpeed", "speed"),
    )
    msg_class: OptInt = Field(None, validation_alias="msgClass")
    alarm_time: Time = Field(
        validation_alias=AliasChoices("alarmTime", AliasPath("msg", "alarmTime"), "alertTime", "gateTime")
    )
    gate_time: OptTime = Field(None, validation_alias="gateTime")

    @computed_field
    @property
    def cleared(self) -> bool:
        # IoT Hub ends an alarm with alertType=removeAlarmType and the ended type in msg.removeAlarmType.
        return self.alert_type == REMOVE_ALARM

    @computed_field
    @property
    def code(self) -> str:
        return (self.removed_type or self.alert_type) if self.cleared else self.alert_type

    @computed_field
    @property
    def name(self) -> str | None:
        return self.given_name or alarm_codes.table_name(self.code, self.msg_class)

    @computed_field
    @property
    def normalised_name(self) -> str:
        return alarm_codes.normalised_name(self.code, self.given_name, self.msg_class)

    @computed_field
    @property
    def severity(self) -> alarm_codes.Severity:
        return alarm_codes.severity(self.code, self.msg_class, self.cleared)


class DeviceEvent(ItemModel):
    """kind device_event (IoT Hub /pushevent)."""

    imei: Imei = Field(exclude=True, validation_alias=DEVICE_IMEI)
    gate_time: Time = Field(exclude=True, validation_alias="gateTime")
    event: Annotated[Literal["login", "logout"], BeforeValidator(to_lower_text)] = Field(validation_alias="type")
    timezone: OptText = None  # the device's zone (e.g. GMT+08:00); gateTime itself is UTC


META_FIELDS = ("iccid", "ICCID", "vin", "VIN", "value")


class DeviceMeta(ItemModel):
    """kind device_meta: ICCID/VIN updates (IoT Hub /pushalarm type ICCID|VIN)."""

    imei: Imei = Field(exclude=True, validation_alias=DEVICE_IMEI)
    gate_time: OptTime = Field(None, exclude=True, validation_alias="gateTime")
    meta_type: Annotated[Literal["iccid", "vin"], BeforeValidator(to_lower_text)] = Field(validation_alias="type")
    # Where the value sits in these items is not documented by Jimi: try the obvious places.
    value: OptText = Field(
        None,
        validation_alias=AliasChoices(*META_FIELDS, *(AliasPath("msg", name) for name in META_FIELDS)),
    )


class RawDeviceData(ItemModel):
    """kind device_meta: raw device data (TSP jimi.open.instruction.raw.receive); same shape as DeviceMeta."""

    imei: Imei = Field(exclude=True, validation_alias="imei")
    value: Hex = Field(validation_alias="raw_data")

    @computed_field
    @property
    def meta_type(self) -> Literal["raw_data"]:
        return "raw_data"
