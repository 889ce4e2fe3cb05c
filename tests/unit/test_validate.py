"""Request validation of the Targeted Push API (targeted-push-api.txt, insider-ecosystem.md §1)."""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
import pytest

from pushgate.targeting.errors import ApiError
from pushgate.targeting.push import MAX_TTL_SECONDS, Identifier, Push
from pushgate.targeting.validate import decode, normalise_identifier, schema_error, validate
from tests.support.spec import sample_request

EMPTY_IDENTIFIERS = {
    "error": "empty_insider_identifiers",
    "message": "'insider_identifiers' object need to have at least one identifier",
}
EMPTY_NOTIFICATIONS = {
    "error": "invalid_notifications",
    "message": "'notifications' is empty, add some notification objects",
}
TOO_MANY_NOTIFICATIONS = {
    "error": "invalid_notifications",
    "message": "'notifications' can't have more than 20 objects",
}
TOO_MANY_IDENTIFIERS = {
    "error": "too_many_identifiers",
    "message": "a request can target at most 50 user identifiers",
}
NEGATIVE_INTEGER = {
    "error": "negative_integer",
    "message": "camp_id' and/or 'channel_id' must be greater than zero",
}
INVALID_ADVANCED_PUSH_TYPE = {
    "error": "invalid_advanced_push_type",
    "message": "'advanced_push_type' must be either Carousel or Slider",
}
BLACKLISTED_APS = {"error": "blacklisted_deeplink", "message": "deepLink can't contain 'aps' key"}


def notification(**overrides: Any) -> dict[str, Any]:
    n: dict[str, Any] = {
        "identifiers": {"INSIDER.email": "sample@mail.com"},
        "camp_id": 1,
        "camp_name": "Campaign",
        "title": "Title",
        "message": "Message",
        "image_url": "https://img.example/i.jpg",
    }
    n.update(overrides)
    return n


def body(*notifications: dict[str, Any], **top: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"api_key": "key", "notifications": list(notifications)}
    b.update(top)
    return b


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def pushes(value: Any) -> list[Push]:
    decoded = decode(encode(value))
    assert decoded.error is None, decoded.error
    assert decoded.request is not None
    return validate(decoded.request)


def one(value: Any) -> Push:
    [push] = pushes(value)
    return push


def rejection(value: Any) -> ApiError:
    """The ApiError that decoding raises or keeps (a schema error), or that validating raises."""
    try:
        decoded = decode(encode(value) if not isinstance(value, bytes) else value)
    except ApiError as error:
        return error
    if decoded.error is not None:
        return decoded.error
    assert decoded.request is not None
    with pytest.raises(ApiError) as info:
        validate(decoded.request)
    return info.value


def sample_body() -> dict[str, Any]:
    """The first sample body of targeted-push-api.txt, reporting two attributes."""
    return {**sample_request(), "report_attributes": ["INSIDER.email", "INSIDER.device_token"]}


# --- the documented sample ---------------------------------------------------------------


def test_documented_sample_body_is_accepted_and_normalised() -> None:
    push = one(sample_body())
    assert push.identifiers == (
        Identifier("email", "sample@mail.com"),
        Identifier("phone_number", "+65123456789"),
        Identifier("uuid", "1234567890"),
    )
    assert push.camp_id == 1
    assert push.ttl == 1
    assert push.check_optin is True
    assert push.android.channel_id == "1"
    assert push.android.sound == "sound_check"
    assert push.android.deep_links == {"ins_dl_internal": "https://www.deeplink.useinsider"}
    assert push.ios.thread_id == "1"
    assert push.ios.badge == 1
    assert push.ios.content_available is False
    assert push.ios.mutable_content is True
    assert push.advanced is None


def test_identifiers_are_kept_exactly_as_sent_for_the_answer() -> None:
    sent = {"INSIDER.Email": " Sample@Mail.com ", "uuid": "u1"}
    push = one(body(notification(identifiers=sent)))
    assert push.identifiers_sent == sent
    assert push.identifiers == (Identifier("email", "sample@mail.com"), Identifier("uuid", "u1"))


def test_pushes_keep_their_notification_index() -> None:
    result = pushes(body(notification(camp_id=5), notification(camp_id=6)))
    assert [(p.index, p.camp_id) for p in result] == [(0, 5), (1, 6)]


# --- notifications ------------------------------------------------------------------------


