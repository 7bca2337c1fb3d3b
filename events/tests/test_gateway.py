"""The push gateway: authenticate, one INSERT, answer. Nothing stored without proof; nothing answered 200
without the row."""

from __future__ import annotations

import json
import random
import time
from urllib.parse import urlencode

import pytest
import requests

from events.models import PushRejection, RawEvent
from events.tests.conftest import HMAC_SECRET, IOTHUB_SECRET, TSP_KEY, hmac_headers

GPS_ITEM = {"deviceImei": "868120246598152", "gpsTime": "2026-01-13 02:24:37", "lat": 22.576539, "lng": 113.942885}


def test_it_stores_an_iothub_push_verbatim_and_acks_like_the_hub_expects(post_iothub, iothub_source):
    response = post_iothub("pushgps", [GPS_ITEM])
    assert response.status_code == 200
    assert response.json() == {"code": 0, "msg": "success"}
    raw = RawEvent.objects.get()
    expected = urlencode({"token": IOTHUB_SECRET, "data_list": json.dumps([GPS_ITEM])}).encode()
    assert bytes(raw.body) == expected
    assert (raw.source_kind, raw.push_kind, raw.status) == ("jimi-iothub", "pushgps", "pending")
    assert raw.content_type == "application/x-www-form-urlencoded"
    assert raw.remote_addr == "127.0.0.1"


def test_it_stores_unknown_push_paths_too(post_iothub, iothub_source):
    assert post_iothub("pushsomethingnew", [{"x": 1}]).status_code == 200
    assert RawEvent.objects.get().push_kind == "pushsomethingnew"


def test_it_refuses_a_bad_token_stores_nothing_and_counts_it(post_iothub, iothub_source):
    response = post_iothub("pushgps", [GPS_ITEM], token="guess")
    assert response.status_code == 401
    assert not RawEvent.objects.exists()
    assert PushRejection.objects.get().count == 1
    post_iothub("pushgps", [GPS_ITEM], token="guess again")
    assert PushRejection.objects.get(source_name="hub", reason="bad_token").count == 2


def test_it_refuses_unknown_and_disabled_sources(post_iothub, iothub_source):
    assert post_iothub("pushgps", [GPS_ITEM], source="nobody").status_code == 401
    iothub_source.enabled = False
    iothub_source.save()
    from events.gateway import sources

    sources.clear()
    assert post_iothub("pushgps", [GPS_ITEM]).status_code == 401
    assert not RawEvent.objects.exists()


