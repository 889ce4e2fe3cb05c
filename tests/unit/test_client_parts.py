"""The client's pure parts (pushgate.client): chunking and merging, error mapping, the retry
policy and request encoding. (The server builds its answers as the same pushgate.wire Structs
the client decodes, so no test needs to hold the two shapes together.)"""

from __future__ import annotations

import datetime
import email.utils
import time
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from pushgate.client import (
    BadApiKey,
    BadRequestToken,
    CampaignNotFound,
    InvalidCertificate,
    InvalidJson,
    InvalidNotifications,
    InvalidRequest,
    InvalidSendAt,
    IpNotAllowed,
    Overloaded,
    PushgateError,
    RateLimited,
    RequestTooLarge,
    RetryPolicy,
    ServerError,
    TooManyIdentifiers,
    Unavailable,
    UserNotFound,
    chunks,
)
from pushgate.client.encode import encode
from pushgate.client.errors import error_from_answer, retry_after
from pushgate.client.timing import Timing, send_at_value
from pushgate.targeting.errors import ApiError
from pushgate.targeting.validate import decode, validate
from pushgate.wire import (
    IosOptions,
    Notification,
    PushEvent,
    SessionRequest,
    TargetedPushRequest,
    TargetedPushResponse,
)
from pushgate.wire.sdk import Device


def note(identifiers: dict[str, Any], camp_id: int = 1, **extra: Any) -> Notification:
    return Notification(
        identifiers=identifiers,
        camp_id=camp_id,
        camp_name="c",
        title="t",
        message="m",
        image_url="",
        **extra,
    )


# ---- chunking ----


def test_45_notifications_make_requests_of_20_20_and_5_in_order() -> None:
    notes = [note({"uuid": f"u{i}"}) for i in range(45)]
    planned = chunks.plan(notes)
    assert [len(c) for c in planned] == [20, 20, 5]
    assert [n for c in planned for n in c] == notes


def test_identifier_values_of_the_whole_request_are_at_most_50() -> None:
    notes = [note({f"k{j}": f"v{i}-{j}" for j in range(5)}) for i in range(20)]
    assert [len(c) for c in chunks.plan(notes)] == [10, 10]
    mixed = [note({"uuid": "a", "email": "a@b.co", "phone_number": "+6512345678"})] * 17
    assert [len(c) for c in chunks.plan(mixed)] == [16, 1]  # 48 identifiers, then 3


def test_identifiers_are_counted_as_the_server_counts_them() -> None:
    # Emails match case-insensitively, the INSIDER. prefix is optional, empty values are
    # ignored, and each value under `custom` counts.
    n = note(
        {
            "email": "Ada@Example.com",
            "INSIDER.email": "ada@example.com",
            "uuid": " ",
            "custom": {"loyalty": "x", "crm": "y"},
        }
    )
    assert chunks.identifier_count(n) == 3
    decoded = decode(encode(TargetedPushRequest(api_key="k", notifications=[n] * 16))).request
    assert decoded is not None
    assert sum(len(p.identifiers) for p in validate(decoded)) == 48


def test_a_notification_over_the_identifier_limit_gets_a_request_of_its_own() -> None:
    big = note({"custom": {f"c{i}": str(i) for i in range(60)}})
    planned = chunks.plan([note({"uuid": "a"}), big, note({"uuid": "b"})])
    assert [len(c) for c in planned] == [1, 1, 1]


def test_no_notifications_is_one_empty_request_for_the_server_to_refuse() -> None:
    assert chunks.plan([]) == [[]]


def test_precheck_raises_the_servers_own_error() -> None:
    with pytest.raises(ApiError) as caught:
        chunks.precheck([[note({"uuid": "a"}, camp_id=-1)]], None)
    assert caught.value.code == "negative_integer"
    too_big = note({"uuid": "a"}, ios=IosOptions(sound="x" * 5000))
    with pytest.raises(ApiError) as caught:
        chunks.precheck([[too_big]], None)
    assert caught.value.code == "payload_too_large"


def test_precheck_refuses_the_timing_the_server_refuses() -> None:
    for fields in (
        {"send_at": "2026-12-08T09:00:00"},  # no offset
        {"send_at": time.time() + 31 * 86_400},
        {"local_time": "24:00"},
        {"send_at": 1, "local_time": "09:00"},
    ):
        with pytest.raises(ApiError) as caught:
            chunks.precheck([[note({"uuid": "a"})], [note({"uuid": "b"}, **fields)]], None)
        assert caught.value.code == "invalid_send_at", fields
    chunks.precheck([[note({"uuid": "a"}, local_time="09:00", ignore_quiet_hours=True)]], None)