def test_empty_notifications_is_invalid_notifications() -> None:
    error = rejection(body())
    assert error.status == 400
    assert error.body() == EMPTY_NOTIFICATIONS


def test_missing_notifications_is_invalid_notifications() -> None:
    error = rejection({"api_key": "key"})
    assert error.status == 400
    assert error.body() == EMPTY_NOTIFICATIONS


def test_twenty_notifications_are_accepted() -> None:
    assert len(pushes(body(*[notification() for _ in range(20)]))) == 20


def test_twenty_one_notifications_are_invalid_notifications() -> None:
    error = rejection(body(*[notification() for _ in range(21)]))
    assert error.status == 400
    assert error.body() == TOO_MANY_NOTIFICATIONS


# --- identifiers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifiers",
    [
        {},
        None,
        {"INSIDER.email": ""},
        {"email": ""},
        {"INSIDER.phone_number": "   "},
        {"uuid": ""},
        {"INSIDER.": "value"},
        {"custom": {}},
        {"custom": {"loyalty_id": ""}},
    ],
    ids=[
        "empty-object",
        "null",
        "prefixed-empty-email",
        "plain-empty-email",
        "blank-phone",
        "plain-empty-uuid",
        "prefix-without-name",
        "empty-custom",
        "custom-empty-value",
    ],
)
def test_notification_without_usable_identifier_is_empty_insider_identifiers(
    identifiers: Any,
) -> None:
    error = rejection(body(notification(identifiers=identifiers)))
    assert error.status == 400
    assert error.body() == EMPTY_IDENTIFIERS


def test_missing_identifiers_key_is_empty_insider_identifiers() -> None:
    n = notification()
    del n["identifiers"]
    error = rejection(body(n))
    assert error.body() == EMPTY_IDENTIFIERS


def test_one_empty_notification_among_valid_ones_rejects_the_request() -> None:
    error = rejection(body(notification(), notification(identifiers={"email": ""})))
    assert error.body() == EMPTY_IDENTIFIERS


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("INSIDER.email", "email"),
        ("email", "email"),
        ("INSIDER.phone_number", "phone_number"),
        ("phone_number", "phone_number"),
        ("INSIDER.uuid", "uuid"),
        ("uuid", "uuid"),
    ],
)
def test_standard_identifier_keys_are_accepted_with_and_without_prefix(key: str, kind: str) -> None:
    push = one(body(notification(identifiers={key: "value@x.co"})))
    assert push.identifiers == (Identifier(kind, "value@x.co"),)


def test_custom_identifier_object_gives_identifiers_by_name() -> None:
    push = one(body(notification(identifiers={"custom": {"user_loyalty_id": "xyz123"}})))
    assert push.identifiers == (Identifier("user_loyalty_id", "xyz123"),)


def test_other_identifier_key_is_a_custom_identifier_of_that_name() -> None:
    push = one(body(notification(identifiers={"INSIDER.loyalty_id": "L-1"})))
    assert push.identifiers == (Identifier("loyalty_id", "L-1"),)


def test_same_identifier_in_two_spellings_is_one_identifier() -> None:
    push = one(body(notification(identifiers={"email": "A@b.co", "INSIDER.email": "a@B.co"})))
    assert push.identifiers == (Identifier("email", "a@b.co"),)


def test_non_string_identifier_value_is_invalid_type() -> None:
    error = rejection(body(notification(identifiers={"uuid": 5})))
    assert error.status == 400
    assert error.body() == {
        "error": "invalid_type",
        "message": "identifier values must be strings (at notifications[0].identifiers.uuid)",
    }


def test_non_string_custom_identifier_value_is_invalid_type() -> None:
    error = rejection(body(notification(identifiers={"custom": {"loyalty": 5}})))
    assert error.code == "invalid_type"
    assert error.message.endswith("(at notifications[0].identifiers.custom.loyalty)")


def test_fifty_identifiers_in_the_whole_request_are_accepted() -> None:
    notes = [
        notification(identifiers={f"uuid{i}": f"u-{n}-{i}" for i in range(10)}) for n in range(5)
    ]
    assert sum(len(p.identifiers) for p in pushes(body(*notes))) == 50


