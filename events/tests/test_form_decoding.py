"""The fast form decoder agrees with urllib's on everything a form encoder can produce."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from events.parsers.envelopes import decode_form


def _reference(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=80), min_size=1, max_size=4))
def test_it_decodes_forms_like_urllib(fields):
    body = urlencode(fields).encode()
    assert decode_form(body) == _reference(body)


def test_it_keeps_trailing_spaces_and_newlines():
    body = urlencode({"data_list": '[{"a": "x  "}]\n', "token": "t+k n"}).encode()
    assert decode_form(body) == {"data_list": '[{"a": "x  "}]\n', "token": "t+k n"}


def test_it_falls_back_on_what_an_encoder_would_not_produce():
    assert decode_form(b"a=%zz&b=1 2&a=second") == {"a": "%zz", "b": "1 2"}
