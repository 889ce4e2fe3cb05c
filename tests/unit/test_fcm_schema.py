"""The FCM v1 schema check (emulators/fcm_schema.py) on canned bodies: what Google's parse and
FCM itself refuse, with the field paths and texts Google answers with, and what they accept."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import pytest

from pushgate.emulators.fcm_schema import (
    BAD_REQUEST_TYPE,
    FCM_ERROR_TYPE,
    MAX_MESSAGE_BYTES,
    FcmSchema,
    Rejection,
    check_send_request,
    invalid_token,
    message_size,
    schema,
)

VENDORED_SHA256 = "5af8eff795b9c5c29a250494e4996980ccc982938c863109d614389a591aa3f9"

FULL_MESSAGE: dict[str, Any] = {
    "token": "fcm-token",
    "name": "projects/p/messages/1",
    "data": {"camp_id": "7", "deep": "link"},
    "notification": {"title": "T", "body": "B", "image": "https://i.example/a.png"},
    "android": {
        "collapseKey": "c",
        "priority": "HIGH",
        "ttl": "86400s",
        "restrictedPackageName": "com.example",
        "data": {"a": "b"},
        "directBootOk": True,
        "bandwidthConstrainedOk": False,
        "restrictedSatelliteOk": False,
        "fcmOptions": {"analyticsLabel": "l"},
        "notification": {
            "title": "T",
            "body": "B",
            "icon": "ic",
            "color": "#aabbcc",
            "sound": "default",
            "tag": "t",
            "clickAction": "OPEN",
            "bodyLocKey": "k",
            "bodyLocArgs": ["1", "2"],
            "titleLocKey": "k",
            "titleLocArgs": [],
            "channelId": "news",
            "ticker": "x",
            "sticky": False,
            "eventTime": "2026-01-02T03:04:05.123456789Z",
            "localOnly": True,
            "notificationPriority": "PRIORITY_MAX",
            "defaultSound": True,
            "defaultVibrateTimings": False,
            "defaultLightSettings": False,
            "vibrateTimings": ["0.1s", "2s"],
            "visibility": "PRIVATE",
            "notificationCount": 4,
            "lightSettings": {
                "color": {"red": 0.5, "green": 1, "blue": 0, "alpha": 1.0},
                "lightOnDuration": "0.5s",
                "lightOffDuration": "1s",
            },
            "image": "https://i.example/b.png",
            "bypassProxyNotification": False,
            "proxy": "IF_PRIORITY_LOWERED",
        },
    },
    "apns": {
        "headers": {"apns-priority": "10", "apns-push-type": "alert"},
        "payload": {"aps": {"alert": {"title": "T"}, "badge": 1, "mutable-content": 1}, "k": [1]},
        "fcmOptions": {"analyticsLabel": "l", "image": "https://i.example/c.png"},
        "liveActivityToken": "lat",
    },
    "webpush": {
        "headers": {"TTL": "60"},
        "data": {"w": "1"},
        "notification": {"title": "T", "actions": [{"action": "a", "title": "A"}]},
        "fcmOptions": {"link": "https://example.com", "analyticsLabel": "l"},
    },
    "fcmOptions": {"analyticsLabel": "top"},
}


def snake(value: Any) -> Any:
    """`value` with every field name in its proto (snake_case) spelling; map keys kept."""
    maps = {"data", "headers", "payload", "notification_webpush"}
    if isinstance(value, list):
        return [snake(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = "".join("_" + c.lower() if c.isupper() else c for c in key)
        out[name] = item if name in maps else snake(item)
    return out


def rejection(message: dict[str, Any], **extra: Any) -> Rejection:
    result = check_send_request({"message": message, **extra})
    assert result is not None, "accepted"
    return result


def fields(result: Rejection) -> list[str]:
    return [v.field for v in result.violations]


def test_the_vendored_document_is_google_s_with_its_licence() -> None:
    folder = resources.files("pushgate.emulators").joinpath("schemas")
    document = folder.joinpath("fcm.v1.json").read_bytes()
    assert hashlib.sha256(document).hexdigest() == VENDORED_SHA256
    assert "Apache License" in folder.joinpath("LICENSE").read_text()
    assert VENDORED_SHA256 in folder.joinpath("NOTICE").read_text()
    assert schema().revision == "20261023"


@pytest.mark.parametrize("spelling", ["camelCase", "snake_case"])
def test_a_full_message_in_either_spelling_is_accepted(spelling: str) -> None:
    message = FULL_MESSAGE if spelling == "camelCase" else snake(FULL_MESSAGE)
    key = "validateOnly" if spelling == "camelCase" else "validate_only"

    assert check_send_request({"message": message, key: True}) is None


def test_an_unknown_field_is_named_at_its_parent_as_google_does() -> None:
    result = rejection({"token": "t", "android": {"notification": {"foo": "x"}}})

    text = (
        'Invalid JSON payload received. Unknown name "foo" at '
        "'message.android.notification': Cannot find field."
    )
    assert result.message == text
    assert fields(result) == ["message.android.notification"]
    assert not result.fcm_error
    assert result.body()["error"]["details"] == [
        {
            "@type": BAD_REQUEST_TYPE,
            "fieldViolations": [{"field": "message.android.notification", "description": text}],
        }
    ]


def test_an_unknown_top_level_field_has_no_parent_to_name() -> None:
    result = check_send_request({"message": {"token": "t"}, "dryRun": True})

    assert result is not None
    assert (
        result.message == 'Invalid JSON payload received. Unknown name "dryRun": Cannot find field.'
    )
    assert result.body()["error"]["details"][0]["fieldViolations"] == [
        {"description": result.message}
    ]


def test_a_name_in_neither_spelling_is_unknown() -> None:
    result = rejection({"token": "t", "android": {"CollapseKey": "c", "collapse-key": "c"}})

    assert fields(result) == ["message.android", "message.android"]


def test_every_violation_is_reported_and_joined_in_the_message() -> None:
    result = rejection({"token": "t", "foo": 1, "android": {"ttl": "1h", "priority": "LOUD"}})

    assert fields(result) == ["message", "message.android.ttl", "message.android.priority"]
    assert result.message == "\n".join(v.description for v in result.violations)


def test_google_s_documented_data_example_word_for_word() -> None:
    # https://firebase.google.com/docs/cloud-messaging/error-codes, example 1.
    result = rejection({"token": "t", "data": {"score": 12}})

    assert result.body() == {
        "error": {
            "code": 400,
            "message": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": BAD_REQUEST_TYPE,
                    "fieldViolations": [
                        {
                            "field": "message.data[0].value",
                            "description": "Invalid value at 'message.data[0].value' "
                            "(TYPE_STRING), 12",
                        }
                    ],
                }
            ],
        }
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1, "1"), (1.5, "1.5"), (True, "true"), ({"a": "b"}, None), (["x"], None)],
    ids=["integer", "float", "boolean", "object", "list"],
)
def test_a_data_value_that_is_not_a_string_is_refused_naming_its_entry(
    value: Any, shown: str | None
) -> None:
    result = rejection({"token": "t", "data": {"ok": "yes", "bad": value}})

    assert [v.field for v in result.violations] in (
        ["message.data[1].value"],
        ["message.data[1]"],
    )
    if shown is not None:
        assert result.message == f"Invalid value at 'message.data[1].value' (TYPE_STRING), {shown}"


@pytest.mark.parametrize(
    ("message", "field", "text"),
    [
        (
            {"token": 5},
            "message.token",
            "Invalid value at 'message.token' (TYPE_STRING), 5",
        ),
        (
            {"token": "t", "notification": "hello"},
            "message.notification",
            "Invalid value at 'message.notification' "
            '(type.googleapis.com/google.firebase.fcm.v1.Notification), "hello"',
        ),
        (
            {"token": "t", "notification": {"title": {"text": "x"}}},
            "message.notification",
            "Invalid value at 'message.notification' (title), Starting an object on a scalar field",
        ),
        (
            {"token": "t", "notification": [{"title": "x"}]},
            "message",
            "Invalid JSON payload received. Unknown name \"notification\" at 'message': "
            "Proto field is not repeating, cannot start list.",
        ),
        (
            {"token": "t", "android": {"direct_boot_ok": "true"}},
            "message.android.direct_boot_ok",
            "Invalid value at 'message.android.direct_boot_ok' (TYPE_BOOL), \"true\"",
        ),
        (
            {"token": "t", "android": {"notification": {"notification_count": 1.5}}},
            "message.android.notification.notification_count",
            "Invalid value at 'message.android.notification.notification_count' (TYPE_INT32), 1.5",
        ),
        (
            {"token": "t", "android": {"notification": {"notificationCount": 2**31}}},
            "message.android.notification.notification_count",
            "Invalid value at 'message.android.notification.notification_count' "
            f"(TYPE_INT32), {2**31}",
        ),
        (
            {"token": "t", "android": {"notification": {"lightSettings": {"color": {"red": "x"}}}}},
            "message.android.notification.light_settings.color.red",
            "Invalid value at 'message.android.notification.light_settings.color.red' "
            '(TYPE_FLOAT), "x"',
        ),
        (
            {"token": "t", "apns": {"headers": ["apns-priority"]}},
            "message.apns",
            "Invalid JSON payload received. Unknown name \"headers\" at 'message.apns': "
            "Proto field is not repeating, cannot start list.",
        ),
        (
            {"token": "t", "apns": {"payload": "{}"}},
            "message.apns.payload",
            "Invalid value at 'message.apns.payload' (type.googleapis.com/google.protobuf.Struct), "
            '"{}"',
        ),
        (
            {"token": "t", "android": {"notification": {"bodyLocArgs": [1]}}},
            "message.android.notification.body_loc_args[0]",
            "Invalid value at 'message.android.notification.body_loc_args[0]' (TYPE_STRING), 1",
        ),
    ],
    ids=[
        "number-for-a-string",
        "string-for-a-message",
        "object-for-a-string",
        "list-for-a-message",
        "string-for-a-boolean",
        "fraction-for-an-int32",
        "int32-overflow",
        "string-for-a-float",
        "list-for-a-map",
        "string-for-a-struct",
        "number-in-a-string-list",
    ],
)
def test_a_wrong_json_type_is_refused_naming_the_field(
    message: dict[str, Any], field: str, text: str
) -> None:
    result = rejection(message)

    assert fields(result) == [field]
    assert result.message == text
    assert not result.fcm_error


def test_a_string_where_a_list_belongs_is_refused() -> None:
    result = rejection({"token": "t", "android": {"notification": {"vibrateTimings": "1s"}}})

    assert fields(result) == ["message.android.notification.vibrate_timings"]


@pytest.mark.parametrize(
    ("field_name", "value", "type_name"),
    [
        ("priority", "URGENT", "AndroidMessagePriority"),
        ("priority", "", "AndroidMessagePriority"),
        ("priority", 2, "AndroidMessagePriority"),
        ("priority", True, "AndroidMessagePriority"),
    ],
)
def test_an_enum_value_google_does_not_know_is_refused(
    field_name: str, value: Any, type_name: str
) -> None:
    result = rejection({"token": "t", "android": {field_name: value}})

    assert fields(result) == ["message.android.priority"]
    assert result.message.startswith(
        "Invalid value at 'message.android.priority' "
        f"(type.googleapis.com/google.firebase.fcm.v1.{type_name}), "
    )


@pytest.mark.parametrize("value", ["HIGH", "high", "High", "NORMAL", 0, 1])
def test_an_enum_takes_its_names_in_any_case_and_its_numbers(value: Any) -> None:
    assert check_send_request({"message": {"token": "t", "android": {"priority": value}}}) is None


def test_nested_enums_are_checked_with_their_own_values() -> None:
    android = {"notification": {"visibility": "HIDDEN", "notification_priority": "PRIORITY_LOW"}}

    result = rejection({"token": "t", "android": android})

    assert fields(result) == ["message.android.notification.visibility"]
    assert '"HIDDEN"' in result.message


@pytest.mark.parametrize(
    ("ttl", "problem"),
    [
        ("3600", "Illegal duration format; duration must end with 's'"),
        ("1h", "Illegal duration format; duration must end with 's'"),
        ("3600S", "Illegal duration format; duration must end with 's'"),
        (3600, "Invalid data type for duration, value is 3600"),
        ("s", "Invalid duration format, failed to parse seconds"),
        ("abcs", "Invalid duration format, failed to parse seconds"),
        (".5s", "Invalid duration format, failed to parse seconds"),
        ("1.1234567891s", "Invalid duration format, failed to parse nano seconds"),
        ("1.5.5s", "Invalid duration format, failed to parse seconds"),
        ("315576000001s", "Duration value exceeds limits"),
    ],
)
def test_a_ttl_that_is_not_a_google_duration_is_refused(ttl: Any, problem: str) -> None:
    result = rejection({"token": "t", "android": {"ttl": ttl}})

    assert fields(result) == ["message.android.ttl"]
    assert result.message == (
        "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), "
        f"Field 'ttl', {problem}"
    )


@pytest.mark.parametrize("ttl", ["0s", "3600s", "3.5s", "1.000000001s", "2419200s", "+5s", "7.s"])
def test_a_google_duration_ttl_is_accepted(ttl: str) -> None:
    assert check_send_request({"message": {"token": "t", "android": {"ttl": ttl}}}) is None


@pytest.mark.parametrize("ttl", ["2419201s", "-1s", "2419200.5s"])
def test_a_ttl_beyond_four_weeks_or_negative_is_refused_by_fcm(ttl: str) -> None:
    result = rejection({"token": "t", "android": {"ttl": ttl}})

    assert result.fcm_error
    assert fields(result) == ["message.android.ttl"]


@pytest.mark.parametrize(
    "event_time",
    ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123Z", "2026-01-02T03:04:05+08:00"],
)
def test_an_rfc3339_event_time_is_accepted(event_time: str) -> None:
    android = {"notification": {"event_time": event_time}}

    assert check_send_request({"message": {"token": "t", "android": android}}) is None


@pytest.mark.parametrize(
    "event_time", ["2026-01-02 03:04:05Z", "2026-02-30T00:00:00Z", "2026-01-02T03:04:05", 17]
)
def test_an_event_time_that_is_not_rfc3339_is_refused(event_time: Any) -> None:
    result = rejection({"token": "t", "android": {"notification": {"eventTime": event_time}}})

    assert fields(result) == ["message.android.notification.event_time"]
    assert "(type.googleapis.com/google.protobuf.Timestamp), Field 'eventTime'" in result.message


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"token": "t", "data": {"from": "me"}}, "message.data"),
        ({"token": "t", "data": {"message_type": "x"}}, "message.data"),
        ({"token": "t", "data": {"google.c.a.e": "1"}}, "message.data"),
        ({"token": "t", "data": {"gcm.notification.body": "x"}}, "message.data"),
        ({"token": "t", "android": {"data": {"googleplay": "x"}}}, "message.android.data"),
    ],
)
def test_a_reserved_data_key_is_refused_by_fcm(message: dict[str, Any], field: str) -> None:
    result = rejection(message)

    assert result.fcm_error
    assert fields(result) == [field]
    assert result.message.startswith("Invalid data payload key: ")
    assert result.body()["error"]["details"][0] == {
        "@type": FCM_ERROR_TYPE,
        "errorCode": "INVALID_ARGUMENT",
    }


@pytest.mark.parametrize("key", ["fromage", "my_from", "message", "collapse_key", "xgoogle"])
def test_keys_that_only_resemble_reserved_ones_are_accepted(key: str) -> None:
    assert check_send_request({"message": {"token": "t", "data": {key: "v"}}}) is None


@pytest.mark.parametrize(
    ("message", "second"),
    [
        ({"token": "t", "topic": "news"}, "topic"),
        ({"topic": "news", "token": "t"}, "token"),
        ({"token": "t", "condition": "'a' in topics"}, "condition"),
        ({"fid": "f", "token": ""}, "token"),
    ],
)
def test_two_targets_are_refused_by_the_oneof(message: dict[str, Any], second: str) -> None:
    result = rejection(message)

    assert result.message == (
        f"Invalid value (oneof), oneof field 'target' is already set. Cannot set '{second}'"
    )
    # Naming the message, never `message.token`: this is a payload problem, not a dead token.
    assert fields(result) == ["message"]
    assert not result.fcm_error


def test_a_null_target_is_not_set() -> None:
    assert check_send_request({"message": {"token": "t", "topic": None}}) is None


@pytest.mark.parametrize("message", [{}, {"notification": {"title": "x"}}, {"token": None}])
def test_a_message_without_a_recipient_is_refused_by_fcm(message: dict[str, Any]) -> None:
    result = rejection(message)

    assert result.message == "Recipient of the message is not set."
    assert result.fcm_error
    assert fields(result) == ["message"]


def test_the_size_limit_counts_the_message_without_its_target() -> None:
    base = {"token": "t" * 500, "data": {"k": ""}}
    room = MAX_MESSAGE_BYTES - message_size(base)
    fits = {"token": "t" * 500, "data": {"k": "é" * (room // 2)}}
    over = {"token": "t", "data": {"k": "é" * (room // 2) + "xx"}}

    assert message_size(fits) <= MAX_MESSAGE_BYTES
    assert check_send_request({"message": fits}) is None
    result = rejection(over)
    assert result.fcm_error
    assert result.violations == ()
    assert result.message == "Request contains an invalid argument."


def test_a_malformed_token_names_message_token_beside_the_fcm_error() -> None:
    body = invalid_token().body()

    assert body == {
        "error": {
            "code": 400,
            "message": "The registration token is not a valid FCM registration token",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"},
                {
                    "@type": BAD_REQUEST_TYPE,
                    "fieldViolations": [
                        {
                            "field": "message.token",
                            "description": "The registration token is not a valid FCM "
                            "registration token",
                        }
                    ],
                },
            ],
        }
    }


@pytest.mark.parametrize("body", [[], "message", None, 3])
def test_a_body_that_is_not_an_object_is_refused(body: Any) -> None:
    result = check_send_request(body)

    assert result is not None
    assert result.message.startswith("Invalid JSON payload received.")


def test_int64_and_uint64_fields_take_numbers_and_decimal_strings() -> None:
    """FCM's schema has no 64-bit field today; a document that has one is checked per proto3
    JSON (numbers, or decimal strings for values JavaScript cannot hold)."""
    document = {
        "schemas": {
            "SendMessageRequest": {"properties": {"message": {"$ref": "Message"}}},
            "Message": {
                "properties": {
                    "token": {"type": "string"},
                    "big": {"type": "string", "format": "int64"},
                    "count": {"type": "string", "format": "uint64"},
                }
            },
        }
    }
    checker = FcmSchema(document)

    assert checker.check({"message": {"token": "t", "big": "-9223372036854775808"}}) is None
    assert (
        checker.check({"message": {"token": "t", "big": 5, "count": "18446744073709551615"}})
        is None
    )
    too_big = checker.check({"message": {"token": "t", "big": "9223372036854775808"}})
    negative = checker.check({"message": {"token": "t", "count": -1}})
    text = checker.check({"message": {"token": "t", "big": "12abc"}})
    assert too_big is not None and "(TYPE_INT64)" in too_big.message
    assert negative is not None and "(TYPE_UINT64), -1" in negative.message
    assert text is not None and [v.field for v in text.violations] == ["message.big"]