def test_fifty_one_identifiers_across_notifications_is_too_many_identifiers() -> None:
    notes = [
        notification(identifiers={f"uuid{i}": f"u-{n}-{i}" for i in range(10)}) for n in range(5)
    ]
    notes.append(notification(identifiers={"email": "one@more.co"}))
    error = rejection(body(*notes))
    assert error.status == 400
    assert error.body() == TOO_MANY_IDENTIFIERS


def test_fifty_one_identifiers_in_one_notification_is_too_many_identifiers() -> None:
    ids = {"custom": {f"c{i}": str(i) for i in range(51)}}
    error = rejection(body(notification(identifiers=ids)))
    assert error.body() == TOO_MANY_IDENTIFIERS


# --- normalise_identifier --------------------------------------------------------------------


def test_normalise_identifier_strips_prefix_and_lowercases_email() -> None:
    assert normalise_identifier("INSIDER.email", " Ada@Example.COM ") == Identifier(
        "email", "ada@example.com"
    )


def test_normalise_identifier_lowercases_standard_kind_names() -> None:
    assert normalise_identifier("INSIDER.EMAIL", "a@b.co") == Identifier("email", "a@b.co")
    assert normalise_identifier("Phone_Number", "+6512345678") == Identifier(
        "phone_number", "+6512345678"
    )


def test_normalise_identifier_keeps_case_of_other_values() -> None:
    assert normalise_identifier("uuid", "AbC") == Identifier("uuid", "AbC")
    assert normalise_identifier("LoyaltyId", "XyZ") == Identifier("LoyaltyId", "XyZ")


@pytest.mark.parametrize(("key", "value"), [("email", ""), ("email", "  "), ("INSIDER.", "x")])
def test_normalise_identifier_rejects_empty_kind_or_value(key: str, value: str) -> None:
    assert normalise_identifier(key, value) is None


# --- camp_id / channel_id ----------------------------------------------------------------------


def test_camp_id_zero_is_negative_integer() -> None:
    error = rejection(body(notification(camp_id=0)))
    assert error.status == 400
    assert error.body() == NEGATIVE_INTEGER


def test_negative_camp_id_is_negative_integer() -> None:
    assert rejection(body(notification(camp_id=-7))).body() == NEGATIVE_INTEGER


def test_channel_id_zero_is_negative_integer() -> None:
    error = rejection(body(notification(android={"channel_id": 0})))
    assert error.status == 400
    assert error.body() == NEGATIVE_INTEGER


def test_negative_channel_id_is_negative_integer() -> None:
    assert rejection(body(notification(android={"channel_id": -1}))).body() == NEGATIVE_INTEGER


def test_negative_integer_message_keeps_the_documented_unbalanced_quote() -> None:
    message = rejection(body(notification(camp_id=0))).message
    assert message == "camp_id' and/or 'channel_id' must be greater than zero"
    assert not message.startswith("'")


def test_positive_channel_id_becomes_a_string() -> None:
    assert one(body(notification(android={"channel_id": 42}))).android.channel_id == "42"


def test_camp_id_beyond_64_bits_is_invalid_value() -> None:
    error = rejection(body(notification(camp_id=2**63)))
    assert error.status == 400
    assert error.code == "invalid_value"


# --- advanced push ----------------------------------------------------------------------------


def advanced(kind_key: str = "advanced_push_type", kind: Any = "carousel", **extra: Any) -> dict:
    payload: dict[str, Any] = {
        kind_key: kind,
        "advanced_push_items": [
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
        ],
    }
    payload.update(extra)
    return payload


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("carousel", "carousel"),
        ("slider", "slider"),
        ("Carousel", "carousel"),
        ("SLIDER", "slider"),
        (" Slider ", "slider"),
    ],
)
def test_advanced_push_type_is_case_insensitive(kind: str, expected: str) -> None:
    push = one(body(notification(advanced_push_payload=advanced(kind=kind))))
    assert push.advanced is not None
    assert push.advanced.type == expected


def test_preferred_type_is_a_synonym_of_advanced_push_type() -> None:
    push = one(body(notification(advanced_push_payload=advanced("preferred_type", "Slider"))))
    assert push.advanced is not None
    assert push.advanced.type == "slider"


def test_advanced_push_items_are_kept_in_order() -> None:
    push = one(body(notification(advanced_push_payload=advanced())))
    assert push.advanced is not None
    assert [(i.id, i.headline, i.description) for i in push.advanced.items] == [
        (1, "Headline 1", "Description 1"),
        (2, "Headline 2", "Description 2"),
    ]
    assert push.advanced.items[0].deep_links == {"your_deeplink_key": "value1"}
    assert push.advanced.items[1].deep_links == {}


