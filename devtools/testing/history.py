"""A small but varied fleet history, written the way its writers write it and taken through the real pipeline.

Raw rows go into events_raw as the gateway and ops write them (IoT Hub pushes of three trackers — drives, stops with
the ignition off, a late buffered burst, alarms, heartbeats, an OBD reading —, a fuel purchase from our own signed
sender, and ops actions: an acknowledgement, an odometer reading, a driver assignment); then the parser and every
projector run in this process, as the woken jobs would. Used by the state-hash and the backup/restore tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db import connection

from domain.models import Account, Device, Driver, Vehicle
from events.models import PushSource, SourceKind
from events.services import raw_events_drain
from state.models import Alarm, Projector
from state.projectors.groups import FOLDS
from state.projectors.runner import projector_drain

T0 = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # 08:00 in Nairobi, a Monday
HUB_SECRET = "history-hub-secret-01"  # noqa: S105  # the test sources' secrets
FUEL_SECRET = "history-fuel-secret-01"  # noqa: S105
# (IMEI, plate or None: a tracker nobody registered, provisioned when its first push is parsed)
TRACKERS: tuple[tuple[str, str | None], ...] = (
    ("861210600001001", "KDA101A"),
    ("861210600001002", "UBA202B"),
    ("861210600001003", None),
)
M_PER_DEG = 111_195.0


def jimi_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Push:
    """One raw row: an IoT Hub path and its items, or an own sender's JSON document (source "fuel")."""

    source: str  # "hub" or "fuel"
    kind: str  # IoT Hub path, or "hmac"
    items: Any
    sent_at: datetime  # when the sender sent it: the raw row's received_at is this plus the feed's delay
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        if self.source == "fuel":
            return json.dumps(self.items).encode()
        return urlencode({"token": HUB_SECRET, "data_list": json.dumps(self.items)}).encode()


def _fix(
    imei: str, at: datetime, lat: float, lng: float, speed: float, *, acc: int, late: bool = False
) -> dict[str, Any]:
    return {
        "deviceImei": imei, "gpsTime": jimi_time(at), "gateTime": jimi_time(at + timedelta(seconds=2)),
        "lat": round(lat, 6), "lng": round(lng, 6), "gpsSpeed": round(speed), "direction": 0, "satelliteNum": 10,
        "acc": acc, "postType": 1, "gpsMode": 1 if late else 0,
    }  # fmt: skip


def _track(imei: str, start: datetime, origin: tuple[float, float], *, late: bool) -> list[dict[str, Any]]:
    """Ten minutes north at 36 km/h, five minutes parked with the ignition off, ten minutes east (`late`: sent from
    the buffer, gpsMode 1); a fix every 20 s."""
    fixes, lat, lng = [], *origin
    at = start
    for k in range(31):  # 0 … 600 s north
        fixes.append(_fix(imei, at, lat + 10.0 * 20 * k / M_PER_DEG, lng, 36.0, acc=1))
        at += timedelta(seconds=20)
    lat = lat + 10.0 * 600 / M_PER_DEG
    for _ in range(15):  # parked
        fixes.append(_fix(imei, at, lat, lng, 0.0, acc=0))
        at += timedelta(seconds=20)
    east = 1 / (M_PER_DEG * math.cos(math.radians(lat)))
    for k in range(31):
        fixes.append(_fix(imei, at, lat, lng + 10.0 * 20 * k * east, 36.0, acc=1, late=late))
        at += timedelta(seconds=20)
    return fixes


def fleet_pushes(*, trackers: Sequence[tuple[str, str | None]] = TRACKERS, changed: bool = False) -> list[Push]:
    """The pushes of the history's trackers, in the order they were sent. `changed`: the same pushes but one, whose
    fix is a few metres elsewhere — a history that must not digest like this one."""
    pushes: list[Push] = []
    for n, (imei, _plate) in enumerate(trackers):
        start = T0 + timedelta(minutes=7 * n)
        origin = (-1.2921 + 0.01 * n, 36.8219 + 0.01 * n)
        late = n == 1  # this one drives its second leg without signal and sends it two hours later
        fixes = _track(imei, start, origin, late=late)
        on_time, buffered = (fixes[:46], fixes[46:]) if late else (fixes, [])
        for i in range(0, len(on_time), 5):
            batch = on_time[i : i + 5]
            pushes.append(Push("hub", "pushgps", batch, datetime.fromisoformat(batch[-1]["gateTime"] + "+00:00")))
        if buffered:
            pushes.append(Push("hub", "pushgps", buffered, start + timedelta(hours=2)))
        alarm_at = start + timedelta(minutes=4)
        pushes.append(
            Push("hub", "pushalarm", [{
                "type": "DEVICE", "msgClass": 0, "imei": imei, "gateTime": jimi_time(alarm_at),
                "msg": {"alertType": str(n + 1), "alarmTime": jimi_time(alarm_at),
                        "lat": origin[0], "lng": origin[1], "gpsSpeed": 36},
            }], alarm_at)
        )  # fmt: skip
        for minute in (3, 13):
            beat = start + timedelta(minutes=minute)
            pushes.append(
                Push("hub", "pushhb", [{"deviceImei": imei, "gateTime": jimi_time(beat), "powerLevel": 90 - minute,
                                        "gsmSign": 80, "acc": 1}], beat)
            )  # fmt: skip
        obd_at = start + timedelta(minutes=20)
        pushes.append(
            Push("hub", "pushobd", [{"deviceImei": imei, "dataReportTime": jimi_time(obd_at),
                                     "odometerReading": str(15230.4 + n), "currentRPM": "2100", "currentSpeed": "36"}],
                 obd_at)
        )  # fmt: skip
    purchase_at = T0 + timedelta(hours=1)
    pushes.append(
        Push("fuel", "hmac", {"type": "fuel_purchase", "events": [{
            "id": "wa-history-1", "plate": trackers[0][1], "imei": None, "occurred_at": purchase_at.isoformat(),
            "litres": 40.5, "amount": 6500, "currency": "KES", "odometer_km": 15240.0, "station": "Total Ngong Rd",
            "reported_by": "+254700000000"}]}, purchase_at)
    )  # fmt: skip
    if changed:
        fix = pushes[2].items[1]
        pushes[2].items[1] = {**fix, "lat": round(fix["lat"] + 0.0001, 6)}
    return pushes


