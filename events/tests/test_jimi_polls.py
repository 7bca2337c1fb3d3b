"""The Open API polls against the local sandbox: every method's response lands in events_raw (source kind jimi-poll,
push kind = the method) and parses like a push; cursors resume after a restart with no gap and no duplicate; a token
that expires mid-poll costs one login; a fix both polled and pushed is one event; gaps in a device's fixes are
fetched with the track list; push health says when the location poll covers silent pushes."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.utils import timezone

from domain.models import Device, Lifecycle
from events.jimi.client import TOKENS
from events.jimi.selectors import push_health
from events.jimi.services import closed_until, jimi_poll
from events.models import JimiCursor, ParsedEvent, PushSource, RawEvent, SourceKind
from events.parsers import parse_raw
from events.services import raw_events_parse_batch

TIME = "%Y-%m-%d %H:%M:%S"


@pytest.fixture(autouse=True)
def _triggers_now(db):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the raw log's work-list trigger fires in the test


def _parse_all():
    outcome = raw_events_parse_batch(limit=10_000)
    unparsed = list(RawEvent.objects.exclude(status="parsed").values("error"))
    assert (outcome.failed, outcome.partial) == (0, 0), unparsed
    return outcome


def _events(kind, **filters):
    return ParsedEvent.objects.filter(kind=kind, **filters)


def _devices_known(jimi_account):
    jimi_poll("devices")
    _parse_all()
    Device.objects.filter(account=jimi_account).update(lifecycle=Lifecycle.ACTIVE)


def test_it_polls_every_method_into_the_raw_log_and_parses_it_like_a_push(jimi_sandbox, jimi_account):
    outcomes = jimi_poll("devices")
    assert [(o.stream, o.calls, o.error) for o in outcomes] == [("devices", 1, "")]
    _parse_all()
    imeis = sorted(Device.objects.filter(account=jimi_account).values_list("imei", flat=True))
    assert imeis == sorted(d.imei for d in jimi_sandbox.fleet.devices)  # provisioned by the parse, as from a push
    meta = _events("device_meta").first()
    assert meta.payload["meta_type"] == "device_info"
    assert meta.payload["plate"].startswith("SBX")

    jimi_poll("locations")
    reports = {o.stream: o for o in jimi_poll("reports")}
    assert all(not o.error and o.windows == 1 for o in reports.values()), reports
    _parse_all()

    raw = RawEvent.objects.filter(source_kind=SourceKind.JIMI_POLL)
    methods = set(raw.values_list("push_kind", flat=True))
    assert methods == {
        "jimi.user.device.list", "jimi.user.device.location.list", "jimi.open.platform.report.trips",
        "jimi.open.platform.report.parking", "jimi.device.track.mileage", "jimi.device.alarm.list",
        "jimi.device.obd.list", "jimi.device.obd.fault",
    }  # fmt: skip
    assert set(raw.values_list("status", flat=True)) == {"parsed"}
    assert {v.split("@")[1] for v in raw.values_list("parser_version", flat=True)} == {"1"}  # a parser for each
    assert raw.first().source.name == f"jimi-poll-{jimi_account.pk}"
    assert "access_token" not in json.dumps(list(raw.values_list("headers", flat=True)))

    assert _events("position_fix").count() == 4  # the latest fix of each device
    for kind in ("trip_report", "parking_report", "alarm", "obd"):
        assert _events(kind).exists(), kind
    assert _events("parking_report", payload__mode="idling").exists()  # acc_type on and off are both asked for
    assert _events("obd", payload__record="fault").exists()
    # A trip in the trips report and the same drive in the mileage report are one event (one dedup key).
    trips = RawEvent.objects.get(push_kind="jimi.open.platform.report.trips")
    assert _events("trip_report").count() == trips.parsed_count


def test_it_asks_for_closed_windows_ending_at_an_aligned_second(jimi_sandbox, jimi_account, settings):
    _devices_known(jimi_account)
    jimi_poll("reports")
    closed = closed_until(timezone.now(), settings.JIMI_POLL_REPORTS_EVERY_S)
    calls = jimi_sandbox.calls("jimi.device.alarm.list")
    assert [c["page_no"] for c in calls] == ["1", "2"]  # a day of four devices' alarms: two pages of 100
    call = calls[0]
    assert call["end_time"] == (closed - timedelta(seconds=1)).strftime(TIME)
    assert call["begin_time"] == (closed - timedelta(seconds=settings.JIMI_POLL_LOOKBACK_S)).strftime(TIME)
    assert call["imeis"] == ",".join(sorted(d.imei for d in jimi_sandbox.fleet.devices))
    cursor = JimiCursor.objects.get(account=jimi_account, stream="alarms")
    assert cursor.position == closed
    assert cursor.calls == 2
    jimi_poll("reports")  # nothing closed since: nothing asked again
    assert len(jimi_sandbox.calls("jimi.device.alarm.list")) == 2


def test_it_resumes_after_a_restart_with_no_gap_and_no_duplicate(jimi_sandbox, jimi_account, settings):
    _devices_known(jimi_account)
    settings.JIMI_ALARM_MAX_SPAN_S = 3600  # a catch-up of 5 hours: five windows
    closed = closed_until(timezone.now(), settings.JIMI_POLL_REPORTS_EVERY_S)
    start = closed - timedelta(hours=5)
    JimiCursor.objects.create(account=jimi_account, stream="alarms", position=start)
    jimi_sandbox.fail_next("1100", method="jimi.device.alarm.list", after=2, message="the poll dies here")

    outcomes = {o.stream: o for o in jimi_poll("reports")}
    assert "the poll dies here" in outcomes["alarms"].error
    cursor = JimiCursor.objects.get(account=jimi_account, stream="alarms")
    assert cursor.position == start + timedelta(hours=2)
    assert "1100" in cursor.error

    TOKENS.clear()  # a new process: no token kept
    outcomes = {o.stream: o for o in jimi_poll("reports")}
    assert outcomes["alarms"].windows == 3
    assert not outcomes["alarms"].error
    cursor.refresh_from_db()
    assert cursor.position == closed
    assert cursor.error == ""

    asked = list(jimi_sandbox.calls("jimi.device.alarm.list"))
    answered = [c for i, c in enumerate(asked) if i != 2]  # the third was refused
    spans = [(datetime.strptime(c["begin_time"], TIME), datetime.strptime(c["end_time"], TIME)) for c in answered]
    assert spans[0][0] == start.replace(tzinfo=None)
    assert spans[-1][1] == (closed - timedelta(seconds=1)).replace(tzinfo=None)
    for (_, end), (begin, _) in itertools.pairwise(spans):
        assert begin == end + timedelta(seconds=1)  # contiguous: no second missed, none asked twice
    assert RawEvent.objects.filter(push_kind="jimi.device.alarm.list").count() == 5

    _parse_all()
    now = timezone.now().timestamp()
    expected = [
        (d.imei, a["code"], a["time"])
        for d in jimi_sandbox.fleet.devices
        for a in jimi_sandbox.fleet.alarms(d, start.timestamp(), closed.timestamp() - 1, now)
    ]
    assert expected
    stored = _events("alarm").values_list("device__imei", "payload__code", "occurred_at")
    assert sorted((i, c, int(t.timestamp())) for i, c, t in stored) == sorted(expected)


def test_it_logs_in_again_when_the_token_expires_mid_poll(jimi_sandbox, jimi_account, settings):
    _devices_known(jimi_account)
    settings.JIMI_ALARM_MAX_SPAN_S = 3600
    closed = closed_until(timezone.now(), settings.JIMI_POLL_REPORTS_EVERY_S)
    JimiCursor.objects.create(account=jimi_account, stream="alarms", position=closed - timedelta(hours=3))
    answered = []

    def expire_after_first(document):
        answered.append(1)
        if len(answered) == 1:
            jimi_sandbox.expire_tokens()
        return document

    jimi_sandbox.row_hook["jimi.device.alarm.list"] = expire_after_first
    logins = len(jimi_sandbox.calls("jimi.oauth.token.get"))
    outcome = next(o for o in jimi_poll("reports") if o.stream == "alarms")
    assert (outcome.windows, outcome.error) == (3, "")
    assert len(jimi_sandbox.calls("jimi.oauth.token.get")) == logins + 1
    assert JimiCursor.objects.get(account=jimi_account, stream="alarms").position == closed


def test_it_records_why_an_account_cannot_be_polled_and_goes_on_with_the_others(jimi_sandbox, jimi_account):
    from domain.models import Account

    broken = Account.objects.create(name="Broken", credential_ref="env:JIMI_NOT_SET_ANYWHERE")
    outcomes = jimi_poll("locations")
    assert {o.account: bool(o.error) for o in outcomes} == {"Broken": True, "Jimi sandbox": False}
    assert "missing app_key" in JimiCursor.objects.get(account=broken, stream="locations").error
    source = PushSource.objects.get(account=jimi_account, kind=SourceKind.JIMI_POLL)
    source.enabled = False  # disabling the poll source stops the account's polls
    source.save()
    assert {o.account for o in jimi_poll("locations")} == {"Broken"}


def _push_source(account):
    return PushSource.objects.create(name="sandbox-hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret="hub")


def _push_fix(client, imei, moment, **fields):
    item = {"deviceImei": imei, "gpsTime": moment.strftime(TIME), "lat": 43.74, "lng": 7.42, "gpsSpeed": 30,
            "acc": 1, "distance": 1523400, **fields}  # fmt: skip
    body = urlencode({"token": "hub", "data_list": json.dumps([item])})
    response = client.post(
        "/push/iothub/sandbox-hub/pushgps", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200


def test_it_keeps_one_event_for_a_fix_both_polled_and_pushed(jimi_sandbox, jimi_account, client):
    _push_source(jimi_account)
    jimi_poll("locations")
    _parse_all()
    polled = {e.device.imei: e for e in _events("position_fix").select_related("device")}
    assert len(polled) == 4
    # The hub delivers the same fixes late (the device second decides, whatever the path), and a new one.
    for imei, event in polled.items():
        _push_fix(client, imei, event.occurred_at)
    imei = next(iter(polled))
    _push_fix(client, imei, polled[imei].occurred_at + timedelta(seconds=10))
    _parse_all()
    assert _events("position_fix").count() == 5
    # And the other way round: a pushed fix polled later.
    jimi_sandbox_fix = jimi_sandbox.fleet.latest_fix(jimi_sandbox.fleet.devices[0], timezone.now().timestamp())
    pushed = datetime.fromtimestamp(jimi_sandbox_fix.time, UTC) + timedelta(days=1)
    result = parse_raw(
        source_kind="jimi-poll", push_kind="jimi.user.device.location.list", content_type="application/json",
        received_at=timezone.now(),
        body=json.dumps({"code": 0, "result": [{"imei": imei, "gpsTime": pushed.strftime(TIME), "lat": 1, "lng": 2,
                                                "speed": "5", "accStatus": "1", "posType": "GPS"}]}).encode(),
    )  # fmt: skip
    from events.parsers.base import RawBody
    from events.parsers.iothub import PARSERS

    item = {"deviceImei": imei, "gpsTime": pushed.strftime(TIME), "lat": 1, "lng": 2, "gpsSpeed": 5, "acc": 1}
    body = urlencode({"token": "t", "data_list": json.dumps([item])}).encode()
    pushed_result = PARSERS["pushgps"].parse(RawBody("pushgps", "", body, timezone.now()))
    assert result.events[0].dedup_key == pushed_result.events[0].dedup_key


def test_it_fetches_the_track_of_a_gap_in_a_devices_fixes(jimi_sandbox, jimi_account, client, settings):
    _push_source(jimi_account)
    _devices_known(jimi_account)
    device = jimi_sandbox.fleet.devices[0]
    now = timezone.now().timestamp()
    settled = now - settings.JIMI_TRACK_SETTLE_S
    begin, _ = next(d for d in reversed(jimi_sandbox.fleet.drives(device, now - 6 * 3600, settled)) if d[1] < settled)
    before, after = begin + 60, begin + 60 + 1200  # 20 minutes without a fix while it drove
    for moment in (before, after):
        _push_fix(client, device.imei, datetime.fromtimestamp(moment, UTC))
    _parse_all()

    outcomes = jimi_poll("backfill")
    assert [(o.stream, o.error) for o in outcomes] == [("track", "")]
    (call,) = jimi_sandbox.calls("jimi.device.track.list")
    assert (call["imei"], call["begin_time"], call["end_time"]) == (
        device.imei,
        datetime.fromtimestamp(before + 1, UTC).strftime(TIME),
        datetime.fromtimestamp(after - 1, UTC).strftime(TIME),
    )
    raw = RawEvent.objects.get(push_kind="jimi.device.track.list")
    assert json.loads(bytes(raw.body))["imei"] == device.imei  # the rows carry none: the poller adds it
    _parse_all()
    filled = _events("position_fix", device__imei=device.imei, occurred_at__gt=datetime.fromtimestamp(before, UTC),
                     occurred_at__lt=datetime.fromtimestamp(after, UTC))  # fmt: skip
    assert filled.count() == len(jimi_sandbox.fleet.fixes(device, before + 1, after - 1)) == 39
    cursor = JimiCursor.objects.get(account=jimi_account, stream="track", key=device.imei)
    assert cursor.position == datetime.fromtimestamp(after, UTC)
    jimi_poll("backfill")  # the gap is filled and behind the cursor: not asked again
    assert len(jimi_sandbox.calls("jimi.device.track.list")) == 1


def test_it_splits_a_long_gap_into_calls_of_at_most_the_tracks_span(jimi_sandbox, jimi_account, client, settings):
    _push_source(jimi_account)
    _devices_known(jimi_account)
    settings.JIMI_TRACK_MAX_SPAN_S = 3600
    device = jimi_sandbox.fleet.devices[1]
    end = timezone.now() - timedelta(hours=1)
    for moment in (end - timedelta(hours=2, minutes=30), end):
        _push_fix(client, device.imei, moment.replace(microsecond=0))
    _parse_all()
    jimi_poll("backfill")
    calls = jimi_sandbox.calls("jimi.device.track.list")
    assert len(calls) == 3
    for call in calls:
        span = datetime.strptime(call["end_time"], TIME) - datetime.strptime(call["begin_time"], TIME)
        assert span < timedelta(hours=1)


def test_it_says_when_pushes_are_silent_and_the_location_poll_covers_for_them(jimi_sandbox, jimi_account, client):
    source = _push_source(jimi_account)
    now = timezone.now()
    jimi_sandbox.fleet.drive_now(0, now=now.timestamp())  # a device reporting fresh fixes, at any time of day
    jimi_poll("locations")
    (health,) = push_health(now=timezone.now(), since=now - timedelta(hours=1))
    assert health.state == "silent"
    assert "live positions from the location poll" in health.note

    imei = jimi_sandbox.fleet.devices[0].imei
    _push_fix(client, imei, now.replace(microsecond=0))
    (health,) = push_health(now=timezone.now(), since=now - timedelta(hours=1))
    assert (health.state, health.push_sources) == ("flowing", 1)

    source.enabled = False
    source.save()
    (health,) = push_health(now=timezone.now(), since=now - timedelta(hours=1))
    assert health.state == "poll only"


def test_it_parses_the_methods_that_had_no_parser_yet():
    received = datetime(2026, 1, 13, 3, 0, tzinfo=UTC)

    def parse(method, document):
        return parse_raw(source_kind="jimi-poll", push_kind=method, content_type="application/json",
                         body=json.dumps(document).encode(), received_at=received)  # fmt: skip

    device = {
        "imei": "860121060369660",
        "deviceName": "VL802-69660",
        "mcType": "VL802",
        "vehicleNumber": "KDA 101A",
        "carFrame": "JTDBR32E700000001",
        "enabledFlag": 1,
        "expiration": "2030-12-31 23:59:59",
        "sim": "2547",
    }
    first = parse("jimi.user.device.list", {"code": 0, "result": [device], "data": None}).events[0]
    later = parse("jimi.user.device.list", {"code": 0, "result": [device], "data": None})
    assert first.payload["plate"] == "KDA 101A"
    assert first.payload["enabled"] is True
    assert first.occurred_at == datetime(2026, 1, 13, tzinfo=UTC)
    assert first.dedup_key == later.events[0].dedup_key
    changed = parse("jimi.user.device.list", {"code": 0, "result": [{**device, "vehicleNumber": "KDA 102A"}]})
    assert changed.events[0].dedup_key != first.dedup_key

    mileage = {"imei": "860121060369660", "startTime": "2026-01-13 01:00:00", "endTime": "2026-01-13 01:30:00",
               "startLat": 22.5, "startLng": 113.9, "endLat": 22.6, "endLng": 113.8, "elapsed": 1800,
               "distance": 12000, "avgSpeed": 24}  # fmt: skip
    (trip,) = parse("jimi.device.track.mileage", {"code": 0, "result": [mileage], "data": [{"imei": "1"}]}).events
    assert (trip.kind, trip.payload["travel_time"], trip.payload["distance"]) == ("trip_report", "1800", 12000.0)

    obd = {"imei": "860121060369660", "dataReportTime": "2024-05-09 1:27:23", "odometerReading": "1234.5",
           "vehicleBatterVoltage": "118", "currentRPM": "900"}  # fmt: skip
    page = {"currentPage": 1, "pageSize": 100, "totalRecord": 1, "result": [obd]}
    (reading,) = parse("jimi.device.obd.list", {"code": 0, "result": None, "data": page}).events
    assert reading.payload["record"] == "data"
    assert reading.payload["odometer_km"] == 1234.5
    fault = {"imei": "860121060369660", "faultCode": "P1502", "faultDetail": "x", "eventTime": "2024-05-09 01:27:23"}
    (faulted,) = parse("jimi.device.obd.fault", {"code": 0, "data": {"result": [fault]}}).events
    assert (faulted.payload["record"], faulted.payload["fault_code"]) == ("fault", "P1502")