@pytest.mark.parametrize("kind", ["grid", "", "carousels", "slider carousel"])
def test_unknown_advanced_push_type_is_invalid_advanced_push_type(kind: str) -> None:
    error = rejection(body(notification(advanced_push_payload=advanced(kind=kind))))
    assert error.status == 400
    assert error.body() == INVALID_ADVANCED_PUSH_TYPE


def test_invalid_preferred_type_is_invalid_advanced_push_type() -> None:
    payload = advanced("preferred_type", "banner")
    error = rejection(body(notification(advanced_push_payload=payload)))
    assert error.body() == INVALID_ADVANCED_PUSH_TYPE


def test_advanced_payload_without_type_is_invalid_advanced_push_type() -> None:
    payload = advanced()
    del payload["advanced_push_type"]
    assert (
        rejection(body(notification(advanced_push_payload=payload))).body()
        == INVALID_ADVANCED_PUSH_TYPE
    )


def test_advanced_payload_without_items_is_missing_field() -> None:
    payload = {"advanced_push_type": "carousel"}
    error = rejection(body(notification(advanced_push_payload=payload)))
    assert error.status == 400
    assert error.body() == {
        "error": "missing_field",
        "message": "'advanced_push_items' is required (at notifications[0].advanced_push_payload)",
    }


def test_advanced_payload_with_empty_items_is_rejected() -> None:
    payload = advanced(advanced_push_items=[])
    error = rejection(body(notification(advanced_push_payload=payload)))
    assert error.status == 400
    assert error.code == "invalid_advanced_push_items"


def test_advanced_item_without_headline_is_missing_field() -> None:
    payload = advanced()
    del payload["advanced_push_items"][1]["headline"]
    error = rejection(body(notification(advanced_push_payload=payload)))
    assert error.body() == {
        "error": "missing_field",
        "message": "'headline' is required "
        "(at notifications[0].advanced_push_payload.advanced_push_items[1])",
    }


def test_aps_in_advanced_item_deep_links_is_blacklisted() -> None:
    payload = advanced()
    payload["advanced_push_items"][0]["deep_links"] = {"aps": "x"}
    assert rejection(body(notification(advanced_push_payload=payload))).body() == BLACKLISTED_APS


# --- deep links -------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_aps_deep_link_key_is_blacklisted_deeplink(platform: str) -> None:
    error = rejection(body(notification(**{platform: {"deep_link": {"aps": "x"}}})))
    assert error.status == 400
    assert error.body() == BLACKLISTED_APS


@pytest.mark.parametrize("key", ["from", "notification", "message_type", "google.c.a.e", "gcm.n.e"])
def test_fcm_reserved_deep_link_key_is_blacklisted_deeplink(key: str) -> None:
    error = rejection(body(notification(android={"deep_link": {key: "x"}})))
    assert error.status == 400
    assert error.body() == {
        "error": "blacklisted_deeplink",
        "message": f"deepLink can't contain '{key}' key",
    }


@pytest.mark.parametrize("key", ["ins_dl_internal", "ins_dl_external"])
@pytest.mark.parametrize("url", ["https://shop.example/p/1", "HTTPS://shop.example"])
def test_internal_and_external_deep_links_accept_https_urls(key: str, url: str) -> None:
    push = one(body(notification(ios={"deep_link": {key: url}})))
    assert push.ios.deep_links == {key: url}


@pytest.mark.parametrize("key", ["ins_dl_internal", "ins_dl_external"])
@pytest.mark.parametrize(
    "url", ["http://shop.example", "myapp://x", "shop.example", "", "https://", " https://x.co"]
)
def test_internal_and_external_deep_links_must_start_with_https(key: str, url: str) -> None:
    error = rejection(body(notification(android={"deep_link": {key: url}})))
    assert error.status == 400
    assert error.body() == {
        "error": "invalid_deeplink",
        "message": f"deep link '{key}' must be a URL that starts with https://",
    }


@pytest.mark.parametrize(
    "url", ["myapp://session/1", "https://shop.example", "com.example.app+x://open"]
)
def test_url_scheme_deep_link_accepts_any_scheme(url: str) -> None:
    push = one(body(notification(android={"deep_link": {"ins_dl_url_scheme": url}})))
    assert push.android.deep_links == {"ins_dl_url_scheme": url}


