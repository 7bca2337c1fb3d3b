"""HMAC-signed JSON pushes from our own integrations: fuel_purchase and driver_roster."""

from __future__ import annotations

from datetime import timedelta

import pytest

from events.parsers import ParseError, parse_raw, parser_version
from events.tests.parsing import RECEIVED_AT, only_event, parse_json, utc

PURCHASE = {
    "id": "wa-123",
    "plate": "KCA 123A",
    "imei": None,
    "occurred_at": "2026-11-20T08:15:00Z",
    "litres": 40.5,
    "amount": 6500,
    "currency": "KES",
    "odometer_km": 12345.6,
    "station": "Total Ngong Rd",
    "reported_by": "+254700000000",
}
DRIVER = {
    "hr_id": "E1001",
    "name": "Jane Wanjiru",
    "phone": "+254711000000",
    "licence_number": "DL-123456",
    "active": True,
    "vehicle_plate": "KCA 123A",
    "assigned_from": "2026-11-01",
    "assigned_until": None,
}


def fuel(*events):
    return parse_json("hmac", "hmac", {"type": "fuel_purchase", "events": list(events)})


def roster(*drivers, extracted_at="2026-11-20T06:00:00Z"):
    return parse_json("hmac", "hmac", {"type": "driver_roster", "extracted_at": extracted_at, "drivers": list(drivers)})


def test_it_parses_a_fuel_purchase_by_plate():
    event = only_event(fuel(PURCHASE))

    assert event.kind == "fuel"
    assert event.imei is None
    assert event.occurred_at == utc(2026, 11, 20, 8, 15, 0)
    assert event.payload == {
        "source": "whatsapp",
        "external_id": "wa-123",
        "plate": "KCA 123A",
        "litres": 40.5,
        "amount": 6500.0,
        "currency": "KES",
        "odometer_km": 12345.6,
        "station": "Total Ngong Rd",
        "reported_by": "+254700000000",
        "extra": {},
    }


def test_it_keeps_the_plate_as_given():
    assert only_event(fuel({**PURCHASE, "plate": " kca123a "})).payload["plate"] == "kca123a"


def test_it_parses_a_fuel_purchase_by_imei():
    event = only_event(fuel({**PURCHASE, "plate": None, "imei": "868120246598152"}))

    assert event.imei == "868120246598152"
    assert event.payload["plate"] is None


def test_it_needs_a_plate_or_an_imei():
    result = fuel({**PURCHASE, "plate": ""})

    assert result.item_errors == ["item 0: needs a plate or an imei"]


def test_it_reports_a_bad_purchase_and_parses_the_rest():
    result = fuel({**PURCHASE, "id": "wa-1", "litres": "forty"}, {**PURCHASE, "id": "wa-2"}, {**PURCHASE, "id": None})

    assert [event.payload["external_id"] for event in result.events] == ["wa-2"]
    assert result.item_errors == ["item 0: litres: not a number 'forty'", "item 2: id: missing"]


def test_it_gives_a_re_sent_purchase_the_same_key_and_a_corrected_one_a_new_key():
    first = only_event(fuel(PURCHASE))
    resent = only_event(
        parse_json(
            "hmac",
            "hmac",
            {"type": "fuel_purchase", "events": [PURCHASE]},
            received_at=RECEIVED_AT + timedelta(hours=1),
        )
    )
    corrected = only_event(fuel({**PURCHASE, "litres": 45.0}))

    assert resent.dedup_key == first.dedup_key
    assert corrected.dedup_key != first.dedup_key


def test_it_parses_a_driver_roster():
    event = only_event(roster(DRIVER))

    assert event.kind == "driver_record"
    assert event.imei is None
    assert event.occurred_at == utc(2026, 11, 20, 6, 0, 0)
    assert event.payload == {
        "hr_id": "E1001",
        "name": "Jane Wanjiru",
        "phone": "+254711000000",
        "licence_number": "DL-123456",
        "active": True,
        "vehicle_plate": "KCA 123A",
        "assigned_from": "2026-11-01T00:00:00Z",
        "assigned_until": None,
        "extra": {},
    }


def test_it_keeps_a_driver_listed_twice_with_two_vehicles():
    result = roster(DRIVER, {**DRIVER, "vehicle_plate": "KDA 999Z"})

    assert len({event.dedup_key for event in result.events}) == 2


def test_it_reports_a_driver_without_hr_id():
    result = roster({**DRIVER, "hr_id": ""}, DRIVER)

    assert len(result.events) == 1
    assert result.item_errors == ["item 0: hr_id: missing"]


def test_it_refuses_a_roster_without_extracted_at():
    with pytest.raises(ParseError, match="extracted_at: missing"):
        roster(DRIVER, extracted_at=None)


def test_it_refuses_a_body_without_its_array():
    with pytest.raises(ParseError, match="needs an array 'drivers'"):
        parse_json("hmac", "hmac", {"type": "driver_roster", "extracted_at": "2026-11-20T06:00:00Z"})


def test_it_refuses_a_body_that_is_not_json():
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_raw(
            source_kind="hmac",
            push_kind="hmac",
            content_type="application/json",
            body=b"{oops",
            received_at=RECEIVED_AT,
        )


def test_it_refuses_a_body_without_a_type():
    with pytest.raises(ParseError, match="string 'type'"):
        parse_json("hmac", "hmac", {"events": []})


def test_it_keeps_a_body_of_an_unknown_type_as_one_unsupported_event():
    body = {"type": "tyre_change", "events": [{"plate": "KCA 123A"}]}

    event = only_event(parse_json("hmac", "hmac", body))

    assert event.kind == "unsupported"
    assert event.payload == {"push_kind": "hmac:tyre_change", "item": body}


def test_it_versions_hmac_bodies_as_one_parser():
    assert parser_version("hmac", "hmac") == "hmac/hmac@1"


def test_it_parses_an_empty_batch():
    result = fuel()

    assert (result.events, result.item_errors) == ([], [])
