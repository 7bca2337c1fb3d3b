"""The Open API contract we depend on, pinned: strict models of every method's response (docs/jimi.md, "Contract
check"). Jimi changes fields without notice; the daily check (events.jimi.services.contract_check_run) validates a
real answer of each method against these and names every field that is unknown, missing or re-typed.

Pinned from Jimi's field tables and examples. A field that only some devices send is optional (`= None` default);
every other one is required. `str` means a JSON string, `float` a JSON number, `int` an integer number.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Pinned(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TokenResult(Pinned):
    appKey: str
    account: str
    accessToken: str
    expiresIn: int  # documented as a string, returned as a number (Q2)
    refreshToken: str
    time: str


class LocationRow(Pinned):
    imei: str
    deviceName: str
    mcType: str
    icon: str
    status: str
    posType: str
    lat: float
    lng: float
    hbTime: str | None
    gpsTime: str | None
    accStatus: str
    gpsSignal: str
    gpsNum: str
    speed: str
    direction: str
    powerValue: str | None
    batteryPowerVal: str | None
    electQuantity: str
    distance: str
    temperature: str | None
    trackerOil: str | None
    currentMileage: str
    activationFlag: str
    expireFlag: str
    account: str
    customerName: str
    iccid: str | None
    confidence: int | None
    locDesc: str | None = None


class DeviceRow(Pinned):
    imei: str
    deviceName: str
    mcType: str
    mcTypeUseScope: str
    sim: str | None
    expiration: str | None
    activationTime: str | None
    reMark: str | None
    vehicleName: str | None
    vehicleIcon: str | None
    vehicleNumber: str | None
    vehicleModels: str | None
    carFrame: str | None
    driverName: str | None
    driverPhone: str | None
    enabledFlag: int
    engineNumber: str | None
    deviceGroupId: str | None
    deviceGroup: str | None


class TrackRow(Pinned):
    lat: float
    lng: float
    gpsTime: str
    direction: float
    gpsSpeed: float
    posType: int
    satellite: int
    ignition: str
    accStatus: str
    gpsMode: int
    confidence: int | None


class TrackData(Pinned):
    mileage: float


class AlarmRow(Pinned):
    deviceName: str
    imei: str
    model: str
    account: str
    alertTypeId: str
    alarmTypeName: str
    alertTime: str
    positioningTime: str
    lat: float
    lng: float
    speed: str
    geoid: str | None


class ParkingRow(Pinned):
    imei: str
    startTime: str
    endTime: str
    durSecond: str
    stopSecond: str
    lng: float
    lat: float
    addr: str | None
    deviceName: str
    mcType: str
    acc: str


class ParkingData(Pinned):
    totalTime: str
    dataTotalRows: str
    rows: list[ParkingRow]


class TripTotals(Pinned):
    allTrips: str
    totalDis: str
    travelTime: str
    totalTime: str
    totalAvgSpeed: str
    allTotalMaxSpeed: str
    totalFuel: str
    oilWear: str


class TripRow(Pinned):
    imei: str
    startTime: str
    endTime: str
    startLat: str
    startLng: str
    endLat: str
    endLng: str
    totalMileage: str
    travelTime: str
    averageSpeed: str
    maxSpeed: str
    oilWear: str
    fuel: str
    startMileage: str
    endMileage: str


class TripDay(Pinned):
    Searchdate: str
    tripNum: str
    inTotal: TripTotals
    dayData: list[TripRow]


class TripDevice(Pinned):
    imei: str
    deviceName: str
    inTotal: TripTotals
    tripsData: list[TripDay]


class TripsData(Pinned):
    dayList: list[TripDevice]


class MileageRow(Pinned):
    imei: str
    startTime: str
    endTime: str
    startLat: float
    startLng: float
    endLat: float
    endLng: float
    runTimeSecond: float
    distance: float
    avgSpeed: float


class MileageTotal(Pinned):
    imei: str
    totalMileage: float


class ObdRow(Pinned):
    imei: str
    dataReportTime: str
    odometerReading: str
    deviceAccumulatedMileage: str
    remainingFuel: str | None = None
    remainingFuelPercentage: str | None = None
    coolantTemperature: str
    vehicleBatterVoltage: str  # sic
    currentRPM: str
    currentSpeed: str
    vin: str | None


class ObdFaultRow(Pinned):
    imei: str
    deviceName: str
    faultCode: str
    faultDetail: str
    eventTime: str


class ObdPage[Row: BaseModel](Pinned):
    currentPage: int
    pageSize: int
    totalRecord: int
    result: list[Row]


class Envelope[Result, Data](Pinned):
    code: int | str  # 0 or "0" (Q2)
    message: str
    result: Result
    data: Data


# The methods the platform depends on, each with the model of its whole answer.
CONTRACTS: dict[str, type[BaseModel]] = {
    "jimi.oauth.token.get": Envelope[TokenResult, None],
    "jimi.oauth.token.refresh": Envelope[TokenResult, None],
    "jimi.user.device.list": Envelope[list[DeviceRow], None],
    "jimi.user.device.location.list": Envelope[list[LocationRow], None],
    "jimi.device.track.list": Envelope[list[TrackRow], TrackData],
    "jimi.device.alarm.list": Envelope[list[AlarmRow], None],
    "jimi.open.platform.report.parking": Envelope[None, ParkingData],
    "jimi.open.platform.report.trips": Envelope[None, TripsData],
    "jimi.device.track.mileage": Envelope[list[MileageRow], list[MileageTotal]],
    "jimi.device.obd.list": Envelope[None, ObdPage[ObdRow]],
    "jimi.device.obd.fault": Envelope[None, ObdPage[ObdFaultRow]],
}

SECRET_FIELDS = frozenset({"accessToken", "refreshToken"})

_JSON_TYPES = {
    "string": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array", "dict": "object",
    "model": "object", "none": "null",
}  # fmt: skip


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _expected(error_type: str) -> str:
    name = error_type.removesuffix("_type").removesuffix("_parsing")
    if name.startswith("model"):
        return "object"
    return _JSON_TYPES.get(name, name.replace("_", " "))


def _path(loc: tuple[int | str, ...]) -> str:
    """result[0].alertTypeId — generic parameters of a union (`list[...]`, `none`) left out of the path."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("none", "int", "str") or "[" in str(part) or str(part).startswith(("list", "function")):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def drifts(method: str, document: Any) -> list[str]:
    """What differs between an answer and the pinned contract, one line per field: `unknown field`, `missing field`
    or `re-typed field` (what we pinned, what came). Values are never quoted (an answer may carry a token)."""
    model = CONTRACTS[method]
    try:
        model.model_validate(document)
    except ValidationError as exc:
        found: dict[str, str] = {}
        retyped: dict[str, set[str]] = {}
        got: dict[str, str] = {}
        for error in exc.errors():
            where = _path(tuple(error["loc"]))
            kind = error["type"]
            if kind == "extra_forbidden":
                found[where] = f"{where}: unknown field ({_json_type(error['input'])})"
            elif kind == "missing":
                found[where] = f"{where}: missing field"
            else:
                retyped.setdefault(where, set()).add(_expected(kind))
                got[where] = _json_type(error["input"])
        for where, expected in retyped.items():
            pinned = " or ".join(sorted(expected))
            found.setdefault(where, f"{where}: re-typed field (pinned {pinned}, got {got[where]})")
        return [found[key] for key in sorted(found)]
    return []