@pytest.mark.parametrize("url", ["myapp:/x", "session/1", "://x", "1app://x", ""])
def test_url_scheme_deep_link_without_scheme_is_invalid_deeplink(url: str) -> None:
    error = rejection(body(notification(ios={"deep_link": {"ins_dl_url_scheme": url}})))
    assert error.body() == {
        "error": "invalid_deeplink",
        "message": "deep link 'ins_dl_url_scheme' must be a URL of the form scheme://...",
    }


def test_json_deep_link_accepts_an_object_and_carries_it_as_a_json_string() -> None:
    push = one(body(notification(android={"deep_link": {"ins_dl_json": {"page": "cart", "n": 2}}})))
    assert json.loads(push.android.deep_links["ins_dl_json"]) == {"page": "cart", "n": 2}


def test_json_deep_link_accepts_a_string_holding_an_object() -> None:
    value = '{"page": "cart"}'
    push = one(body(notification(ios={"deep_link": {"ins_dl_json": value}})))
    assert push.ios.deep_links == {"ins_dl_json": value}


@pytest.mark.parametrize(
    "value", ["[1, 2]", "not json", '"a string"', "42", "", ["a"], 3, True, None]
)
def test_json_deep_link_that_is_not_an_object_is_invalid_deeplink(value: Any) -> None:
    error = rejection(body(notification(android={"deep_link": {"ins_dl_json": value}})))
    assert error.body() == {
        "error": "invalid_deeplink",
        "message": "deep link 'ins_dl_json' must be a JSON object or a string holding one",
    }