def test_answers_merge_as_one_request_would_have_answered() -> None:
    merged = chunks.Merged()
    merged.add(
        TargetedPushResponse(
            successes=[{"INSIDER.device_token": "t1"}],
            errors={"NoUserFound": [{"uuid": "a"}]},
        )
    )
    merged.add(
        TargetedPushResponse(
            successes=[{"INSIDER.device_token": "t2"}],
            errors={"NoUserFound": [{"uuid": "b"}], "OptOut": [{"uuid": "c"}]},
            optin_delivery_count=1,
        )
    )
    merged.add(TargetedPushResponse(successes=[], errors={}, optin_delivery_count=2))
    assert msgspec.to_builtins(merged.result()) == {
        "successes": [{"INSIDER.device_token": "t1"}, {"INSIDER.device_token": "t2"}],
        "errors": {"NoUserFound": [{"uuid": "a"}, {"uuid": "b"}], "OptOut": [{"uuid": "c"}]},
        "optin_delivery_count": 3,
    }
    none = chunks.Merged()
    none.add(TargetedPushResponse(successes=[], errors={}))
    assert none.result().optin_delivery_count is None


# ---- the timing a call gives ----


def test_send_at_is_an_aware_datetime_unix_seconds_or_the_servers_text() -> None:
    kolkata = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    assert send_at_value(datetime.datetime(2026, 12, 8, 9, tzinfo=kolkata)) == (
        "2026-12-08T09:00:00+05:30"
    )
    # A zone's local mean time is no RFC 3339 offset: the instant is given in UTC.
    lmt = datetime.datetime(1900, 1, 1, tzinfo=ZoneInfo("Europe/Amsterdam"))
    assert send_at_value(lmt) == "1899-12-31T23:40:28+00:00"
    assert send_at_value(1_798_131_600) == 1_798_131_600
    assert send_at_value(1.5) == 1.5
    assert send_at_value("2026-12-08T09:00:00Z") == "2026-12-08T09:00:00Z"


@pytest.mark.parametrize("value", [datetime.datetime(2026, 12, 8, 9), True, b"1", None])
def test_a_naive_datetime_or_a_non_time_is_refused_before_sending(value: Any) -> None:
    with pytest.raises(ValueError, match="send_at"):
        send_at_value(value)


def test_the_calls_timing_fills_what_a_notification_leaves_unsaid() -> None:
    plain, at_nine = note({"uuid": "a"}), note({"uuid": "b"}, local_time="09:00")
    quiet = note({"uuid": "c"}, ignore_quiet_hours=True)
    assert Timing.of(None, None, False).apply([plain, at_nine]) == [plain, at_nine]
    timed = Timing.of(60, None, False).apply([plain, at_nine, quiet])
    assert [(n.send_at, n.local_time, n.ignore_quiet_hours) for n in timed] == [
        (60, None, False),
        (None, "09:00", False),  # its own when, whole: never both
        (60, None, True),
    ]
    anyway = Timing.of(None, "20:00", True).apply([plain, at_nine])
    assert [(n.send_at, n.local_time, n.ignore_quiet_hours) for n in anyway] == [
        (None, "20:00", True),
        (None, "09:00", True),
    ]
    with pytest.raises(ValueError, match="not both"):
        Timing.of(60, "09:00", False)


# ---- error answers ----


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (401, b'{"error":"bad_api_key","message":"m"}', BadApiKey, "bad_api_key"),
        (401, b'{"error":"Bad Api Key."}', BadApiKey, "Bad Api Key."),
        (401, b"bad api key", BadApiKey, "bad api key"),
        (403, b'{"error":"Invalid api key"}', BadApiKey, "Invalid api key"),
        (403, b'{"error":"ip_not_allowed","message":"m"}', IpNotAllowed, "ip_not_allowed"),
        (403, b"ip not allowed", IpNotAllowed, "ip not allowed"),
        (
            403,
            b'{"error":"invalid partner name or request token: forbidden"}',
            BadRequestToken,
            "invalid partner name or request token: forbidden",
        ),
        (400, b'{"error":"invalid_notifications","message":"m"}', InvalidNotifications, None),
        (400, b'{"error":"too_many_identifiers","message":"m"}', TooManyIdentifiers, None),
        (400, b'{"error":"request body is not valid JSON: bad request"}', InvalidJson, None),
        (400, b'{"error":"users must be defined: bad request"}', InvalidRequest, None),
        (400, b"bad payload", InvalidRequest, "bad payload"),
        (400, b'{"error":"invalid_certificate","message":"m"}', InvalidCertificate, None),
        (400, b'{"error":"invalid_send_at","message":"m"}', InvalidSendAt, "invalid_send_at"),
        (406, b'{"error":"invalid_certificate","message":"m"}', InvalidCertificate, None),
        (404, b'{"error":"campaign_not_found","message":"m"}', CampaignNotFound, None),
        (404, b'{"error":"no such user for these identifiers: no data"}', UserNotFound, None),
        (413, b'{"error":"request_too_large","message":"m"}', RequestTooLarge, None),
        (413, b'{"error":"request body can\'t exceed 5000000 bytes"}', RequestTooLarge, None),
        (429, b'{"error":"too_many_requests","message":"m"}', RateLimited, None),
        (429, b'{"error":"rejected: too many requests"}', RateLimited, None),
        (429, b"rate limit exceeded; retry after 3 seconds", RateLimited, None),
        (503, b'{"error":"overloaded","message":"m"}', Overloaded, "overloaded"),
        (503, b"<html>upstream down</html>", Unavailable, None),
        (500, b'{"error":"internal_error","message":"m"}', ServerError, "internal_error"),
        (405, b'{"error":"method_not_allowed","message":"m"}', PushgateError, None),
    ],
)
def test_every_family_s_error_shape_maps_to_its_class(
    status: int, body: bytes, cls: type[PushgateError], code: str | None
) -> None:
    error = error_from_answer(status, {}, body)
    assert type(error) is cls
    assert error.status == status
    if code is not None:
        assert error.code == code
    assert error.message


