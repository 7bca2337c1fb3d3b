"""Alarm names and severities, from the TrackSolid Pro appendix "Device alarm type" (docs/jimi.md, "Alarm codes").

Device alarms carry numeric ids, platform alarms English text ids; push (`alarmType`), alarm.list
(`alertTypeId`) and IoT Hub (`msg.alertType`, msgClass 0) share them. JT/T 808 devices (IoT Hub
msgClass 1) use a different table whose numbers collide with this one (e.g. 256), so it is not applied there.
"""

from __future__ import annotations

import re
from typing import Literal

Severity = Literal["critical", "warning", "info"]

NUMERIC_ALARMS = {
    "1": "SOS alert", "2": "Power cut off alert", "3": "Vibration alert", "4": "Enter geo-fence(terminal)",
    "5": "Exit geo-fence(terminal)", "6": "Overspeed alert(terminal)", "9": "Displacement alert(terminal)",
    "10": "Enter GPS blind zone", "11": "Exit GPS blind zone", "12": "Booting notification",
    "13": "GPS first fix notification", "14": "Low external power alert", "15": "Low power protection alert",
    "16": "SIM card change", "17": "Power off alert", "18": "Airplane mode after low power protection",
    "19": "Disassembly alert", "20": "Door detection alert", "21": "Battery low power shutdown",
    "22": "Voice alarm", "24": "Cover Move Alert", "25": "Internal low battery alert", "28": "Door open",
    "29": "Door close", "35": "Fall Alert", "36": "Plug in charger", "39": "Unauthorized Open Alert",
    "40": "Initiative Offline (Power Off)", "41": "Sudden Acceleration", "42": "Sharp Turn Left",
    "43": "Sharp Turn Right", "44": "Collision Alert", "45": "Vehicle Turn Over", "48": "Sudden Deceleration",
    "50": "Device Pull Out", "55": "Collision Alert", "58": "Cancel Unauthorized Open", "71": "Fatigue driving",
    "76": "Sharp turn", "77": "Abrupt lane switching", "78": "Vehicle stability", "79": "Vehicle angle abnormality",
    "80": "Door close", "81": "Door open", "82": "Temperature Alert", "83": "Stealing oil", "86": "Start charging",
    "87": "Stop charging/remove charger", "89": "full of reminders", "90": "Low battery alert",
    "91": "High Temperature(terminal)", "92": "Low Temperature(terminal)", "100": "Cancel Temperature Alert",
    "101": "Cancel Collision Alert", "113": "Increase in oil level", "114": "Install alert",
    "115": "Oil sensor timeout", "119": "High voltage at ADC1", "120": "Low voltage at ADC1",
    "126": "High humidity", "127": "Low humidity", "128": "DVR vibration", "135": "Overspeed(DVR)",
    "136": "Power off(DVR)", "138": "Immobilization ON", "139": "Immobilization OFF", "140": "Close eyes",
    "141": "Land transport mode", "142": "Environmental anomaly", "143": "Distraction",
    "144": "Sudden Acceleration(DVR)", "145": "Sudden Deceleration(DVR)", "146": "Sharp Turn(DVR)",
    "147": "Collision(DVR)", "148": "No Face", "149": "Ocean transport mode", "150": "Static transport mode",
    "151": "Phone Calling", "154": "Smoking", "160": "Yawn", "163": "Head lowered", "165": "RFID reporting event",
    "168": "Engine failure", "169": "Undervoltage", "170": "Drinking", "171": "Light detected",
    "172": "Bluetooth MAC searched", "173": "Bluetooth MAC lost", "191": "Device Plug-out", "197": "Engine ON",
    "198": "Engine OFF", "199": "Overtime driving", "202": "Overspeed warning", "203": "Overtime parking warning",
    "204": "Forward collision warning", "205": "Lane departure warning", "206": "Vehicle too close",
    "207": "Pedestrian collision warning", "208": "DMS fatigue warning", "224": "Device Plug-in",
    "227": "Overheating", "230": "INPUT1 on", "231": "INPUT1 off", "232": "INPUT2 on", "233": "INPUT2 off",
    "254": "Ignition on", "256": "Fence in (Bluetooth)", "257": "Fence out (Bluetooth)", "258": "Fence in (WIFI)",
    "259": "Fence out (WIFI)", "260": "Long stillness", "261": "Exercise start", "262": "Exercise stop",
    "263": "LTE jamming detected", "266": "LTE jamming ended", "267": "GPS jamming detected",
    "268": "GPS jamming ended",
    # ACC is "ACC_ON"/"ACC_OFF" in the appendix but 1002/1001 in the official alarm.list example.
    "1001": "ACC Off", "1002": "ACC On",
}  # fmt: skip

