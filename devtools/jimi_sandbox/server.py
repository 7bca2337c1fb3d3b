"""The sandbox's HTTP server: POST /route/rest, form-encoded, as Jimi's Open API answers it.

Checked like Jimi checks: the common parameters, the app key, the timestamp (±10 minutes), the MD5 signature (unless
`v=0.9`, which Jimi documents as unsigned), the access token (expired or unknown: 1004), every method's own
parameters and limits (1001), devices of another account (1002). Tests steer it: `fail_next(code)` answers the next
call(s) with any error code, `expire_tokens()` ends every token at once, `rename_field()` and `row_hook` change what a
method answers (contract drift), `requests` records every call.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from devtools.jimi_sandbox.fleet import CENTRE, Device, SandboxFleet, iso_time, jimi_time
from events.jimi.signing import sign

COMMON = ("method", "timestamp", "app_key", "sign", "sign_method", "v", "format")
SKEW_S = 600
TRACK_MAX_SPAN_S = 7 * 86400
ALARM_MAX_SPAN_S = 31 * 86400
OBD_MAX_SPAN_S = 31 * 86400
HISTORY_S = 92 * 86400
MAX_IMEIS = 100
MAX_ALARM_ROWS = 1000
MESSAGES = {
    "-1": "system busy", "1001": "parameter error", "1002": "illegal user or device", "1003": "repeat operation",
    "1004": "token invalid or expired", "1005": "IP access exceeds the limit", "1006": "request too frequent",
    "1007": "wrong request method", "1008": "abnormal input", "1100": "business exception",
    "1112": "device already exists", "1114": "fence name exists", "1207": "data not arrived yet",
}  # fmt: skip


class Refused(Exception):
    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message)
        self.code, self.message = code, message or MESSAGES.get(code, "error")


@dataclass
class _Token:
    refresh: str
    expires_at: float


@dataclass
class _Failure:
    code: str
    method: str | None
    times: int
    message: str
    after: int = 0


def _rename(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {(new if k == old else k): _rename(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, old, new) for v in value]
    return value


@dataclass
class JimiSandbox:
    host: str = "127.0.0.1"
    port: int = 0
    devices: int = 5
    seed: int = 7
    centre: tuple[float, float] = CENTRE
    app_key: str = "SANDBOXAPPKEY0001"
    app_secret: str = "sandbox-app-secret-0001"  # noqa: S105 - made up, development only
    user_id: str = "sandbox_fleet"
    password: str = "sandbox-password"  # noqa: S105 - made up, development only
    token_max_s: int = 7200
    requests: list[dict[str, str]] = field(default_factory=list)
    row_hook: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)
    renames: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fleet = SandboxFleet(devices=self.devices, seed=self.seed, centre=self.centre)
        self._tokens: dict[str, _Token] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- steering ---------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/route/rest"

    @property
    def password_md5(self) -> str:
        return hashlib.md5(self.password.encode()).hexdigest()  # noqa: S324 - Jimi's protocol

    def credentials_text(self) -> str:
        """The credential file of events.jimi.credentials (`file:` references)."""
        return (
            f"# Jimi sandbox credentials (made up; development only)\napp_key={self.app_key}\n"
            f"app_secret={self.app_secret}\nuser_id={self.user_id}\npassword={self.password}\n"
        )

    def fail_next(
        self, code: str, *, method: str | None = None, times: int = 1, message: str = "", after: int = 0
    ) -> None:
        """Answer `times` calls (of `method`, or any but the token methods) with error `code`, once `after` such calls
        were answered as usual."""
        message = message or MESSAGES.get(str(code), "error")
        with self._lock:
            self._failures.append(_Failure(str(code), method, times, message, after))

    def expire_tokens(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0

    def rename_field(self, method: str, old: str, new: str) -> None:
        self.renames.setdefault(method, []).append((old, new))

    def calls(self, method: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [r for r in self.requests if method is None or r.get("method") == method]

    # --- serving ----------------------------------------------------------------------------------------------------

    def start(self) -> JimiSandbox:
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.split("?")[0] != "/route/rest":
                    self.send_error(404)
                    return
                form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
                answer = json.dumps(sandbox.answer(form)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:
                self.send_error(405)

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> JimiSandbox:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- one request ------------------------------------------------------------------------------------------------

    def answer(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(dict(form))
        try:
            method = self._check_common(form)
            handler = HANDLERS.get(method)
            if handler is None:
                raise Refused("1001", f"unknown method {method}")
            self._injected(method)
            if method not in ("jimi.oauth.token.get", "jimi.oauth.token.refresh"):
                self._check_token(form.get("access_token", ""))
            result, data = handler(self, form, time.time())
        except Refused as exc:
            return {"code": exc.code, "message": exc.message, "result": None, "data": None}
        document: dict[str, Any] = {"code": 0, "message": "success", "result": result, "data": data}
        for old, new in self.renames.get(method, []):
            document = _rename(document, old, new)
        hook = self.row_hook.get(method)
        return hook(document) if hook else document

    def _check_common(self, form: dict[str, str]) -> str:
        missing = [name for name in COMMON if not form.get(name)]
        if missing:
            raise Refused("1001", f"missing {', '.join(missing)}")
        if form["app_key"] != self.app_key:
            raise Refused("1001", "invalid app_key")
        if form["v"] not in ("1.0", "0.9") or form["sign_method"] != "md5" or form["format"] != "json":
            raise Refused("1001", "unsupported v, sign_method or format")
        try:
            sent = datetime.strptime(form["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise Refused("1001", "timestamp is not yyyy-MM-dd HH:mm:ss") from None
        if abs(time.time() - sent) > SKEW_S:
            raise Refused("1001", "timestamp out of range")
        if form["v"] == "1.0" and not secrets.compare_digest(form["sign"], sign(form, self.app_secret)):
            raise Refused("1001", "invalid sign")
        return form["method"]

    def _injected(self, method: str) -> None:
        with self._lock:
            for failure in self._failures:
                token_method = method.startswith("jimi.oauth.")
                if (failure.method == method) or (failure.method is None and not token_method):
                    if failure.after > 0:
                        failure.after -= 1
                        continue
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    raise Refused(failure.code, failure.message)

    def _check_token(self, access_token: str) -> None:
        with self._lock:
            token = self._tokens.get(access_token)
            if token is None or token.expires_at <= time.time():
                raise Refused("1004", "token invalid or expired")

    def issue_token(self, expires_in: int) -> dict[str, Any]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        lifetime = min(expires_in, self.token_max_s)
        with self._lock:
            self._tokens[access] = _Token(refresh, time.time() + lifetime)
        return {
            "appKey": self.app_key, "account": self.user_id, "accessToken": access, "expiresIn": lifetime,
            "refreshToken": refresh, "time": jimi_time(time.time()),
        }  # fmt: skip

    def revoke(self, access_token: str) -> _Token | None:
        with self._lock:
            return self._tokens.pop(access_token, None)


# --- parameters ------------------------------------------------------------------------------------------------------


def _int(form: dict[str, str], name: str, default: int | None = None, low: int = 0, high: int = 10**9) -> int:
    text = form.get(name, "")
    if not text:
        if default is None:
            raise Refused("1001", f"missing {name}")
        return default
    try:
        value = int(text)
    except ValueError:
        raise Refused("1001", f"{name} is not a number") from None
    if not low <= value <= high:
        raise Refused("1001", f"{name} out of range {low}-{high}")
    return value


def _time(form: dict[str, str], name: str) -> int:
    text = form.get(name, "")
    if not text:
        raise Refused("1001", f"missing {name}")
    try:
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise Refused("1001", f"{name} is not yyyy-MM-dd HH:mm:ss") from None


def _range(form: dict[str, str], begin: str, end: str, max_span_s: int, now: float) -> tuple[int, int]:
    start, stop = _time(form, begin), _time(form, end)
    if stop < start:
        raise Refused("1001", f"{end} before {begin}")
    if stop - start > max_span_s:
        raise Refused("1001", f"range longer than {max_span_s // 86400} days")
    if start < now - HISTORY_S:
        raise Refused("1001", "range older than 3 months")
    return start, stop


def _devices(sandbox: JimiSandbox, form: dict[str, str], *, single: bool = False) -> list[Device]:
    text = form.get("imei", "") if single else (form.get("imeis", "") or form.get("imei", ""))
    imeis = [i.strip() for i in text.split(",") if i.strip()]
    if not imeis:
        raise Refused("1001", "missing imei" if single else "missing imeis")
    if (single and len(imeis) > 1) or len(imeis) > MAX_IMEIS:
        raise Refused("1001", "too many imeis")
    unknown = [i for i in imeis if i not in sandbox.fleet.by_imei]
    if unknown:
        raise Refused("1002", f"illegal device {unknown[0]}")
    return [sandbox.fleet.by_imei[i] for i in imeis]


def _target(sandbox: JimiSandbox, form: dict[str, str], name: str) -> None:
    if form.get(name, "") != sandbox.user_id:
        raise Refused("1002", f"illegal user {form.get(name, '')!r}")


def _page(rows: list[Any], form: dict[str, str], *, offset: bool) -> list[Any]:
    size = _int(form, "page_size", 50, 1, 100)
    first = _int(form, "start_row", 0) if offset else (_int(form, "page_no", 1, 1) - 1) * size
    return rows[first : first + size]


# --- methods ---------------------------------------------------------------------------------------------------------

Answer = tuple[Any, Any]


def token_get(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    if form.get("user_id") != sandbox.user_id or form.get("user_pwd_md5") != sandbox.password_md5:
        raise Refused("1002", "illegal user or wrong password")
    return sandbox.issue_token(_int(form, "expires_in", None, 60, 7200)), None


def token_refresh(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    expires_in = _int(form, "expires_in", None, 60, 7200)
    with sandbox._lock:
        old = sandbox._tokens.get(form.get("access_token", ""))
    if old is None or old.refresh != form.get("refresh_token"):
        raise Refused("1004", "token invalid or expired")
    sandbox.revoke(form["access_token"])
    return sandbox.issue_token(expires_in), None


def device_list(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    _target(sandbox, form, "target")
    rows = [
        {
            "imei": d.imei, "deviceName": d.name, "mcType": d.model, "mcTypeUseScope": "automobile",
            "sim": f"25470{d.index:07d}", "expiration": "2030-12-31 23:59:59", "activationTime": "2025-01-15 08:00:00",
            "reMark": None, "vehicleName": d.plate, "vehicleIcon": "automobile", "vehicleNumber": d.plate,
            "vehicleModels": "Toyota Probox", "carFrame": f"JTDBR32E70{d.index:07d}", "driverName": None,
            "driverPhone": None, "enabledFlag": 1, "engineNumber": None, "deviceGroupId": "0",
            "deviceGroup": "Default group",
        }
        for d in sandbox.fleet.devices
    ]  # fmt: skip
    return rows, None


def location_list(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    _target(sandbox, form, "target")
    rows = []
    for d in sandbox.fleet.devices:
        fix = sandbox.fleet.latest_fix(d, now)
        idling = not fix.moving and now - fix.time < 300
        rows.append({
            "imei": d.imei, "deviceName": d.name, "mcType": d.model, "icon": "automobile", "status": "1",
            "posType": "GPS", "lat": fix.lat, "lng": fix.lng, "hbTime": jimi_time(now - now % 60),
            "gpsTime": jimi_time(fix.time), "accStatus": "1" if fix.moving or idling else "0", "gpsSignal": "4",
            "gpsNum": "12", "speed": f"{fix.speed_kmh:g}", "direction": f"{fix.heading:g}", "powerValue": None,
            "batteryPowerVal": "4.05", "electQuantity": "", "distance": "-1", "temperature": None,
            "trackerOil": "0.00L", "currentMileage": f"{sandbox.fleet.odometer_km(d, now):.1f}", "activationFlag": "1",
            "expireFlag": "1", "account": sandbox.user_id, "customerName": sandbox.user_id,
            "iccid": f"8925402{d.index:013d}", "confidence": None,
        })  # fmt: skip
    return rows, None


def track_list(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    (d,) = _devices(sandbox, form, single=True)
    start, stop = _range(form, "begin_time", "end_time", TRACK_MAX_SPAN_S, now)
    if stop >= now:
        raise Refused("1001", "end_time must be before now")
    fixes = sandbox.fleet.fixes(d, start, stop)
    rows = [
        {
            "lat": f.lat, "lng": f.lng, "gpsTime": jimi_time(f.time), "direction": f.heading, "gpsSpeed": f.speed_kmh,
            "posType": 1, "satellite": 12, "ignition": "ON" if f.moving else "OFF",
            "accStatus": "ON" if f.moving else "OFF", "gpsMode": 0, "confidence": None,
        }
        for f in fixes
    ]  # fmt: skip
    mileage = round(len([f for f in fixes if f.moving]) * d.speed_kmh * 30 / 3600, 3)
    return rows, {"mileage": mileage}


def alarm_list(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    devices = _devices(sandbox, form)
    start, stop = _range(form, "begin_time", "end_time", ALARM_MAX_SPAN_S, now)
    rows = [
        {
            "deviceName": d.name, "imei": d.imei, "model": d.model, "account": sandbox.user_id,
            "alertTypeId": a["code"], "alarmTypeName": a["name"], "alertTime": jimi_time(float(a["time"])),
            "positioningTime": jimi_time(float(a["time"])), "lat": a["lat"], "lng": a["lng"],
            "speed": f"{float(a['speed']):g}", "geoid": None,
        }
        for d in devices
        for a in sandbox.fleet.alarms(d, start, stop, now)
    ]  # fmt: skip
    return _page(rows[:MAX_ALARM_ROWS], form, offset=False), None


def parking_report(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    _target(sandbox, form, "account")
    devices = _devices(sandbox, form)
    acc = form.get("acc_type", "")
    if acc not in ("on", "off"):
        raise Refused("1001", "acc_type must be on or off")
    start, stop = _range(form, "start_time", "end_time", 31 * 86400, now)
    rows: list[dict[str, Any]] = [
        {
            "imei": d.imei, "startTime": iso_time(float(s["start"])), "endTime": iso_time(float(s["end"])),
            "durSecond": str(int(s["end"]) - int(s["start"])), "stopSecond": str(int(s["end"]) - int(s["start"])),
            "lng": s["lng"], "lat": s["lat"], "addr": None, "deviceName": d.name, "mcType": d.model, "acc": acc,
        }
        for d in devices
        for s in sandbox.fleet.stops(d, start, stop, now)
        if s["acc"] == acc
    ]  # fmt: skip
    total = sum(int(r["durSecond"]) for r in rows)
    return None, {"totalTime": str(total), "dataTotalRows": str(len(rows)), "rows": _page(rows, form, offset=True)}


def _totals(trips: list[dict[str, Any]]) -> dict[str, str]:
    km = sum(float(t["km"]) for t in trips)
    seconds = sum(int(t["seconds"]) for t in trips)
    return {
        "allTrips": str(len(trips)), "totalDis": f"{km:.3f}", "travelTime": str(seconds), "totalTime": str(seconds),
        "totalAvgSpeed": f"{km / seconds * 3600:.1f}" if seconds else "0",
        "allTotalMaxSpeed": f"{max((float(t['max']) for t in trips), default=0):g}", "totalFuel": "0", "oilWear": "0",
    }  # fmt: skip


def trips_report(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    _target(sandbox, form, "account")
    devices = _devices(sandbox, form)
    if form.get("type") != "list":
        raise Refused("1001", "the sandbox answers type=list only")
    start, stop = _range(form, "start_time", "end_time", 31 * 86400, now)
    every = [(d, t) for d in devices for t in sandbox.fleet.trips(d, start, stop, now)]
    page = _page(every, form, offset=True)
    day_list = []
    for d in devices:
        mine = [t for owner, t in page if owner is d]
        if not mine:
            continue
        days: dict[str, list[dict[str, Any]]] = {}
        for t in mine:
            days.setdefault(jimi_time(float(t["start"]))[:10], []).append(t)
        trips_data = [
            {
                "Searchdate": day, "tripNum": str(len(trips)), "inTotal": _totals(trips),
                "dayData": [
                    {
                        "imei": d.imei, "startTime": jimi_time(float(t["start"])),
                        "endTime": jimi_time(float(t["end"])),
                        "startLat": f"{t['start_lat']}", "startLng": f"{t['start_lng']}", "endLat": f"{t['end_lat']}",
                        "endLng": f"{t['end_lng']}", "totalMileage": f"{t['km']}", "travelTime": str(t["seconds"]),
                        "averageSpeed": f"{t['avg']}", "maxSpeed": f"{t['max']}", "oilWear": "0", "fuel": "0",
                        "startMileage": f"{t['odometer_km']}",
                        "endMileage": f"{float(t['odometer_km']) + float(t['km']):.3f}",
                    }
                    for t in trips
                ],
            }
            for day, trips in sorted(days.items())
        ]  # fmt: skip
        day_list.append({"imei": d.imei, "deviceName": d.name, "inTotal": _totals(mine), "tripsData": trips_data})
    return None, {"dayList": day_list}


def track_mileage(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    devices = _devices(sandbox, form)
    start, stop = _range(form, "begin_time", "end_time", 31 * 86400, now)
    every = [(d, t) for d in devices for t in sandbox.fleet.trips(d, start, stop, now)]
    page = _page(every, form, offset=True)
    rows = [
        {
            "imei": d.imei, "startTime": jimi_time(float(t["start"])), "endTime": jimi_time(float(t["end"])),
            "startLat": t["start_lat"], "startLng": t["start_lng"], "endLat": t["end_lat"], "endLng": t["end_lng"],
            "runTimeSecond": t["seconds"], "distance": round(float(t["km"]) * 1000, 1), "avgSpeed": t["avg"],
        }
        for d, t in page
    ]  # fmt: skip
    totals = [
        {"imei": d.imei, "totalMileage": round(sum(float(t["km"]) * 1000 for o, t in every if o is d), 1)}
        for d in devices
    ]
    return rows, totals


def _obd_page(rows: list[Any], form: dict[str, str]) -> dict[str, Any]:
    size, number = _int(form, "page_size", 50, 1, 100), _int(form, "page_no", 1, 1)
    page = _page(rows, form, offset=False)
    return {"currentPage": number, "pageSize": size, "totalRecord": len(rows), "result": page}


def obd_list(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    _target(sandbox, form, "account")
    devices = _devices(sandbox, form)
    start, stop = _range(form, "start_time", "end_time", OBD_MAX_SPAN_S, now)
    rows = [
        {
            "imei": d.imei, "dataReportTime": jimi_time(f.time),
            "odometerReading": f"{sandbox.fleet.odometer_km(d, f.time):.1f}",
            "deviceAccumulatedMileage": f"{sandbox.fleet.odometer_km(d, f.time) - 12_000:.1f}",
            "remainingFuelPercentage": f"{60 - (f.time // 600) % 40}", "coolantTemperature": "88",
            "vehicleBatterVoltage": "138", "currentRPM": f"{int(900 + f.speed_kmh * 40)}",
            "currentSpeed": f"{f.speed_kmh:g}", "vin": f"JTDBR32E70{d.index:07d}",
        }
        for d in devices
        for f in sandbox.fleet.obd(d, start, stop, now)
    ]  # fmt: skip
    return None, _obd_page(rows, form)


def obd_fault(sandbox: JimiSandbox, form: dict[str, str], now: float) -> Answer:
    _target(sandbox, form, "account")
    devices = _devices(sandbox, form)
    start, stop = _range(form, "start_time", "end_time", OBD_MAX_SPAN_S, now)
    rows = [
        {
            "imei": d.imei, "deviceName": d.name, "faultCode": "P0301",
            "faultDetail": "Cylinder 1 misfire detected", "eventTime": jimi_time(t),
        }
        for d in devices
        for t in sandbox.fleet.faults(d, start, stop, now)
    ]  # fmt: skip
    return None, _obd_page(rows, form)


HANDLERS: dict[str, Callable[[JimiSandbox, dict[str, str], float], Answer]] = {
    "jimi.oauth.token.get": token_get,
    "jimi.oauth.token.refresh": token_refresh,
    "jimi.user.device.list": device_list,
    "jimi.user.device.location.list": location_list,
    "jimi.device.track.list": track_list,
    "jimi.device.alarm.list": alarm_list,
    "jimi.open.platform.report.parking": parking_report,
    "jimi.open.platform.report.trips": trips_report,
    "jimi.device.track.mileage": track_mileage,
    "jimi.device.obd.list": obd_list,
    "jimi.device.obd.fault": obd_fault,
}
