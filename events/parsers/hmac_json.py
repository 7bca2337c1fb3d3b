"""HMAC-signed JSON pushes from our own integrations. The gateway stores push_kind "hmac"; the body's
`type` says which schema it follows.

`fuel_purchase` — fuel bought, as extracted from WhatsApp reports (kind `fuel`, payload source "whatsapp"):

    {"type": "fuel_purchase",
     "events": [{"id": "wa-123",                        # required: the sender's stable id of this purchase
                 "plate": "KCA 123A",                   # plate or imei required; plate kept as given
                 "imei": null,                          # optional, 14-17 digits
                 "occurred_at": "2026-11-20T08:15:00Z", # required; ISO-8601 (no zone = UTC) or epoch
                 "litres": 40.5,                        # required, >= 0
                 "amount": 6500, "currency": "KES",     # optional
                 "odometer_km": 12345.6,                # optional
                 "station": "Total Ngong Rd",           # optional
                 "reported_by": "+254700000000"}]}      # optional

`driver_roster` — the HR system's drivers and their vehicle assignments (kind `driver_record`, one per
driver row, imei None, occurred_at = extracted_at):

    {"type": "driver_roster",
     "extracted_at": "2026-11-20T06:00:00Z",            # required
     "drivers": [{"hr_id": "E1001",                     # required
                  "name": "Jane Wanjiru",               # required
                  "phone": "+254711000000", "licence_number": "DL-123456",   # optional
                  "active": true,                       # optional, default true
                  "vehicle_plate": "KCA 123A",          # optional, as given
                  "assigned_from": "2026-11-01",        # optional: date (midnight UTC) or date-time
                  "assigned_until": null}]}             # optional

Items that fail are reported one by one ("item 2: litres: not a number 'forty'"); a body that is not a
JSON object with a known `type` and its array is a ParseError. Unknown types become one `unsupported`
event so nothing sent is lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, computed_field, model_validator

from events.parsers.base import ParsedEvent, ParseError, Parser, ParseResult, RawBody
from events.parsers.envelopes import json_document, parse_items
from events.parsers.fields import Flag, Float, OptFloat, OptImei, OptText, OptTimeOrDate, Text, Time, to_time
from events.parsers.items import ItemModel
from events.parsers.kinds import driver_record_event, fuel_purchase_event
from events.parsers.unsupported import unsupported_event


class FuelPurchase(ItemModel):
    """kind fuel, source "whatsapp" (hmac fuel_purchase)."""

    external_id: Text = Field(validation_alias="id")
    imei: OptImei = Field(None, exclude=True)
    occurred: Time = Field(exclude=True, validation_alias="occurred_at")
    plate: OptText = None  # as given: normalising plates belongs to the domain layer
    litres: Float
    amount: OptFloat = None
    currency: OptText = None
    odometer_km: OptFloat = None
    station: OptText = None
    reported_by: OptText = None

    @computed_field
    @property
    def source(self) -> Literal["whatsapp"]:
        return "whatsapp"

    @model_validator(mode="after")
    def _check(self) -> FuelPurchase:
        if self.imei is None and self.plate is None:
            raise ValueError("needs a plate or an imei")
        if self.litres < 0:
            raise ValueError(f"litres: negative {self.litres}")
        return self


class DriverRecord(ItemModel):
    """kind driver_record (hmac driver_roster)."""

    hr_id: Text
    name: Text
    phone: OptText = None
    licence_number: OptText = None
    active: Flag = True
    vehicle_plate: OptText = None
    assigned_from: OptTimeOrDate = None
    assigned_until: OptTimeOrDate = None


# One version for both schemas: push_kind is "hmac" whatever the body's type, so bump this when either
# parser changes.
HMAC_VERSION = 1


def parse_fuel_purchase_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return fuel_purchase_event(FuelPurchase.model_validate(item))


def _array(document: dict[str, Any], name: str) -> list[Any]:
    if not isinstance(document.get(name), list):
        raise ParseError(f"{document['type']} body needs an array {name!r}")
    array: list[Any] = document[name]
    return array


def _parse_fuel_purchases(document: dict[str, Any], received_at: datetime) -> ParseResult:
    return parse_items(_array(document, "events"), parse_fuel_purchase_item, received_at)


def _parse_driver_roster(document: dict[str, Any], received_at: datetime) -> ParseResult:
    drivers = _array(document, "drivers")
    try:
        extracted_at = to_time(document.get("extracted_at"))
    except ValueError as exc:
        raise ParseError(f"driver_roster extracted_at: {exc}") from None

    def parse_driver(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
        return driver_record_event(DriverRecord.model_validate(item), extracted_at)

    return parse_items(drivers, parse_driver, received_at)


SCHEMAS = {"fuel_purchase": _parse_fuel_purchases, "driver_roster": _parse_driver_roster}


def parse_hmac(raw: RawBody) -> ParseResult:
    document = json_document(raw)
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        raise ParseError("body must be a JSON object with a string 'type'")
    schema = SCHEMAS.get(document["type"])
    if schema is None:
        event = unsupported_event(f"hmac:{document['type']}", document, raw.received_at)
        return ParseResult(events=[event], item_errors=[])
    return schema(document, raw.received_at)


PARSER = Parser(HMAC_VERSION, parse_hmac)
