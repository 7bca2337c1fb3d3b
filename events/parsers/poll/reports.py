"""Platform reports: report.parking (parking and idling) and report.trips (type=list); docs/jimi.md."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, Field, computed_field

from events.parsers.base import ParsedEvent
from events.parsers.fields import Imei, OnOff, OptFloat, OptLat, OptLng, OptText, OptTime, Time
from events.parsers.items import ItemModel
from events.parsers.kinds import parking_event, trip_event


class Trip(ItemModel):
    """kind trip_report (poll report.trips dayData row)."""

    imei: Imei = Field(exclude=True, validation_alias=AliasChoices("imei", "deviceImei"))
    start_time: Time = Field(validation_alias="startTime")
    end_time: OptTime = Field(None, validation_alias="endTime")
    start_lat: OptLat = Field(None, validation_alias="startLat")
    start_lng: OptLng = Field(None, validation_alias="startLng")
    end_lat: OptLat = Field(None, validation_alias="endLat")
    end_lng: OptLng = Field(None, validation_alias="endLng")
    distance: OptFloat = Field(None, validation_alias=AliasChoices("totalMileage", "distance", "mileage"))
    avg_speed_kmh: OptFloat = Field(None, validation_alias=AliasChoices("averageSpeed", "avgSpeed"))
    max_speed_kmh: OptFloat = Field(None, validation_alias="maxSpeed")
    travel_time: OptText = Field(None, validation_alias=AliasChoices("travelTime", "runTimeSecond", "elapsed"))


class Parking(ItemModel):
    """kind parking_report (poll report.parking row)."""

    imei: Imei = Field(exclude=True, validation_alias="imei")
    start_time: Time = Field(validation_alias="startTime")
    end_time: OptTime = Field(None, validation_alias="endTime")
    duration_s: OptFloat = Field(None, validation_alias="durSecond")
    stop_s: OptFloat = Field(None, validation_alias="stopSecond")
    lat: OptLat = None
    lng: OptLng = None
    address: OptText = Field(None, validation_alias="addr")
    acc_on: OnOff = Field(None, validation_alias="acc")

    @computed_field
    @property
    def mode(self) -> Literal["idling", "parking"] | None:
        # The report's acc_type: on = engine running while stopped (idling), off = parked.
        return None if self.acc_on is None else ("idling" if self.acc_on else "parking")


PARKING_VERSION = 1


def parse_parking_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # Unlike every other method, startTime/endTime here are ISO-8601 "2022-12-10T01:05:33.000Z" (Q1).
    return parking_event(Parking.model_validate(row))


TRIPS_VERSION = 1


def trip_rows(document: dict[str, Any]) -> list[Any]:
    """data.dayList[].tripsData[].dayData[]: one row per trip. (type=day summaries, data.datDatas, are
    daily totals, not trips: not parsed.)"""
    data = document.get("data") or {}
    days = data.get("dayList") or [] if isinstance(data, dict) else []
    return [
        trip
        for device in days
        if isinstance(device, dict)
        for day in device.get("tripsData") or []
        if isinstance(day, dict)
        for trip in day.get("dayData") or []
    ]


def parse_trip_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # No success example exists for this report (Jimi published none): the time parser takes both time formats.
    return trip_event(Trip.model_validate(row))


MILEAGE_VERSION = 1


def parse_mileage_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # jimi.device.track.mileage result[]: one trip per row (runTimeSecond, or `elapsed` in Jimi's example; Q3);
    # data[] holds per-device totals, not trips. The same trip from report.trips shares its key.
    return trip_event(Trip.model_validate(row))
