"""A minimal Mapbox Vector Tile (protobuf, spec 2.1) reader for the tests: layers, their features' attributes and
geometry types. Enough to check what the tile endpoint serves, without a protobuf dependency."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

GEOMETRY_TYPES = {0: "UNKNOWN", 1: "POINT", 2: "LINESTRING", 3: "POLYGON"}


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): varints as int, length-delimited as bytes, fixed as raw bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire} is not in the vector tile spec")
        yield number, wire, value


def _packed(data: bytes) -> list[int]:
    out, i = [], 0
    while i < len(data):
        value, i = _varint(data, i)
        out.append(value)
    return out


def _value(data: bytes) -> Any:
    for number, _wire, raw in _fields(data):
        if number == 1:
            return raw.decode()
        if number == 2:
            return struct.unpack("<f", raw)[0]
        if number == 3:
            return struct.unpack("<d", raw)[0]
        if number in (4, 5):
            return raw
        if number == 6:
            return (raw >> 1) ^ -(raw & 1)
        if number == 7:
            return bool(raw)
    return None


def decode(tile: bytes) -> dict[str, dict[str, Any]]:
    """{layer name: {"extent": n, "features": [{"type": "LINESTRING", "properties": {...}}, ...]}}."""
    layers: dict[str, dict[str, Any]] = {}
    for number, _wire, layer_bytes in _fields(tile):
        if number != 3:
            continue
        name, extent, keys, values, raw_features = "", 4096, [], [], []
        for field, _w, value in _fields(layer_bytes):
            if field == 1:
                name = value.decode()
            elif field == 2:
                raw_features.append(value)
            elif field == 3:
                keys.append(value.decode())
            elif field == 4:
                values.append(_value(value))
            elif field == 5:
                extent = value
        features = []
        for raw in raw_features:
            tags: list[int] = []
            kind = 0
            for field, _w, value in _fields(raw):
                if field == 2:
                    tags = _packed(value)
                elif field == 3:
                    kind = value
            properties = {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
            features.append({"type": GEOMETRY_TYPES[kind], "properties": properties})
        layers[name] = {"extent": extent, "features": features}
    return layers
