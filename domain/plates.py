"""Number plates: the one place a plate is normalised."""

from __future__ import annotations

import re

_NOT_PLATE_CHARS = re.compile(r"[\s\-._/]+")
_PLATE = re.compile(r"^[A-Z0-9]{2,16}$")


def normalize_plate(raw: str) -> str:
    """Upper-case letters and digits only: "KCA 123A", "kca-123a" → "KCA123A"; "UAX 123B" → "UAX123B".

    Separators (spaces, hyphens, dots, slashes) are dropped; anything else is refused, so a typo never
    becomes a second vehicle.
    """
    plate = _NOT_PLATE_CHARS.sub("", (raw or "").strip()).upper()
    if not _PLATE.match(plate):
        raise ValueError(f"not a number plate: {raw!r}")
    return plate


def plate_fragment(raw: str) -> str:
    """Part of a plate as typed into a search ("kda 12" → "KDA12"): the same separators dropped and case folded
    as in `normalize_plate`, without the whole-plate check (a fragment may be one character)."""
    return _NOT_PLATE_CHARS.sub("", (raw or "").strip()).upper()


def plate_tail(plate: str) -> str:
    """The short form drivers and dispatchers say: the last four characters ("KCA123A" → "123A")."""
    return normalize_plate(plate)[-4:]
