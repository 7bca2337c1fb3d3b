"""Payload model → ParsedEvent, one builder per kind. The dedup rule of each kind lives here.

A key always covers kind, imei and the device's time (see base.dedup_key); the extra key fields are the
ones that tell two events of the same device and second apart. Values are hashed after coercion, so
"10", 10 and "10.0" give the same key (Q2).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from events.parsers.base import ParsedEvent, make_event
from events.parsers.models import Alarm, DeviceEvent, DeviceMeta, Heartbeat, PositionFix, RawDeviceData

if TYPE_CHECKING:  # the source modules import this one: type-only imports avoid a cycle
    from events.parsers.hmac_json import DriverRecord, FuelPurchase
    from events.parsers.iothub.device import LbsReport
    from events.parsers.iothub.sensors import SensorReading
    from events.parsers.ops import AlarmAck, DriverAssignment, OdometerReading
    from events.parsers.poll.devices import DeviceRecord
    from events.parsers.poll.reports import Parking, Trip


def position_event(fix: PositionFix) -> ParsedEvent:
    # One fix per device and device second: the same fix pushed, polled (track.list) or imported dedups.
    return make_event("position_fix", fix.imei, fix.model_dump(mode="json"), device_time=fix.gps_time)


def heartbeat_event(heartbeat: Heartbeat) -> ParsedEvent:
    return make_event("heartbeat", heartbeat.imei, heartbeat.model_dump(mode="json"), device_time=heartbeat.gate_time)


def alarm_event(alarm: Alarm) -> ParsedEvent:
    # TSP push and alarm.list share alarm ids, so the same alarm seen by both dedups (docs/jimi.md, "Duplicates").
    payload = alarm.model_dump(mode="json")
    return make_event("alarm", alarm.imei, payload, device_time=alarm.alarm_time, key=(alarm.code, alarm.cleared))


def device_event_event(event: DeviceEvent) -> ParsedEvent:
    payload = event.model_dump(mode="json")
    return make_event("device_event", event.imei, payload, device_time=event.gate_time, key=(event.event,))


def lbs_event(report: LbsReport) -> ParsedEvent:
    return make_event("lbs", report.imei, report.model_dump(mode="json"), device_time=report.gate_time)


def device_meta_event(meta: DeviceMeta | RawDeviceData, received_at: datetime) -> ParsedEvent:
    # TSP raw data has no device time: the key then rests on the value alone (received_at differs per push).
    device_time = meta.gate_time if isinstance(meta, DeviceMeta) else None
    payload = meta.model_dump(mode="json")
    key = (payload["meta_type"], payload["value"])
    return make_event("device_meta", meta.imei, payload, device_time=device_time, received_at=received_at, key=key)


def device_record_event(record: DeviceRecord, received_at: datetime) -> ParsedEvent:
    # The device list carries no device time and is polled every few minutes: dated by the UTC day of the poll,
    # with the whole record in the key, the same record all day is one event and a changed record a new one.
    payload = record.model_dump(mode="json")
    day = received_at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return make_event("device_meta", record.imei, payload, device_time=day, key=(payload,))


def reading_event(kind: str, reading: SensorReading) -> ParsedEvent:
    # Undocumented pushes: we cannot tell which fields distinguish two readings, so all of them do.
    payload = reading.model_dump(mode="json")
    return make_event(kind, reading.imei, payload, device_time=reading.reading_time, key=(payload,))


def trip_event(trip: Trip) -> ParsedEvent:
    # A trip still open when polled ends later: each end is a new version, projectors upsert by start.
    payload = trip.model_dump(mode="json")
    return make_event("trip_report", trip.imei, payload, device_time=trip.start_time, key=(payload["end_time"],))


def parking_event(parking: Parking) -> ParsedEvent:
    payload = parking.model_dump(mode="json")
    key = (payload["end_time"], payload["mode"])
    return make_event("parking_report", parking.imei, payload, device_time=parking.start_time, key=key)


def fuel_purchase_event(purchase: FuelPurchase) -> ParsedEvent:
    # The sender's id names the purchase; the rest of the payload makes a corrected re-send a new version.
    payload = purchase.model_dump(mode="json")
    return make_event("fuel", purchase.imei, payload, device_time=purchase.occurred, key=(payload,))


def driver_record_event(driver: DriverRecord, extracted_at: datetime) -> ParsedEvent:
    # A driver can appear twice in one roster (two vehicles): the whole record is the key.
    payload = driver.model_dump(mode="json")
    return make_event("driver_record", None, payload, device_time=extracted_at, key=(payload,))


def alarm_ack_event(ack: AlarmAck) -> ParsedEvent:
    # Dated at the alarm's own time (its device timeline); the action's id tells two acknowledgements apart.
    payload = ack.model_dump(mode="json")
    return make_event("alarm_ack", ack.imei, payload, device_time=ack.alarm_at, key=(ack.action_id,))


def odometer_reading_event(reading: OdometerReading) -> ParsedEvent:
    # About a vehicle, not a device: no imei (the account comes from the ops source); the action's id is the key.
    payload = reading.model_dump(mode="json")
    return make_event("odometer_reading", None, payload, device_time=reading.read_at, key=(reading.action_id,))


def driver_assignment_event(assignment: DriverAssignment) -> ParsedEvent:
    payload = assignment.model_dump(mode="json")
    key = (assignment.action_id,)
    return make_event("driver_assignment", None, payload, device_time=assignment.recorded_at, key=key)
