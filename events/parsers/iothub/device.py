"""IoT Hub /pushevent → device_event, /pushlbs → lbs (docs/jimi.md, "Paths")."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, computed_field, model_validator

from events.parsers.base import ParsedEvent
from events.parsers.fields import Imei, OptInt, Time, is_blank, shown, to_int, to_position_type
from events.parsers.items import DEVICE_IMEI, ItemModel
from events.parsers.kinds import device_event_event, lbs_event
from events.parsers.models import DeviceEvent


class Cell(BaseModel):
    lac: int
    cell_id: int
    rssi: int | None


def _cells(value: Any) -> list[dict[str, Any]]:
    """cellList is "LAC,CI,RSSI;LAC,CI,RSSI" (a list of objects is accepted too)."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [_cell_from_object(cell) for cell in value]
    if not isinstance(value, str):
        raise ValueError(f"not a cell list {shown(value)}")
    return [_cell_from_text(group) for group in value.split(";") if group.strip()]


def _cell_from_text(group: str) -> dict[str, Any]:
    parts = [part.strip() for part in group.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError(f"not a LAC,CI,RSSI group {shown(group)}")
    return {"lac": to_int(parts[0]), "cell_id": to_int(parts[1]), "rssi": to_int(parts[2]) if len(parts) == 3 else None}


def _cell_from_object(cell: Any) -> dict[str, Any]:
    if not isinstance(cell, dict):
        raise ValueError(f"not a cell {shown(cell)}")
    cell_id = next((cell[k] for k in ("ci", "cellId", "cell_id", "cid") if k in cell), None)
    rssi = cell.get("rssi")
    return {
        "lac": to_int(cell.get("lac")),
        "cell_id": to_int(cell_id),
        "rssi": None if rssi in (None, "") else to_int(rssi),
    }


class LbsJson(BaseModel):
    """The lbsJson string: {"mcc":..,"mnc":..,"cellList":"LAC,CI,RSSI;..."}; other keys (Wi-Fi) kept."""

    model_config = ConfigDict(extra="allow")

    mcc: OptInt = None
    mnc: OptInt = None
    cells: Annotated[list[Cell], BeforeValidator(_cells)] = Field(
        default_factory=list, validation_alias=AliasChoices("cellList", "cells")
    )


def _json_object(value: Any) -> Any:
    # lbsJson is JSON inside a JSON string.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("not a JSON object") from None
    return value


def _post_type(value: Any) -> str | None:
    if is_blank(value):
        return None
    kind = to_position_type(value)
    if kind not in ("lbs", "wifi"):
        raise ValueError(f"not LBS or WIFI {shown(value)}")
    return kind


class LbsReport(ItemModel):
    """kind lbs (IoT Hub /pushlbs): mcc, mnc, cells, post_type; lbsJson keys we do not read go to extra."""

    imei: Imei = Field(exclude=True, validation_alias=DEVICE_IMEI)
    gate_time: Time = Field(exclude=True, validation_alias="gateTime")
    lbs: Annotated[LbsJson, BeforeValidator(_json_object)] = Field(exclude=True, validation_alias="lbsJson")
    post_type: Annotated[Literal["lbs", "wifi"] | None, BeforeValidator(_post_type)] = Field(
        None, validation_alias="postType"
    )

    @computed_field
    @property
    def mcc(self) -> int | None:
        return self.lbs.mcc

    @computed_field
    @property
    def mnc(self) -> int | None:
        return self.lbs.mnc

    @computed_field
    @property
    def cells(self) -> list[Cell]:
        return self.lbs.cells

    @model_validator(mode="after")
    def _keep_unread_lbs_keys(self) -> LbsReport:
        if self.lbs.model_extra:
            self.extra = {**self.extra, "lbsJson": self.lbs.model_extra}
        return self


PUSHEVENT_VERSION = 1


def parse_pushevent_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return device_event_event(DeviceEvent.model_validate(item))


PUSHLBS_VERSION = 1


def parse_pushlbs_item(item: dict[str, Any], received_at: datetime) -> ParsedEvent:
    return lbs_event(LbsReport.model_validate(item))
