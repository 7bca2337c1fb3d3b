"""The base of every item model: Jimi names in, our names out, and nothing the device sent lost.

A model reads Jimi's field names through `validation_alias` (so an error names the field as Jimi sent it)
and dumps our names. Whatever an item carries that no field reads lands in `extra`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict, Field, model_validator

# The IoT Hub push token (and Open API tokens, should a response carry one) never enter a payload.
SECRET_FIELDS = frozenset({"token", "accessToken", "refreshToken", "access_token", "refresh_token"})


def _alias_paths(name: str, alias: Any) -> list[tuple[str | int, ...]]:
    if alias is None:
        return [(name,)]
    if isinstance(alias, str):
        return [(alias,)]
    if isinstance(alias, AliasPath):
        return [tuple(alias.path)]
    return [path for choice in alias.choices for path in _alias_paths(name, choice)]


@dataclass(frozen=True)
class FieldMap:
    """The item keys a model reads: top-level names, and keys read inside a nested object (`msg.lat`)."""

    top: frozenset[str]
    nested: dict[str, frozenset[str]]
    plain: frozenset[str]  # top-level names read as they are and never looked into


@functools.cache
def field_map(model: type[BaseModel]) -> FieldMap:
    fields = model.model_fields.items()
    paths = [p for name, f in fields if name != "extra" for p in _alias_paths(name, f.validation_alias)]
    nested: dict[str, set[str]] = {}
    for path in paths:
        if len(path) == 2:
            nested.setdefault(str(path[0]), set()).add(str(path[1]))
    top = frozenset(str(path[0]) for path in paths if len(path) == 1)
    return FieldMap(top=top, nested={key: frozenset(names) for key, names in nested.items()}, plain=top - set(nested))


def unmapped_fields(data: dict[str, Any], fields: FieldMap) -> dict[str, Any]:
    """The item's fields no model field reads; for a nested object (IoT Hub `msg`) its unread keys."""
    if fields.plain.issuperset(data):  # the common item: every field is one the model reads
        return {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECRET_FIELDS:
            continue
        if key in fields.nested and isinstance(value, dict):
            rest = {k: v for k, v in value.items() if k not in fields.nested[key]}
            if rest:
                extra[key] = rest
        elif key not in fields.top:
            extra[key] = value
    return extra


class ItemModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Undocumented pushes keep every field they sent, mapped or not: our mapping of them is a guess.
    KEEP_ALL_FIELDS: ClassVar[bool] = False

    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_extra(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if cls.KEEP_ALL_FIELDS:
            return {**data, "extra": {k: v for k, v in data.items() if k not in SECRET_FIELDS}}
        return {**data, "extra": unmapped_fields(data, field_map(cls))}


DEVICE_IMEI = AliasChoices("deviceImei", "imei", AliasPath("msg", "deviceImei"))