def test_an_error_keeps_the_code_message_and_retry_after() -> None:
    body = b'{"error":"too_many_requests","message":"rate limit exceeded; retry after 3 seconds"}'
    error = error_from_answer(429, {"retry-after": "3"}, body)
    assert (error.code, error.message, error.retry_after) == (
        "too_many_requests",
        "rate limit exceeded; retry after 3 seconds",
        3.0,
    )
    assert str(error) == "429 too_many_requests: rate limit exceeded; retry after 3 seconds"


def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert retry_after({"retry-after": date}, now=1_000_000) == 10.0
    assert retry_after({"retry-after": "-5"}) is None  # not delay-seconds: as if absent
    assert retry_after({"retry-after": "1.5"}) == 2.0  # never sooner than asked


# ---- the retry policy ----


def limited(after: float | None) -> RateLimited:
    return RateLimited("m", status=429, code="too_many_requests", retry_after=after)


def test_only_429_and_503_are_retried_after_their_retry_after() -> None:
    policy = RetryPolicy(attempts=3, max_wait=10, default_delay=0.5)
    assert policy.delay(limited(2), 1, 0) == 2
    assert policy.delay(Overloaded("m", status=503, retry_after=1), 1, 0) == 1
    assert policy.delay(limited(None), 1, 0) == 0.5
    assert policy.delay(BadApiKey("m", status=401), 1, 0) is None
    assert policy.delay(ServerError("m", status=500), 1, 0) is None


def test_attempts_and_total_wait_are_bounded() -> None:
    policy = RetryPolicy(attempts=3, max_wait=5)
    assert policy.delay(limited(2), 2, 2) == 2
    assert policy.delay(limited(2), 3, 4) is None  # the third attempt was the last
    assert policy.delay(limited(4), 1, 2) is None  # 2 + 4 would pass max_wait
    assert RetryPolicy(attempts=1).delay(limited(1), 1, 0) is None
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


# ---- request bodies ----


def test_request_bodies_leave_out_what_is_at_its_default() -> None:
    request = TargetedPushRequest(
        api_key="k",
        notifications=[note({"uuid": "a"}, ios=IosOptions(thread_id_dash=3, badge=0))],
        is_async=True,
    )
    assert msgspec.json.decode(encode(request)) == {
        "api_key": "k",
        "notifications": [
            {
                "identifiers": {"uuid": "a"},
                "camp_id": 1,
                "camp_name": "c",
                "title": "t",
                "message": "m",
                "image_url": "",
                "ios": {"thread-id": 3, "badge": 0},
            }
        ],
        "async": True,
    }
    session = SessionRequest(device=Device(platform="ios", device_token="t", push_optin=False))
    assert msgspec.json.decode(encode(session)) == {
        "device": {"platform": "ios", "device_token": "t", "push_optin": False}
    }


def test_event_timestamps_are_rfc_3339_with_a_zone() -> None:
    import datetime

    event = PushEvent(
        event_name="push_session",
        camp_id=1,
        timestamp=datetime.datetime(2026, 11, 27, 10, tzinfo=datetime.UTC),
    )
    assert msgspec.json.decode(encode(event)) == {
        "event_name": "push_session",
        "camp_id": 1,
        "timestamp": "2026-11-27T10:00:00Z",
    }