def test_it_refuses_a_body_over_one_mebibyte(post_iothub, iothub_source):
    response = post_iothub("pushgps", "x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert not RawEvent.objects.exists()


def test_it_stores_an_authenticated_but_malformed_body_and_answers_200(post_iothub, iothub_source):
    assert post_iothub("pushgps", "[{not json").status_code == 200
    assert bytes(RawEvent.objects.get().body).endswith(b"%5B%7Bnot+json")


def test_it_takes_a_tsp_push_by_url_key_and_records_its_msg_type(client, tsp_source):
    body = urlencode({"msgType": "jimi.push.device.alarm", "data": json.dumps({"imei": "868120145233604"})})
    response = client.post(f"/push/tsp/tsp/{TSP_KEY}", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "success"}
    assert RawEvent.objects.get().push_kind == "jimi.push.device.alarm"


def test_it_refuses_a_tsp_push_with_a_wrong_key(client, tsp_source):
    response = client.post("/push/tsp/tsp/wrong-key", data="msgType=x&data={}", content_type="text/plain")
    assert response.status_code == 401
    assert not RawEvent.objects.exists()


@pytest.mark.parametrize(("cidrs", "status"), [(["10.9.0.0/16"], 401), (["127.0.0.0/8"], 200)])
def test_it_applies_the_tsp_cidr_allow_list(client, tsp_source, cidrs, status):
    tsp_source.allowed_cidrs = cidrs
    tsp_source.save()
    response = client.post(f"/push/tsp/tsp/{TSP_KEY}", data="msgType=x&data={}", content_type="text/plain")
    assert response.status_code == status
    assert RawEvent.objects.exists() is (status == 200)


def test_it_takes_a_signed_hmac_push(client, hmac_source):
    body = json.dumps({"type": "fuel_purchase", "events": []}).encode()
    response = client.post("/push/hmac/fuel-bot", data=body, content_type="application/json", **hmac_headers(body))
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert bytes(RawEvent.objects.get().body) == body


@pytest.mark.parametrize(
    "headers",
    [
        {"secret": "not-the-secret"},
        {"skew": -302},
        {"skew": +302},
    ],
    ids=["bad-signature", "stale", "future"],
)
def test_it_refuses_a_bad_or_stale_hmac_signature(client, hmac_source, headers):
    body = b'{"type": "fuel_purchase", "events": []}'
    if "skew" in headers:
        headers = {"at": time.time() + headers["skew"]}
    response = client.post(
        "/push/hmac/fuel-bot", data=body, content_type="application/json", **hmac_headers(body, **headers)
    )
    assert response.status_code == 401
    assert not RawEvent.objects.exists()


def test_it_refuses_an_unsigned_hmac_push(client, hmac_source):
    response = client.post("/push/hmac/fuel-bot", data=b"{}", content_type="application/json")
    assert response.status_code == 401


def test_it_stores_signed_non_utf8_bytes_verbatim(client, hmac_source):
    body = b"\xff\xfe{\x00bad"
    response = client.post("/push/hmac/fuel-bot", data=body, content_type="application/json", **hmac_headers(body))
    assert response.status_code == 200
    assert bytes(RawEvent.objects.get().body) == body
    assert HMAC_SECRET.encode() not in bytes(RawEvent.objects.get().body)


def test_it_only_takes_post(client, iothub_source):
    assert client.get("/push/iothub/hub/pushgps").status_code == 405


def test_it_answers_503_and_never_200_when_the_database_is_down(role_process):
    gateway = role_process("gateway", env={"DATABASE_URL": "postgis://postgres@127.0.0.1:9/nowhere"})
    gateway.wait_http("/health/gateway")
    body = urlencode({"token": IOTHUB_SECRET, "data_list": json.dumps([GPS_ITEM])})
    response = requests.post(
        gateway.base_url + "/push/iothub/hub/pushgps",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=15,
    )
    assert response.status_code == 503


def _tsp_push_via_proxy(client, forwarded: str):
    return client.post(
        f"/push/tsp/tsp/{TSP_KEY}",
        data="msgType=x&data={}",
        content_type="text/plain",
        HTTP_X_FORWARDED_FOR=forwarded,
        REMOTE_ADDR="10.0.0.2",  # our proxy
    )


def test_it_checks_the_allow_list_against_the_hop_our_proxy_appended_not_the_one_the_sender_wrote(
    client, tsp_source, settings
):
    settings.PUSH_TRUST_X_FORWARDED_FOR = True
    tsp_source.allowed_cidrs = ["47.88.0.0/16"]
    tsp_source.save()
    # The sender claims an allowed address; our proxy appended the address it really came from.
    spoofed = _tsp_push_via_proxy(client, "47.88.1.1, 203.0.113.9")
    assert spoofed.status_code == 401
    assert not RawEvent.objects.exists()
    assert PushRejection.objects.get(source_name="tsp").reason == "network"
    # Whatever the sender wrote first, a push that really comes from the allowed network is taken.
    genuine = _tsp_push_via_proxy(client, "203.0.113.9, 47.88.1.1")
    assert genuine.status_code == 200
    assert RawEvent.objects.get().remote_addr == "47.88.1.1"


def test_it_ignores_x_forwarded_for_unless_told_to_trust_it(client, tsp_source, settings):
    settings.PUSH_TRUST_X_FORWARDED_FOR = False
    tsp_source.allowed_cidrs = ["47.88.0.0/16"]
    tsp_source.save()
    assert _tsp_push_via_proxy(client, "47.88.1.1").status_code == 401  # the socket's address is 10.0.0.2


def test_it_counts_refusals_of_made_up_source_names_in_one_row(client, post_iothub, iothub_source, tsp_source):
    post_iothub("pushgps", [GPS_ITEM], token="guess")
    for n in range(50):
        assert post_iothub("pushgps", [GPS_ITEM], source=f"probe-{n}-{random.getrandbits(40):x}").status_code == 401
    for n in range(5):
        response = client.post(f"/push/tsp/made-up-{n}/key", data="msgType=x&data={}", content_type="text/plain")
        assert response.status_code == 401
    client.post("/push/tsp/tsp/wrong-key", data="msgType=x&data={}", content_type="text/plain")
    rows = sorted(PushRejection.objects.values_list("source_name", "reason", "count"))
    assert rows == [
        ("(unknown)", "bad_key", 5),
        ("(unknown)", "unknown_source", 50),
        ("hub", "bad_token", 1),
        ("tsp", "bad_key", 1),
    ]
    assert len(set(PushRejection.objects.values_list("minute", flat=True))) == 1