TEXT_ALARMS = {
    "ACC_ON": "ACC On", "ACC_OFF": "ACC Off", "in": "Enter geo-fence", "out": "Exit geo-fence",
    "geozone": "Geo-fence alert", "overSpeed": "Overspeed", "fenceOverspeed": "Fence overspeed",
    "offline": "Offline", "stayAlert": "Parking alert", "stayAlertOn": "Idling alert",
    "stayTimeIn": "Not entered fence", "stayTimeOut": "Not left fence", "mileageAlarm": "Maintenance due",
    "laneshift": "Route deviation", "sensitiveAreasFence": "Sensitive area fence",
    "displacementAlarm": "Night driving alert", "carFault": "Car fault", "obd": "OBD alert",
    "high_temp_alarm": "High temperature", "low_temp_alarm": "Low temperature", "DMSAlert": "DMS alert",
    "drivingBehaviorAlert": "Driving behaviour alert", "drivingBehaviorAlertDVR": "Driving behaviour alert (DVR)",
    "other": "Other", "burglarStatus_0": "Disarmed", "burglarStatus_1": "Armed", "burglarStatus_2": "Burglar alert",
    "ubiAcce": "Harsh acceleration (UBI)", "ubiDece": "Harsh braking (UBI)", "ubiTurn": "Harsh turn (UBI)",
    "ubiLane": "Lane change (UBI)", "ubiColl": "Collision (UBI)", "ubiRoll": "Roll over (UBI)",
    "ubiSatt": "Sharp attitude change (UBI)", "ubiStab": "Stability (UBI)",
}  # fmt: skip

# Body status ids: statusTrunk_1 = trunk open, statusLeftFrontDoors_0 = left front door closed.
_BODY_PARTS = {
    "statusTrunk": "Trunk", "statusLeftFrontDoors": "Left front door", "statusRightFrontDoors": "Right front door",
    "statusRightRearDoors": "Right rear door", "statusLeftRearWindows": "Left rear window",
    "statusLeftFrontWindows": "Left front window", "statusRightFrontWindows": "Right front window",
    "statusRightRearWindows": "Right rear window",
}  # fmt: skip
TEXT_ALARMS |= {
    f"{part}_{flag}": f"{label} {state}"
    for part, label in _BODY_PARTS.items()
    for flag, state in (("0", "closed"), ("1", "open"))
}

# Severity is a triage hint for the operator screen, not a verdict: "critical" means someone should look now
# (theft, crash, tampering), "info" is a state change worth recording, everything else is "warning".
CRITICAL = {
    "1", "2", "19", "24", "35", "39", "44", "45", "50", "55", "83", "147", "191", "263", "267",
    "ubiColl", "ubiRoll", "burglarStatus_2",
}  # fmt: skip
INFO = {
    "ACC_ON", "ACC_OFF", "1001", "1002", "4", "5", "11", "12", "13", "28", "29", "36", "58", "80", "81", "86", "87",
    "89", "100", "101", "138", "139", "141", "149", "150", "165", "172", "173", "197", "198", "224", "230", "231",
    "232", "233", "254", "256", "257", "258", "259", "261", "262", "266", "268", "in", "out",
    "burglarStatus_0", "burglarStatus_1",
}  # fmt: skip
ACC_ALIASES = {"ACC_ON": "acc_on", "1002": "acc_on", "ACC_OFF": "acc_off", "1001": "acc_off"}
JTT808_MSG_CLASS = 1  # IoT Hub msgClass 1 = JT/T 808 protocol: different code table


def snake_case(text: str) -> str:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text.strip())
    return re.sub(r"[^0-9a-z]+", "_", spaced.lower()).strip("_")


def table_name(code: str, msg_class: int | None) -> str | None:
    if msg_class == JTT808_MSG_CLASS:
        return None
    return NUMERIC_ALARMS.get(code) or TEXT_ALARMS.get(code)


def normalised_name(code: str, given_name: str | None, msg_class: int | None) -> str:
    """Stable snake_case id: from our table when the code is known (given names vary by platform language)."""
    if msg_class != JTT808_MSG_CLASS and code in ACC_ALIASES:
        return ACC_ALIASES[code]
    name = table_name(code, msg_class) or given_name
    if name and snake_case(name):
        return snake_case(name)
    return f"alarm_{snake_case(code) or 'unknown'}"


def severity(code: str, msg_class: int | None, cleared: bool) -> Severity:
    if cleared:
        return "info"  # an alarm ending is news, not an emergency
    if msg_class == JTT808_MSG_CLASS:
        return "warning"
    if code in CRITICAL:
        return "critical"
    return "info" if code in INFO else "warning"