def sources(account: Account) -> dict[str, PushSource]:
    return {
        "hub": PushSource.objects.get_or_create(
            name="history-hub", defaults={"kind": SourceKind.JIMI_IOTHUB, "account": account, "secret": HUB_SECRET}
        )[0],
        "fuel": PushSource.objects.get_or_create(
            name="history-fuel", defaults={"kind": SourceKind.HMAC, "account": account, "secret": FUEL_SECRET}
        )[0],
    }


def trackers_register(account: Account, trackers: Sequence[tuple[str, str | None]] = TRACKERS) -> None:
    """The registered trackers and their vehicles, in the order given (other orders give other ids)."""
    for imei, plate in trackers:
        if plate is not None:
            Device.objects.create(imei=imei, account=account, vehicle=Vehicle.objects.create(plate=plate))


def pushes_write(pushes: Sequence[Push], account: Account, *, delay: timedelta = timedelta(seconds=1)) -> None:
    """The raw rows, as the gateway stores them, received `delay` after each was sent."""
    by_name = sources(account)
    with connection.cursor() as cursor:
        for push in pushes:
            source = by_name[push.source]
            content_type = "application/json" if push.source == "fuel" else "application/x-www-form-urlencoded"
            cursor.execute(
                "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, body, headers, received_at)"
                " VALUES (%s, %s, %s, %s, %s, '{}', %s)",
                [source.id, source.kind, push.kind, content_type, push.body(), push.sent_at + delay],
            )


def pipeline_run() -> None:
    """Parse every waiting raw row, then drain every state projector: what the woken jobs do. Inside a test's
    transaction, call `SET CONSTRAINTS ALL IMMEDIATE` first, or the commit-time work-list triggers never fire."""
    raw_events_drain(batch_size=500, budget_s=600)
    for projector in Projector:
        projector_drain(
            projector, FOLDS[projector], batch_size=1000, wake_task=f"state.project_{projector}", woken=False,
            budget_s=600,
        )  # fmt: skip


@dataclass(frozen=True)
class History:
    raw_rows: int
    ticket_id: int
    alarm_parsed_id: int  # the alarm the ticket is about


def fleet_history(account: Account) -> History:
    """The whole history: the trackers' pushes, then what clerks did about them (an acknowledged SOS, an odometer
    reading, a driver put on a vehicle, a ticket about the power cut), all parsed and projected."""
    from ops.models import TicketCategory
    from ops.services import alarms_acknowledge, driver_assign, odometer_record, ticket_open

    trackers_register(account)
    pushes = fleet_pushes()
    pushes_write(pushes, account)
    pipeline_run()
    clerk = get_user_model().objects.create_user(username="history-clerk", password="pw", is_staff=True)  # noqa: S106
    sos = Alarm.objects.get(code="1")
    alarms_acknowledge(parsed_ids=[sos.parsed_id], user=clerk, note="called the driver")
    vehicle = Vehicle.objects.get(plate=TRACKERS[0][1])
    odometer_record(vehicle=vehicle, odometer_km=15235.0, read_at=T0 + timedelta(minutes=30), user=clerk)
    driver = Driver.objects.create(name="Jane Wanjiru")
    driver_assign(vehicle=vehicle, driver=driver, start=T0, user=clerk)
    power_cut = Alarm.objects.get(code="2")
    ticket = ticket_open(
        title="Power cut on UBA202B", category=TicketCategory.ALARM, alarm_parsed_id=power_cut.parsed_id,
        alarm_type=power_cut.normalised_name, device=Device.objects.get(imei=power_cut_imei()), user=clerk,
    )  # fmt: skip
    pipeline_run()
    return History(raw_rows=len(pushes) + 3, ticket_id=ticket.pk, alarm_parsed_id=power_cut.parsed_id)


def power_cut_imei() -> str:
    return TRACKERS[1][0]
