"""A corpus of hostile but authenticated pushes, on every push path, through the real gateway and worker: none of
them jams the pipeline. A good push sent after them is parsed and projected within seconds, and no
acknowledged row is left pending."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.testing.fixtures import wait_until
from events.models import RawEvent
from events.tests.conftest import HMAC_SECRET, IOTHUB_SECRET, TSP_KEY

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_IMEI = "868120246598152"
IOTHUB_PATHS = ["pushgps", "pushalarm", "pushhb", "pushevent", "pushlbs", "pushobd", "pushoil", "pushtem",
                "pushtripreport", "pushfaultinfo", "pushunknown"]  # fmt: skip
TSP_TYPES = ["jimi.push.device.alarm", "jimi.open.instruction.raw.receive", "jimi.push.unknown"]
FIELDS = ["deviceImei", "imei", "gpsTime", "lat", "lng", "gpsSpeed", "direction", "acc", "alarmType", "alertTime",
          "gateTime", "powerLevel", "type", "msgClass", "data", "msg", "events", "drivers", "id", "plate",
          "occurred_at", "litres", "extracted_at", "hr_id", "name"]  # fmt: skip

# Strings with what PostgreSQL refuses (NUL, lone surrogates) and what parsers trip on.
nasty_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0xDFFF), max_size=12),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "2026-02-30 25:61:61", "NaN", "-Infinity", "868120"]),
)
nasty_number = st.one_of(
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324]),
)
scalar = st.one_of(st.none(), st.booleans(), nasty_number, nasty_text)
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
                     max_leaves=12)  # fmt: skip
item = st.dictionaries(st.sampled_from(FIELDS) | nasty_text, value, max_size=8)


def deep(n: int) -> str:
    return "[" * n + "]" * n


json_text = st.one_of(
    st.lists(item, max_size=5).map(lambda v: json.dumps(v, allow_nan=True)),
    value.map(lambda v: json.dumps(v, allow_nan=True)),
    st.sampled_from(
        [deep(50), deep(5000), '[{"lat": 1e999}]', '[{"n": ' + "9" * 5000 + "}]", "[" + "{}," * 20000 + "{}]"]
    ),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@st.composite
def hostile_push(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of an authenticated push whose content is hostile."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    kind = draw(st.sampled_from(["iothub", "iothub-raw", "tsp", "hmac", "hmac-raw"]))
    if kind == "iothub":
        path = draw(st.sampled_from(IOTHUB_PATHS))
        return (
            f"/push/iothub/hub/{path}",
            urlencode({"token": IOTHUB_SECRET, "data_list": draw(json_text)}).encode(),
            form,
        )
    if kind == "iothub-raw":  # the token first, then arbitrary bytes
        path = draw(st.sampled_from(IOTHUB_PATHS))
        return (
            f"/push/iothub/hub/{path}",
            b"token=" + IOTHUB_SECRET.encode() + b"&" + draw(st.binary(max_size=256)),
            form,
        )
    if kind == "tsp":
        body = urlencode({"msgType": draw(st.sampled_from(TSP_TYPES)), "data": draw(json_text)}).encode()
        return f"/push/tsp/tsp/{TSP_KEY}", body, form
    if kind == "hmac":
        document = {"type": draw(st.sampled_from(["fuel_purchase", "driver_roster", "nope"])),
                    "events": draw(st.lists(item, max_size=3)), "drivers": draw(st.lists(item, max_size=3)),
                    "extracted_at": draw(nasty_text)}  # fmt: skip
        body = json.dumps(document, allow_nan=True).encode()
    else:
        body = draw(st.binary(max_size=256))
    stamp = str(int(time.time()))
    digest = hmac.new(HMAC_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "/push/hmac/fuel-bot", body, {"X-Fleet-Timestamp": stamp, "X-Fleet-Signature": f"sha256={digest}"}


def good_push() -> bytes:
    fix = {"deviceImei": GOOD_IMEI, "gpsTime": "2026-01-13 02:24:37", "lat": -1.2921, "lng": 36.8219,
           "gpsSpeed": 30, "acc": 1}  # fmt: skip
    return urlencode({"token": IOTHUB_SECRET, "data_list": json.dumps([fix])}).encode()


def test_it_parses_and_projects_a_good_push_after_a_hostile_corpus(
    iothub_source, tsp_source, hmac_source, role_process
):
    env = {"PARSE_SWEEP_EVERY_S": "5", "PROJECT_SWEEP_EVERY_S": "5"}
    gateway = role_process("gateway", env=env)
    role_process("worker", env=env)
    gateway.wait_http()
    answers: list[int] = []

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(hostile_push())
    def send(push: tuple[str, bytes, dict[str, str]]) -> None:
        path, body, headers = push
        response = requests.post(gateway.base_url + path, data=body, headers=headers, timeout=30)
        assert response.status_code in (200, 413), (path, response.status_code, response.content[:200])
        answers.append(response.status_code)

    send()
    assert answers.count(200) >= 100  # the corpus was stored, not refused

    sent = time.monotonic()
    response = requests.post(f"{gateway.base_url}/push/iothub/hub/pushgps", data=good_push(), timeout=10,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert response.status_code == 200

    from django.db import connection

    def projected() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM state_live_positions l JOIN domain_devices d ON d.id = l.device_id"
                " WHERE d.imei = %s",
                [GOOD_IMEI],
            )
            return cursor.fetchone()[0] == 1

    wait_until(projected, timeout=5, every=0.05)
    print(f"good push projected {time.monotonic() - sent:.2f} s after a corpus of {len(answers)} hostile pushes")
    wait_until(lambda: not RawEvent.objects.filter(status="pending").exists(), timeout=5)
    outcomes = set(RawEvent.objects.values_list("status", flat=True))
    assert outcomes <= {"parsed", "partial", "failed"}
