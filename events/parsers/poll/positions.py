"""Poll responses that carry fixes: location.list / location.get (latest fix per device) and track.list
(a device's history). Same payload as /pushgps; the spellings differ (Q3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field

from events.parsers.base import ParsedEvent
from events.parsers.fields import Imei, OptFloat, OptInt
from events.parsers.kinds import position_event
from events.parsers.models import PositionFix
from events.parsers.poll.responses import rows

LOCATION_VERSION = 1


class LocationRow(PositionFix):
    # `distance` here is "distance from device" ("-1" seen), not an odometer: leave it in extra.
    odometer_m: OptFloat = Field(None, validation_alias="odometer_m")
    imei: Imei = Field(exclude=True, validation_alias="imei")


def parse_location_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    # Expired devices report lat = lng = 0 (Q6): kept, a projector marks them.
    return position_event(LocationRow.model_validate(row))


TRACK_VERSION = 1


class TrackRow(PositionFix):
    imei: Imei = Field(exclude=True, validation_alias=AliasChoices("imei", "deviceImei"))
    # The doc calls `satellite` "GPS antenna signal strength"; integrators read it as the satellite count.
    satellites: OptInt = Field(None, validation_alias=AliasChoices("satellite", "gpsNum", "satelliteNum"))


def track_rows(document: dict[str, Any]) -> list[Any]:
    """track.list rows carry no imei (it is a request parameter): the poller adds a top-level "imei"."""
    imei = document.get("imei")
    found = rows(document)
    if imei is None:
        return found
    return [{"imei": imei, **row} if isinstance(row, dict) else row for row in found]


def parse_track_row(row: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return position_event(TrackRow.model_validate(row))
