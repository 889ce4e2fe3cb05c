"""Property tests of the payload builders: for any notification the validator accepts, every
platform's body is JSON in the provider's shape, carries the content it was given (title,
message, deep links, camp_id), and the size check agrees with the bodies' sizes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pushgate.payloads.build import MAX_PAYLOAD_BYTES, build_all, oversized
from pushgate.targeting.errors import ApiError
from pushgate.targeting.push import Push
from pushgate.targeting.validate import decode, validate

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
text = st.text(max_size=300)  # any Unicode, including what JSON must escape
short = st.text(min_size=1, max_size=20)
deep_links = st.dictionaries(
    st.sampled_from(["ins_dl_internal", "ins_dl_url_scheme", "custom_key", "aps", "camp_id"])
    | short,
    st.text(max_size=60),
    max_size=5,
)


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    n: dict[str, Any] = {
        "identifiers": {"INSIDER.email": "a@b.co"},
        "camp_id": draw(st.integers(min_value=1, max_value=2**31)),
        "camp_name": draw(short),
        "title": draw(text),
        "message": draw(text),
        "image_url": draw(st.sampled_from(["", "https://img.example/i.jpg"])),
        "ttl": draw(st.integers(min_value=1, max_value=2_419_200)),
        "deliver_silently": draw(st.booleans()),
        "android": {
            "channel_id": draw(st.none() | st.integers(min_value=1, max_value=10**6)),
            "sound": draw(st.none() | short),
            "deep_link": draw(deep_links),
        },
        "ios": {
            "sound": draw(st.none() | short),
            "badge": draw(st.none() | st.integers(min_value=0, max_value=999)),
            "thread-id": draw(st.none() | short),
            "content-available": draw(st.booleans()),
            "mutable-content": draw(st.booleans()),
            "deep_link": draw(deep_links),
        },
    }
    return n


def validated(notification: dict[str, Any]) -> Push:
    body = json.dumps({"api_key": "k", "notifications": [notification]}).encode()
    try:
        decoded = decode(body)
        assert decoded.request is not None
        [push] = validate(decoded.request)
    except ApiError:
        assume(False)  # the validator's business (test_validate_properties.py)
        raise
    return push


def envelope_free_size(platform: str, body: bytes) -> int:
    extra = 0 if platform == "ios" else len(b'{"message":}') + len(b',"validate_only":false')
    return len(body) - extra


@SETTINGS
@given(notifications())
def test_every_body_is_json_carrying_the_content(notification: dict[str, Any]) -> None:
    push = validated(notification)
    built = build_all(push)
    apns = json.loads(built.bodies["ios"])
    fcm = json.loads(built.bodies["android"])["message"]
    hms = json.loads(built.bodies["huawei"])["message"]

    # APNs: background pushes carry no alert and go at priority 5 (Apple's rule).
    background = push.silent or push.ios.content_available
    assert (built.apns_push_type, built.apns_priority) == (
        ("background", 5) if background else ("alert", 10)
    )
    assert apns["camp_id"] == push.camp_id
    if background:
        assert apns["aps"] == {"content-available": 1}
    else:
        assert apns["aps"]["alert"] == {"title": push.title, "body": push.message}
    for key, value in push.ios.deep_links.items():
        if key not in ("aps", "camp_id", "image_url", "advanced_push"):
            assert apns[key] == value

    # FCM and HMS: data is string to string (HMS: as one JSON string); pushgate's keys win.
    hms_data = json.loads(hms["data"])
    for data in (fcm["data"], hms_data):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())
        assert data["camp_id"] == str(push.camp_id)
        for key, value in push.android.deep_links.items():
            if key not in ("camp_id", "image_url", "advanced_push"):
                assert data[key] == value
    # FCM keeps a message up to 28 days, Huawei up to 15: a longer lifetime is cut for HMS.
    assert fcm["android"]["ttl"] == f"{push.ttl}s"
    assert hms["android"]["ttl"] == f"{min(push.ttl, 15 * 24 * 3600)}s"
    for message in (fcm, hms):
        if push.silent:
            assert "notification" not in message
        else:
            assert message["notification"]["title"] == push.title
            assert message["notification"]["body"] == push.message


@SETTINGS
@given(notifications())
def test_the_size_check_names_a_platform_exactly_when_a_body_is_over_the_limit(
    notification: dict[str, Any],
) -> None:
    built = build_all(validated(notification))
    over = {
        p: envelope_free_size(p, b)
        for p, b in built.bodies.items()
        if envelope_free_size(p, b) > MAX_PAYLOAD_BYTES
    }
    found = oversized(built)
    if not over:
        assert found is None
    else:
        assert found is not None
        assert over[found[0]] == found[1]
        assert found[0] == next(iter(over))  # the first in ios, android, huawei order
