"""Property tests: whatever body arrives, decoding and validation answer with an ApiError
(400/401, snake_case code, the documented shape) or succeed, and never raise anything else
(insider-ecosystem.md §1: "never a stack trace")."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pushgate.targeting.errors import ApiError
from pushgate.targeting.validate import decode, validate

SNAKE_CASE = re.compile(r"[a-z]+(?:_[a-z]+)*")
PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SEED: dict[str, Any] = {
    "api_key": "seed-api-key",
    "report_attributes": ["INSIDER.email", "INSIDER.device_token", "INSIDER.email"],
    "async": False,
    "notifications": [
        {
            "identifiers": {
                "INSIDER.email": "sample@mail.com",
                "phone_number": "+65123456789",
                "INSIDER.uuid": "1234567890",
                "custom": {"loyalty_id": "L-1"},
            },
            "camp_id": 1,
            "camp_name": "Campaign",
            "title": "Title",
            "message": "Message",
            "image_url": "https://img.example/i.jpg",
            "ttl": 3600,
            "check_optin": True,
            "send_single_user": False,
            "GFC_enabled": True,
            "deliver_silently": False,
            "android": {
                "channel_id": 1,
                "sound": "sound_check",
                "delivery_silently": False,
                "deep_link": {
                    "ins_dl_internal": "https://www.deeplink.useinsider",
                    "ins_dl_json": {"page": "cart"},
                },
            },
            "ios": {
                "thread-id": 1,
                "thread_id": "t",
                "badge": 1,
                "content-available": False,
                "mutable-content": True,
                "sound": "sound_check",
                "deep_link": {
                    "ins_dl_url_scheme": "myapp://session/1",
                    "ins_dl_external": "https://shop.example",
                    "custom_key": "value",
                },
            },
            "advanced_push_payload": {
                "advanced_push_type": "carousel",
                "preferred_type": "slider",
                "advanced_push_items": [
                    {
                        "image_url": "https://img.example/1.jpg",
                        "deep_links": {"your_deeplink_key": "value1"},
                        "description": "Description 1",
                        "headline": "Headline 1",
                        "id": 1,
                    }
                ],
            },
        }
    ],
}
SEED_BYTES = json.dumps(SEED).encode()


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


VOCABULARY = sorted(_keys(SEED) | {"aps", "from", "gcm.x", "google.y", "INSIDER.", ""})

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "https://x.co", "myapp://x", "{}", '{"a":1}', "carousel"])
)
keys = st.sampled_from(VOCABULARY) | st.text(max_size=10)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=10,
)
# Values chosen to sit on the rules' edges.
edge_values = st.sampled_from(
    [
        0,
        -1,
        1,
        2**31,
        2**63 - 1,
        2**63,
        2**64,
        -(2**63) - 1,
        10**30,
        2_419_200,
        2_419_201,
        1.5,
        True,
        "",
        "   ",
        "1",
        "INSIDER.",
        "https://",
        "https://[::1",
        "http://x",
        "myapp://x",
        "[1]",
        '{"a": NaN}',
        "{" * 50,
        [],
        {},
        [{}],
        {"aps": "x"},
        {"ins_dl_json": "[1]"},
        [None] * 21,
    ]
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


SEED_PATHS = _paths(SEED)


def _swapped(value: Any) -> list[Any]:
    """Same content, other JSON types."""
    if isinstance(value, bool):
        return [int(value), str(value).lower(), None]
    if isinstance(value, int):
        return [str(value), float(value) + 0.5, -value, value > 0, [value]]
    if isinstance(value, str):
        return [len(value), [value], {value: value}, None, value.upper()]
    if isinstance(value, list):
        return [dict(enumerate(map(str, value))), value * 30, [], value[:1] * 60]
    if isinstance(value, dict):
        return [[value], list(value), {}, None, json.dumps(value)]
    return [0, "", [], {}]


@st.composite
def mutated_seed(draw: st.DrawFn) -> Any:
    body = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["drop", "swap", "edge", "arbitrary"]))
        if action == "drop":
            del parent[last]
        else:
            source = {
                "swap": st.sampled_from(_swapped(parent[last])),
                "edge": edge_values,
                "arbitrary": json_values,
            }[action]
            # A copy: later mutations must not reach into shared or module-level values.
            parent[last] = copy.deepcopy(draw(source))
    return body


def outcome_is_an_api_error_or_success(raw: bytes) -> None:
    try:
        decoded = decode(raw)
        if decoded.error is not None:
            raise decoded.error
        assert decoded.request is not None
        validate(decoded.request)
    except ApiError as error:
        assert error.status in (400, 401), error
        assert SNAKE_CASE.fullmatch(error.code), error
        assert isinstance(error.message, str)
        assert error.message, error
        assert error.body() == {"error": error.code, "message": error.message}


def test_seed_body_is_valid() -> None:
    decoded = decode(SEED_BYTES)
    assert decoded.error is None
    assert decoded.request is not None
    assert len(validate(decoded.request)) == 1


@PROPERTY_SETTINGS
@given(json_values)
@example(None)
@example([])
@example({"notifications": [{}]})
def test_arbitrary_json_values_only_raise_api_errors(value: Any) -> None:
    outcome_is_an_api_error_or_success(json.dumps(value).encode())


@PROPERTY_SETTINGS
@given(st.dictionaries(keys, json_values, max_size=4))
def test_arbitrary_objects_with_known_keys_only_raise_api_errors(value: dict[str, Any]) -> None:
    outcome_is_an_api_error_or_success(json.dumps(value).encode())


@PROPERTY_SETTINGS
@given(mutated_seed())
def test_mutated_seed_bodies_only_raise_api_errors(body: Any) -> None:
    outcome_is_an_api_error_or_success(json.dumps(body).encode())


@PROPERTY_SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_api_errors(raw: bytes) -> None:
    outcome_is_an_api_error_or_success(raw)


@PROPERTY_SETTINGS
@given(st.integers(0, len(SEED_BYTES)), st.binary(max_size=3))
def test_corrupted_seed_bytes_only_raise_api_errors(cut: int, junk: bytes) -> None:
    outcome_is_an_api_error_or_success(SEED_BYTES[:cut] + junk + SEED_BYTES[cut:][len(junk) :])


@PROPERTY_SETTINGS
@given(mutated_seed())
def test_api_key_of_an_object_body_is_always_read(body: Any) -> None:
    text = json.dumps(body)
    try:
        decoded = decode(text.encode())
    except ApiError as error:
        # Only a body that is not an object, or that spells a NUL, is refused before auth.
        assert not isinstance(body, dict) or (error.code, "\\u0000" in text) == (
            "invalid_json",
            True,
        )
        return
    expected = body.get("api_key")
    assert decoded.api_key == (expected if isinstance(expected, str) else None)
