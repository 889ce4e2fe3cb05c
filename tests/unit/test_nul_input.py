"""A JSON string spelling the NUL character is malformed input for every endpoint (no text
column can hold it); a backslash followed by `u0000` as text is fine."""

from __future__ import annotations

import pytest

from pushgate.targeting.errors import ApiError
from pushgate.targeting.validate import decode, parse_json


@pytest.mark.parametrize(
    "body",
    [b'{"a": "x\\u0000"}', b'{"a\\u0000": 1}', b'{"a": "\\\\\\u0000"}', b'["\\u0000"]'],
)
def test_a_nul_character_is_invalid_json(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        parse_json(body)
    assert caught.value.code == "invalid_json"
    with pytest.raises(ApiError):
        decode(body)


@pytest.mark.parametrize("body", [b'{"a": "x\\\\u0000"}', b'{"a": "\\\\\\\\u0000"}'])
def test_a_backslash_then_u0000_as_text_is_accepted(body: bytes) -> None:
    text = parse_json(body)["a"]
    assert text.endswith("\\u0000")
    assert "\0" not in text
