"""Provider payloads built from a validated notification (providers.md, targeted-push-api.txt)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pushgate.payloads import build
from pushgate.payloads.build import MAX_PAYLOAD_BYTES, BuiltPayloads
from pushgate.targeting.push import Push
from pushgate.targeting.validate import decode, validate


def make_push(**fields: Any) -> Push:
    n: dict[str, Any] = {
        "identifiers": {"INSIDER.email": "a@b.co"},
        "camp_id": 7,
        "camp_name": "Campaign",
        "title": "Title",
        "message": "Message",
        "image_url": "",
    }
    n.update(fields)
    decoded = decode(json.dumps({"api_key": "k", "notifications": [n]}).encode())
    assert decoded.error is None, decoded.error
    assert decoded.request is not None
    [push] = validate(decoded.request)
    return push


ITEMS = [
    {
        "image_url": "https://img.example/1.jpg",
        "deep_links": {"your_deeplink_key": "value1"},
        "description": "Description 1",
        "headline": "Headline 1",
        "id": 1,
    },
    {
        "image_url": "https://img.example/2.jpg",
        "description": "Description 2",
        "headline": "Headline 2",
        "id": 2,
    },
]
ADVANCED_JSON = {
    "type": "carousel",
    "items": [
        {
            "id": 1,
            "headline": "Headline 1",
            "description": "Description 1",
            "image_url": "https://img.example/1.jpg",
            "deep_links": {"your_deeplink_key": "value1"},
        },
        {
            "id": 2,
            "headline": "Headline 2",
            "description": "Description 2",
            "image_url": "https://img.example/2.jpg",
            "deep_links": {},
        },
    ],
}


def advanced_push(kind: str = "Carousel") -> Push:
    return make_push(
        image_url="https://img.example/main.jpg",
        advanced_push_payload={"advanced_push_type": kind, "advanced_push_items": ITEMS},
    )


# --- APNs ------------------------------------------------------------------------------------


def test_apns_alert_carries_title_and_body() -> None:
    request = build.apns(make_push())
    assert request.payload == {
        "aps": {"alert": {"title": "Title", "body": "Message"}},
        "camp_id": 7,
    }
    assert (request.push_type, request.priority) == ("alert", 10)


def test_apns_sound_badge_and_thread_id() -> None:
    push = make_push(ios={"sound": "sound_check", "badge": 3, "thread-id": 13})
    aps = build.apns(push).payload["aps"]
    assert aps["sound"] == "sound_check"
    assert aps["badge"] == 3
    assert aps["thread-id"] == "13"


def test_apns_thread_id_underscore_spelling_reaches_the_payload() -> None:
    assert (
        build.apns(make_push(ios={"thread_id": "orders"})).payload["aps"]["thread-id"] == "orders"
    )


def test_apns_badge_zero_is_sent() -> None:
    assert build.apns(make_push(ios={"badge": 0})).payload["aps"]["badge"] == 0


def test_apns_omits_unset_optional_fields() -> None:
    aps = build.apns(make_push(ios={})).payload["aps"]
    assert set(aps) == {"alert"}


def test_apns_mutable_content_when_requested() -> None:
    aps = build.apns(make_push(ios={"mutable-content": True})).payload["aps"]
    assert aps["mutable-content"] == 1


def test_apns_rich_push_with_image_is_mutable_and_carries_the_image() -> None:
    payload = build.apns(make_push(image_url="https://img.example/i.jpg")).payload
    assert payload["aps"]["mutable-content"] == 1
    assert payload["image_url"] == "https://img.example/i.jpg"


def test_apns_plain_push_is_not_mutable() -> None:
    assert "mutable-content" not in build.apns(make_push()).payload["aps"]


def test_apns_content_available_is_a_background_push_with_priority_5() -> None:
    request = build.apns(make_push(ios={"content-available": True, "sound": "s", "badge": 1}))
    assert request.payload["aps"] == {"content-available": 1}
    assert request.push_type == "background"
    assert request.priority == 5


def test_apns_content_available_false_is_an_alert() -> None:
    request = build.apns(make_push(ios={"content-available": False}))
    assert "content-available" not in request.payload["aps"]
    assert (request.push_type, request.priority) == ("alert", 10)


@pytest.mark.parametrize("key", ["deliver_silently", "delivery_silently"])
def test_apns_silent_push_is_a_background_push(key: str) -> None:
    request = build.apns(make_push(**{key: True}))
    assert request.payload["aps"] == {"content-available": 1}
    assert (request.push_type, request.priority) == ("background", 5)


def test_apns_deep_links_sit_beside_aps() -> None:
    links = {"ins_dl_internal": "https://www.deeplink.useinsider", "page": "cart"}
    payload = build.apns(make_push(ios={"deep_link": links})).payload
    assert payload["ins_dl_internal"] == "https://www.deeplink.useinsider"
    assert payload["page"] == "cart"
    assert "ins_dl_internal" not in payload["aps"]


def test_apns_uses_ios_deep_links_not_android_ones() -> None:
    push = make_push(ios={"deep_link": {"i": "ios"}}, android={"deep_link": {"a": "android"}})
    payload = build.apns(push).payload
    assert payload["i"] == "ios"
    assert "a" not in payload


def test_apns_camp_id_wins_over_a_deep_link_of_that_name() -> None:
    assert build.apns(make_push(ios={"deep_link": {"camp_id": "x"}})).payload["camp_id"] == 7


def test_apns_advanced_push_items_are_carried_and_mutable() -> None:
    payload = build.apns(advanced_push()).payload
    assert payload["advanced_push"] == ADVANCED_JSON
    assert payload["aps"]["mutable-content"] == 1


# --- FCM ---------------------------------------------------------------------------------------


def test_fcm_message_shape() -> None:
    body = build.fcm(make_push(ttl=60, android={"channel_id": 3, "sound": "sound_check"}))
    assert body == {
        "message": {
            "data": {"camp_id": "7"},
            "notification": {"title": "Title", "body": "Message"},
            "android": {
                "priority": "HIGH",
                "ttl": "60s",
                "notification": {"channel_id": "3", "sound": "sound_check"},
            },
        },
        "validate_only": False,
    }


def test_fcm_ttl_defaults_to_28_days_in_seconds() -> None:
    assert build.fcm(make_push())["message"]["android"]["ttl"] == "2419200s"


def test_fcm_image_goes_into_notification_and_data() -> None:
    message = build.fcm(make_push(image_url="https://img.example/i.jpg"))["message"]
    assert message["notification"]["image"] == "https://img.example/i.jpg"
    assert message["data"]["image_url"] == "https://img.example/i.jpg"


def test_fcm_deep_links_travel_in_data_as_strings() -> None:
    links = {
        "ins_dl_internal": "https://shop.example/p",
        "ins_dl_json": {"page": "cart", "n": 2},
        "custom": "value",
    }
    data = build.fcm(make_push(android={"deep_link": links}))["message"]["data"]
    assert all(isinstance(v, str) for v in data.values())
    assert data["ins_dl_internal"] == "https://shop.example/p"
    assert data["custom"] == "value"
    assert json.loads(data["ins_dl_json"]) == {"page": "cart", "n": 2}
    assert data["camp_id"] == "7"


def test_fcm_uses_android_deep_links_not_ios_ones() -> None:
    push = make_push(ios={"deep_link": {"i": "ios"}}, android={"deep_link": {"a": "android"}})
    data = build.fcm(push)["message"]["data"]
    assert data["a"] == "android"
    assert "i" not in data


def test_fcm_without_channel_or_sound_has_no_android_notification() -> None:
    assert "notification" not in build.fcm(make_push())["message"]["android"]


@pytest.mark.parametrize("key", ["deliver_silently", "delivery_silently"])
def test_fcm_silent_push_is_data_only_with_normal_priority(key: str) -> None:
    message = build.fcm(make_push(**{key: True}, android={"channel_id": 1}))["message"]
    assert "notification" not in message
    assert message["android"]["priority"] == "NORMAL"
    assert "notification" not in message["android"]
    assert message["data"]["camp_id"] == "7"


def test_fcm_advanced_push_items_travel_as_a_json_string() -> None:
    data = build.fcm(advanced_push())["message"]["data"]
    assert json.loads(data["advanced_push"]) == ADVANCED_JSON


# --- HMS ---------------------------------------------------------------------------------------


def test_hms_message_shape() -> None:
    body = build.hms(
        make_push(
            ttl=90, image_url="https://img.example/i.jpg", android={"channel_id": 4, "sound": "s"}
        )
    )
    assert body["validate_only"] is False
    message = body["message"]
    assert message["notification"] == {
        "title": "Title",
        "body": "Message",
        "image": "https://img.example/i.jpg",
    }
    android = message["android"]
    assert android["urgency"] == "HIGH"
    assert android["ttl"] == "90s"
    # Title, body and image are carried once, in message.notification.
    assert "title" not in android["notification"]
    assert "body" not in android["notification"]
    assert android["notification"]["channel_id"] == "4"
    assert android["notification"]["sound"] == "s"
    assert android["notification"]["click_action"]["type"] in (1, 2, 3)


@pytest.mark.parametrize(
    ("ttl", "field"), [(1_296_000, "1296000s"), (1_296_001, "1296000s"), (2_419_200, "1296000s")]
)
def test_hms_ttl_is_at_most_huaweis_15_days(ttl: int, field: str) -> None:
    assert build.hms(make_push(ttl=ttl))["message"]["android"]["ttl"] == field
    assert build.fcm(make_push(ttl=ttl))["message"]["android"]["ttl"] == f"{ttl}s"


def test_hms_data_is_one_json_string_with_deep_links_and_camp_id() -> None:
    links = {"ins_dl_url_scheme": "myapp://session/1", "ins_dl_json": '{"a": 1}'}
    data = build.hms(make_push(android={"deep_link": links}))["message"]["data"]
    assert isinstance(data, str)
    assert json.loads(data) == {
        "ins_dl_url_scheme": "myapp://session/1",
        "ins_dl_json": '{"a": 1}',
        "camp_id": "7",
    }


def test_hms_silent_push_is_data_only_with_normal_urgency() -> None:
    message = build.hms(make_push(deliver_silently=True))["message"]
    assert "notification" not in message
    assert "notification" not in message["android"]
    assert message["android"]["urgency"] == "NORMAL"


def test_hms_advanced_push_items_are_in_data() -> None:
    data = json.loads(build.hms(advanced_push("slider"))["message"]["data"])
    assert json.loads(data["advanced_push"]) == {**ADVANCED_JSON, "type": "slider"}


# --- build_all and oversized ---------------------------------------------------------------------


def test_build_all_encodes_each_platform_body_and_apns_headers() -> None:
    push = make_push(ios={"content-available": True})
    built = build.build_all(push)
    assert set(built.bodies) == {"ios", "android", "huawei"}
    assert json.loads(built.bodies["ios"]) == build.apns(push).payload
    assert json.loads(built.bodies["android"]) == build.fcm(push)
    assert json.loads(built.bodies["huawei"]) == build.hms(push)
    assert (built.apns_push_type, built.apns_priority) == ("background", 5)


def test_ordinary_push_is_not_oversized() -> None:
    assert build.oversized(build.build_all(make_push())) is None


def test_push_over_4096_bytes_is_oversized_with_its_size() -> None:
    built = build.build_all(make_push(message="x" * 5000))
    result = build.oversized(built)
    assert result is not None
    platform, size = result
    assert platform == "ios"
    assert size == len(built.bodies["ios"])
    assert size > MAX_PAYLOAD_BYTES


def test_multibyte_text_is_measured_in_bytes() -> None:
    # 1500 characters of 3 bytes each: 4500 bytes, though fewer than 4096 characters.
    built = build.build_all(make_push(message="€" * 1500))
    result = build.oversized(built)
    assert result is not None
    assert result[1] > MAX_PAYLOAD_BYTES


def _built(ios: int, android: int, huawei: int) -> BuiltPayloads:
    return BuiltPayloads(
        bodies={
            "ios": b"x" * ios,
            "android": b'{"message":' + b"x" * android + b',"validate_only":false}',
            "huawei": b'{"validate_only":false,"message":' + b"x" * huawei + b"}",
        },
        apns_push_type="alert",
        apns_priority=10,
    )


def test_payloads_of_exactly_4096_bytes_are_not_oversized() -> None:
    assert build.oversized(_built(4096, 4096, 4096)) is None


def test_apns_payload_of_4097_bytes_is_oversized() -> None:
    assert build.oversized(_built(4097, 10, 10)) == ("ios", 4097)


def test_fcm_limit_applies_to_the_message_not_the_envelope() -> None:
    assert build.oversized(_built(10, 4097, 10)) == ("android", 4097)


def test_hms_limit_applies_to_the_message_not_the_envelope() -> None:
    assert build.oversized(_built(10, 10, 4097)) == ("huawei", 4097)


def test_hms_long_message_fits_as_long_as_the_fcm_one_does() -> None:
    built = build.build_all(make_push(message="x" * 3000))
    assert build.oversized(built) is None