@pytest.mark.parametrize("value", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'])
def test_json_deep_link_string_with_non_json_numbers_is_invalid_deeplink(value: str) -> None:
    # NaN and Infinity are not JSON (RFC 8259); "a string holding" a JSON object excludes them.
    error = rejection(body(notification(android={"deep_link": {"ins_dl_json": value}})))
    assert error.code == "invalid_deeplink"


def test_deeply_nested_json_deep_link_string_is_a_400_not_a_crash() -> None:
    value = '{"a":' * 5000 + "1" + "}" * 5000
    error = rejection(body(notification(android={"deep_link": {"ins_dl_json": value}})))
    assert error.status == 400


def test_custom_deep_link_keys_take_any_string() -> None:
    links = {"your_deeplink_key": "value1", "Page": "Cart", "empty": "", "url": "http://x"}
    push = one(body(notification(ios={"deep_link": links}, android={"deep_link": links})))
    assert push.ios.deep_links == links
    assert push.android.deep_links == links


def test_custom_deep_link_with_non_string_value_is_invalid_deeplink() -> None:
    error = rejection(body(notification(ios={"deep_link": {"page": 3}})))
    assert error.status == 400
    assert error.code == "invalid_deeplink"


def test_deep_link_that_is_not_an_object_is_invalid_type() -> None:
    error = rejection(body(notification(ios={"deep_link": "https://x.co"})))
    assert error.body() == {
        "error": "invalid_type",
        "message": "expected object, got str (at notifications[0].ios.deep_link)",
    }


# --- ttl ----------------------------------------------------------------------------------------


def test_ttl_defaults_to_28_days() -> None:
    assert one(body(notification())).ttl == 2_419_200 == MAX_TTL_SECONDS


@pytest.mark.parametrize("ttl", [1, 3600, 2_419_200])
def test_ttl_within_range_is_kept(ttl: int) -> None:
    assert one(body(notification(ttl=ttl))).ttl == ttl


@pytest.mark.parametrize("ttl", [0, -1, 2_419_201, 10**12])
def test_ttl_out_of_range_is_invalid_ttl(ttl: int) -> None:
    error = rejection(body(notification(ttl=ttl)))
    assert error.status == 400
    assert error.body() == {
        "error": "invalid_ttl",
        "message": f"'ttl' must be between 1 and 2419200 seconds, got {ttl}",
    }


# --- spellings and unknown keys ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["thread-id", "thread_id"])
@pytest.mark.parametrize(("value", "expected"), [(13, "13"), ("orders", "orders")])
def test_both_thread_id_spellings_are_accepted(key: str, value: Any, expected: str) -> None:
    assert one(body(notification(ios={key: value}))).ios.thread_id == expected


def test_thread_id_with_dash_wins_when_both_spellings_are_sent() -> None:
    push = one(body(notification(ios={"thread-id": "dash", "thread_id": "underscore"})))
    assert push.ios.thread_id == "dash"


@pytest.mark.parametrize("key", ["deliver_silently", "delivery_silently"])
@pytest.mark.parametrize("where", ["notification", "ios", "android"])
def test_both_silent_spellings_make_the_push_silent(key: str, where: str) -> None:
    n = (
        notification(**{key: True})
        if where == "notification"
        else notification(**{where: {key: True}})
    )
    assert one(body(n)).silent is True


def test_push_is_not_silent_by_default() -> None:
    push = one(body(notification(ios={}, android={})))
    assert push.silent is False


def test_unknown_keys_are_ignored_at_every_level() -> None:
    b = sample_body()
    b["extra_top"] = {"x": 1}
    n = b["notifications"][0]
    n["future_field"] = [1, 2]
    n["ios"]["interruption-level"] = "time-sensitive"
    n["android"]["priority"] = "high"
    reference = one(sample_body())
    assert one(b) == reference


def test_gfc_check_optin_and_single_user_flags_default_to_false() -> None:
    push = one(body(notification()))
    assert (push.gfc_enabled, push.check_optin, push.send_single_user) == (False, False, False)


def test_gfc_enabled_flag_is_carried() -> None:
    assert one(body(notification(GFC_enabled=True, send_single_user=True))).gfc_enabled is True


def test_negative_badge_is_invalid_value() -> None:
    error = rejection(body(notification(ios={"badge": -1})))
    assert error.status == 400
    assert error.code == "invalid_value"


def test_badge_zero_is_kept() -> None:
    assert one(body(notification(ios={"badge": 0}))).ios.badge == 0


# --- decode: malformed bodies and the api key ---------------------------------------------------


@pytest.mark.parametrize("raw", [b"{", b"", b"not json", b'{"api_key": "k",}', b"\xff\xfe"])
def test_malformed_json_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        decode(raw)
    assert info.value.status == 400
    assert info.value.code == "invalid_json"
    assert info.value.message.startswith("request body is not valid JSON: ")
    assert set(info.value.body()) == {"error", "message"}


@pytest.mark.parametrize(
    "raw",
    [b'{"api_key": "\x80"}', b'{"notifications": [{"title": "caf\xc3"}]}'],
    ids=["lone-continuation-byte", "truncated-sequence"],
)
def test_invalid_utf8_inside_a_string_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        decode(raw)
    assert info.value.status == 400
    assert info.value.code == "invalid_json"


@pytest.mark.parametrize("raw", [b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_body_that_is_not_an_object_is_invalid_type(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        decode(raw)
    assert info.value.status == 400
    assert info.value.body() == {
        "error": "invalid_type",
        "message": "the request body must be a JSON object",
    }


def test_missing_required_field_is_missing_field_with_its_path() -> None:
    n = notification()
    del n["camp_id"]
    decoded = decode(encode(body(n)))
    assert decoded.request is None
    assert decoded.error is not None
    assert decoded.error.status == 400
    assert decoded.error.body() == {
        "error": "missing_field",
        "message": "'camp_id' is required (at notifications[0])",
    }


@pytest.mark.parametrize("field", ["camp_name", "title", "message", "image_url"])
def test_each_documented_required_string_is_missing_field(field: str) -> None:
    n = notification()
    del n[field]
    error = rejection(body(n))
    assert error.body() == {
        "error": "missing_field",
        "message": f"'{field}' is required (at notifications[0])",
    }


def test_string_camp_id_is_invalid_type_with_its_path() -> None:
    error = rejection(body(notification(camp_id="1")))
    assert error.status == 400
    assert error.body() == {
        "error": "invalid_type",
        "message": "expected int, got str (at notifications[0].camp_id)",
    }


def test_nullable_field_type_error_does_not_mention_null() -> None:
    error = rejection(body(notification(ttl="60")))
    assert error.body() == {
        "error": "invalid_type",
        "message": "expected int, got str (at notifications[0].ttl)",
    }


def test_notifications_that_is_not_an_array_is_invalid_type() -> None:
    error = rejection({"api_key": "k", "notifications": {"a": 1}})
    assert error.body() == {
        "error": "invalid_type",
        "message": "expected array, got object (at notifications)",
    }


def test_api_key_is_read_from_an_otherwise_invalid_body() -> None:
    decoded = decode(encode({"api_key": "secret", "notifications": 5}))
    assert decoded.api_key == "secret"
    assert decoded.request is None
    assert decoded.error is not None
    assert decoded.error.code == "invalid_type"


def test_non_string_api_key_in_an_invalid_body_reads_as_none() -> None:
    decoded = decode(encode({"api_key": 12, "notifications": []}))
    assert decoded.api_key is None
    assert decoded.error is not None


def test_valid_body_decodes_with_its_api_key_and_no_error() -> None:
    decoded = decode(encode(sample_body()))
    assert decoded.api_key == "Your API Key goes here"
    assert decoded.error is None
    assert decoded.request is not None
    assert decoded.request.report_attributes == ["INSIDER.email", "INSIDER.device_token"]


def test_missing_api_key_decodes_as_none() -> None:
    b = sample_body()
    del b["api_key"]
    assert decode(encode(b)).api_key is None


def test_async_flag_is_decoded() -> None:
    decoded = decode(encode(body(notification(), **{"async": True})))
    assert decoded.request is not None
    assert decoded.request.is_async is True


def test_validation_does_not_modify_its_input() -> None:
    b = sample_body()
    before = copy.deepcopy(b)
    one(b)
    assert b == before


@pytest.mark.parametrize(
    "raw",
    [b"[" * 5000 + b"]" * 5000, b'{"notifications":' + b"[" * 5000 + b"]" * 5000 + b"}"],
    ids=["top-level", "inside-notifications"],
)
def test_deeply_nested_body_is_a_400_not_a_crash(raw: bytes) -> None:
    try:
        decoded = decode(raw)
    except ApiError as error:
        assert error.status == 400
    else:
        assert decoded.error is not None
        assert decoded.error.status == 400


def test_deeply_nested_identifier_value_is_a_400_not_a_crash() -> None:
    nested = '{"a":' * 5000 + "1" + "}" * 5000
    raw = (
        '{"notifications":[{"identifiers":{"email":"a@b.co","x":' + nested + "},"
        '"camp_id":1,"camp_name":"c","title":"t","message":"m","image_url":"i"}]}'
    ).encode()
    assert rejection(raw).status == 400


# --- schema_error ------------------------------------------------------------------------------


def test_schema_error_maps_missing_field_messages() -> None:
    error = schema_error("Object missing required field `title` - at `$.notifications[3]`")
    assert error.body() == {
        "error": "missing_field",
        "message": "'title' is required (at notifications[3])",
    }


def test_schema_error_maps_top_level_missing_field_without_path() -> None:
    error = schema_error("Object missing required field `camp_id`")
    assert error.body() == {"error": "missing_field", "message": "'camp_id' is required"}


def test_schema_error_maps_type_messages_and_drops_null() -> None:
    error = schema_error("Expected `int | null`, got `str` - at `$.notifications[0].ttl`")
    assert error.body() == {
        "error": "invalid_type",
        "message": "expected int, got str (at notifications[0].ttl)",
    }


def test_schema_error_keeps_other_messages_as_invalid_type() -> None:
    error = schema_error("Some other problem - at `$.x`")
    assert error.status == 400
    assert error.body() == {"error": "invalid_type", "message": "Some other problem"}


def test_content_cache_gives_the_same_pushes_as_validating_afresh() -> None:
    from pushgate.targeting.validate import ContentCache

    cache = ContentCache()
    first = sample_body()
    second = sample_body()
    second["notifications"][0]["identifiers"] = {"INSIDER.uuid": "other-user"}
    for body in (first, second, first):
        request = decode(encode(body)).request
        assert request is not None
        cached = validate(request, cache)
        fresh = validate(request)
        assert [msgspec.structs.replace(p, content_key=b"") for p in cached] == fresh
    assert len(cache.entries) == 1  # both bodies differ only in their identifiers


def test_content_cache_does_not_keep_invalid_content() -> None:
    from pushgate.targeting.validate import ContentCache

    cache = ContentCache()
    body = sample_body()
    body["notifications"][0]["camp_id"] = 0
    request = decode(encode(body)).request
    assert request is not None
    for _ in range(2):
        with pytest.raises(ApiError):
            validate(request, cache)
    assert cache.entries == {}
