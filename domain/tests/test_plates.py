from __future__ import annotations

import pytest

from domain.plates import normalize_plate, plate_fragment, plate_tail


@pytest.mark.parametrize(
    ("raw", "plate"),
    [
        ("KCA 123A", "KCA123A"),
        ("kca-123a", "KCA123A"),
        ("  kca.123a ", "KCA123A"),
        ("UAX 123B", "UAX123B"),  # Uganda
        ("UG 1234A", "UG1234A"),  # Uganda, government-style
        ("KMEA 123A", "KMEA123A"),  # Kenyan motorcycle
        ("kmea/123a", "KMEA123A"),
    ],
)
def test_it_normalises_plates(raw: str, plate: str) -> None:
    assert normalize_plate(raw) == plate


@pytest.mark.parametrize("raw", ["", "   ", "K", "KCA 123A!", "KCA_123Ä", "KCA#123", "A" * 17])
def test_it_refuses_what_is_not_a_plate(raw: str) -> None:
    with pytest.raises(ValueError, match="not a number plate"):
        normalize_plate(raw)


def test_it_gives_the_spoken_tail() -> None:
    assert plate_tail("kca 123a") == "123A"


@pytest.mark.parametrize(("raw", "fragment"), [("kda 12", "KDA12"), ("123-a", "123A"), ("k", "K"), (" ", "")])
def test_it_normalises_a_fragment_by_the_plate_rule(raw: str, fragment: str) -> None:
    assert plate_fragment(raw) == fragment
    if len(fragment) >= 2:
        assert normalize_plate(raw) == fragment  # a whole plate typed the same way gives the same text
