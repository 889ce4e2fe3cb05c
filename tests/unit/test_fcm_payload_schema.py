"""pushgate's own FCM bodies pass Google's schema (emulators/fcm_schema.py) for every
notification the validator accepts: the body as the delivery sender posts it, built by
`payloads.build.fcm`, with the ttl the sender sets from the job's remaining lifetime
(`senders._ttl_text`, `senders._with_ttl`) and the device token put in by `providers.fcm.build_send`."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from pushgate.emulators.fcm_schema import check_send_request
from pushgate.payloads.build import build_all, oversized
from pushgate.providers import fcm
from pushgate.providers.senders import _ttl_text, _with_ttl
from pushgate.targeting.errors import ApiError
from pushgate.targeting.push import Push
from pushgate.targeting.validate import decode, validate
from tests.unit.test_payload_properties import SETTINGS, notifications, text
from tests.unit.test_validate_properties import SEED, mutated_seed

# What FCM registration tokens and Firebase installation ids are made of.
fcm_tokens = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:", min_size=1
)
deep_link_keys = st.sampled_from(
    ["your_deeplink_key", "Google", "fromage", "xgcm", "data", "ttl", "collapse_key", ""]
) | st.text(min_size=1, max_size=12)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": draw(st.integers(-(2**31), 2**31)),
        "headline": draw(text),
        "description": draw(text),
        "image_url": draw(st.sampled_from(["", "https://img.example/1.jpg"])),
        "deep_links": draw(st.dictionaries(deep_link_keys, st.text(max_size=40), max_size=3)),
    }


@st.composite
def every_option(draw: st.DrawFn) -> dict[str, Any]:
    """`test_payload_properties.notifications`, sometimes with an advanced push and with deep
    link keys that come close to FCM's reserved ones."""
    notification = draw(notifications())
    links = draw(st.dictionaries(deep_link_keys, st.text(max_size=60), max_size=4))
    notification["android"]["deep_link"].update(links)
    if draw(st.booleans()):
        notification["advanced_push_payload"] = {
            "advanced_push_type": draw(st.sampled_from(["carousel", "slider", "Slider"])),
            "advanced_push_items": draw(st.lists(items(), min_size=1, max_size=3)),
        }
    return notification


def accepted(notification: dict[str, Any]) -> Push:
    """The push pushgate's validator makes of `notification` (the example is dropped if it is
    refused: that is the validator's business)."""
    try:
        decoded = decode(json.dumps({"api_key": "k", "notifications": [notification]}).encode())
        if decoded.error is not None:
            raise decoded.error
        assert decoded.request is not None
        [push] = validate(decoded.request)
    except ApiError:
        assume(False)
        raise
    return push


def sent_body(push: Push, token: str, remaining_ttl: int) -> dict[str, Any]:
    """The JSON `FcmSender.send` posts for `push` to `token`."""
    built = build_all(push)
    if oversized(built) is not None:
        assume(False)  # refused at the API, never sent
    message = json.loads(built.bodies["android"])["message"]
    _, data = fcm.build_send("demo-project", _with_ttl(message, _ttl_text(remaining_ttl)), token)
    body: dict[str, Any] = json.loads(data)
    return body


def assert_google_takes_it(body: dict[str, Any]) -> None:
    rejection = check_send_request(body)
    assert rejection is None, (rejection.message if rejection else "", body)


@SETTINGS
@given(every_option(), fcm_tokens, st.data())
def test_every_accepted_notification_is_a_message_google_takes(
    notification: dict[str, Any], token: str, data: st.DataObject
) -> None:
    push = accepted(notification)
    remaining = data.draw(st.integers(0, push.ttl), label="remaining ttl")

    assert_google_takes_it(sent_body(push, token, remaining))


@SETTINGS
@given(mutated_seed(), fcm_tokens)
def test_every_accepted_variation_of_the_seed_is_a_message_google_takes(
    body: Any, token: str
) -> None:
    sent = body.get("notifications") if isinstance(body, dict) else None
    notification = sent[0] if isinstance(sent, list) and sent else None
    if not isinstance(notification, dict):
        assume(False)
        return
    push = accepted(notification)

    assert_google_takes_it(sent_body(push, token, push.ttl))


def test_the_seed_notification_is_a_message_google_takes() -> None:
    decoded = decode(json.dumps(SEED).encode())
    assert decoded.request is not None
    [push] = validate(decoded.request)

    body = sent_body(push, "fcm-token-1", push.ttl)

    assert_google_takes_it(body)
    android = body["message"]["android"]
    assert (android["priority"], android["ttl"]) == ("HIGH", "3600s")
