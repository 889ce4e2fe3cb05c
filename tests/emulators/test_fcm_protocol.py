"""The FCM emulator's token endpoint and send endpoint on the wire (httpx, HTTP/2 by ALPN)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from pushgate.emulators import Emulators, Fault
from pushgate.providers import fcm
from pushgate.providers.verdict import Verdict
from tests.support.emulator_clock import Clock, ServiceAccount

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture
async def http(emulators: Emulators) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=emulators.ca.client_context(), http2=True) as client:
        yield client


@pytest.fixture
def account(service_account: ServiceAccount) -> dict[str, str]:
    return service_account(project_id="demo-project")


def assertion(account: dict[str, str], **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": account["client_email"],
        "scope": SCOPE,
        "aud": "https://oauth2.googleapis.com/token",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    key_id = claims.pop("kid", account["private_key_id"])
    return jwt.encode(claims, account["private_key"], algorithm="RS256", headers={"kid": key_id})


async def get_token(
    http: httpx.AsyncClient, account: dict[str, str], signed: str | None = None
) -> httpx.Response:
    return await http.post(
        account["token_uri"],
        data={"grant_type": JWT_BEARER, "assertion": signed or assertion(account)},
    )


async def access_token(http: httpx.AsyncClient, account: dict[str, str]) -> str:
    response = await get_token(http, account)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def send(
    http: httpx.AsyncClient,
    emulators: Emulators,
    token: str | None,
    body: Any,
    project: str = "demo-project",
    authorization: str | None = None,
) -> httpx.Response:
    """POST `body` with `Authorization: Bearer <token>` (or `authorization` as given, or none)."""
    if authorization is None and token is not None:
        authorization = f"Bearer {token}"
    return await http.post(
        f"{emulators.fcm_url}/v1/projects/{project}/messages:send",
        headers={} if authorization is None else {"authorization": authorization},
        content=json.dumps(body).encode(),
    )


def error_code(response: httpx.Response) -> tuple[int, str, str | None]:
    """HTTP status, `error.status` and the FcmError's errorCode (None: no FcmError detail)."""
    error = response.json()["error"]
    assert error["code"] == response.status_code
    codes = [d["errorCode"] for d in error.get("details", []) if d["@type"] == FCM_ERROR]
    assert len(codes) <= 1, error
    return response.status_code, error["status"], codes[0] if codes else None


def field_violations(response: httpx.Response) -> list[str]:
    """The `google.rpc.BadRequest` fields named ("" for a violation without one)."""
    details = response.json()["error"].get("details", [])
    return [
        violation.get("field", "")
        for detail in details
        if detail["@type"] == BAD_REQUEST
        for violation in detail["fieldViolations"]
    ]


def error_info(response: httpx.Response) -> str:
    [detail] = response.json()["error"]["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert detail["metadata"]["service"] == "fcm.googleapis.com"
    return str(detail["reason"])


async def test_a_valid_assertion_gets_a_bearer_token_for_an_hour(
    http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    response = await get_token(http, account)

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    body = response.json()
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    assert body["access_token"]


async def test_the_emulators_own_token_url_is_an_accepted_audience(
    http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    response = await get_token(http, account, assertion(account, aud=account["token_uri"]))

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"aud": "https://example.com/token"}, "invalid_grant"),
        ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant"),
        ({"kid": "f" * 40}, "invalid_grant"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant"),
    ],
    ids=["audience", "scope", "too-long-lived", "expired", "unknown-key-id", "unknown-account"],
)
async def test_a_bad_assertion_is_refused_like_google_does(
    http: httpx.AsyncClient, account: dict[str, str], overrides: dict[str, Any], error: str
) -> None:
    response = await get_token(http, account, assertion(account, **overrides))

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


async def test_an_assertion_signed_by_another_key_is_an_invalid_signature(
    http: httpx.AsyncClient, account: dict[str, str], service_account: ServiceAccount
) -> None:
    other = service_account(key=1)
    forged = dict(account, private_key=other["private_key"])

    response = await get_token(http, account, assertion(forged))

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }


async def test_a_wrong_grant_type_is_unsupported(
    http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    response = await http.post(
        account["token_uri"], data={"grant_type": "password", "assertion": assertion(account)}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_a_send_is_recorded_with_its_whole_body(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    token = await access_token(http, account)
    body = {"message": {"token": "t1", "data": {"a": "b"}}, "validate_only": False}

    response = await send(http, emulators, token, body)

    assert response.status_code == 200
    assert response.json()["name"].startswith("projects/demo-project/messages/")
    [delivery] = emulators.state.deliveries("android", "t1")
    assert delivery.payload == body


async def test_a_token_of_another_project_is_permission_denied(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    token = await access_token(http, account)

    response = await send(http, emulators, token, {"message": {"token": "t"}}, "other-project")

    assert error_code(response) == (403, "PERMISSION_DENIED", None)
    [detail] = response.json()["error"]["details"]
    assert detail["reason"] == "IAM_PERMISSION_DENIED"
    assert detail["metadata"] == {
        "resource": "projects/other-project",
        "permission": "cloudmessaging.messages.create",
    }


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "CREDENTIALS_MISSING"),
        ("Basic dXNlcjpwYXNz", "CREDENTIALS_MISSING"),
        ("Bearer ", "CREDENTIALS_MISSING"),
        ("Bearer ya29.made-up", "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
    ],
    ids=["missing", "not-bearer", "empty-bearer", "unknown-bearer"],
)
async def test_a_missing_or_unknown_access_token_is_unauthenticated_without_an_fcm_error(
    emulators: Emulators, http: httpx.AsyncClient, authorization: str | None, reason: str
) -> None:
    response = await send(
        http, emulators, None, {"message": {"token": "t"}}, authorization=authorization
    )

    assert error_code(response) == (401, "UNAUTHENTICATED", None)
    assert error_info(response) == reason
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert emulators.state.deliveries() == []


async def test_an_access_token_stops_working_after_an_hour(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str], clock: Clock
) -> None:
    token = await access_token(http, account)
    clock.advance(3599)
    assert (await send(http, emulators, token, {"message": {"token": "t"}})).status_code == 200
    clock.advance(2)

    response = await send(http, emulators, token, {"message": {"token": "t"}})

    assert error_code(response) == (401, "UNAUTHENTICATED", None)
    assert error_info(response) == "ACCESS_TOKEN_EXPIRED"


@pytest.mark.parametrize(
    ("body", "fields", "fcm_error"),
    [
        ({"message": {"token": "t", "topic": "news"}}, ["message"], None),
        ({"message": {"notification": {"title": "no target"}}}, ["message"], "INVALID_ARGUMENT"),
        ({"message": {"token": "t", "data": {"count": 1}}}, ["message.data[0].value"], None),
        ({"message": {"token": "t", "data": {"blob": "x" * 4100}}}, [], "INVALID_ARGUMENT"),
        ({"message": {"token": "t", "foo": "bar"}}, ["message"], None),
        ({"message": {"token": "t", "android": {"ttl": "3600"}}}, ["message.android.ttl"], None),
        ({"message": {"token": "t", "android": {"ttl": 3600}}}, ["message.android.ttl"], None),
        (
            {"message": {"token": "t", "android": {"priority": "URGENT"}}},
            ["message.android.priority"],
            None,
        ),
        (
            {"message": {"token": "t", "android": {"directBootOk": "yes"}}},
            ["message.android.direct_boot_ok"],
            None,
        ),
        (
            {"message": {"token": "t", "data": {"google.sent_time": "1"}}},
            ["message.data"],
            "INVALID_ARGUMENT",
        ),
        ({"message": {"token": "t"}, "validate_only": "no"}, ["validate_only"], None),
        ({"message": {"token": "t"}, "dry_run": True}, [""], None),
    ],
    ids=[
        "two-targets",
        "no-target",
        "non-string-data",
        "too-big",
        "unknown-field",
        "ttl-without-s",
        "ttl-as-number",
        "unknown-enum-value",
        "string-for-a-boolean",
        "reserved-data-key",
        "string-for-validate-only",
        "unknown-top-level-field",
    ],
)
async def test_an_invalid_message_is_an_invalid_argument_naming_the_field(
    emulators: Emulators,
    http: httpx.AsyncClient,
    account: dict[str, str],
    body: dict[str, Any],
    fields: list[str],
    fcm_error: str | None,
) -> None:
    token = await access_token(http, account)

    response = await send(http, emulators, token, body)

    assert error_code(response) == (400, "INVALID_ARGUMENT", fcm_error)
    assert field_violations(response) == fields
    assert "message.token" not in fields  # a payload problem must never look like a dead token
    assert emulators.state.deliveries() == []


async def test_google_s_own_answer_for_a_non_string_data_value_is_mirrored(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    token = await access_token(http, account)

    response = await send(http, emulators, token, {"message": {"token": "t", "data": {"n": 12}}})

    # https://firebase.google.com/docs/cloud-messaging/error-codes, example 1, word for word.
    text = "Invalid value at 'message.data[0].value' (TYPE_STRING), 12"
    assert response.json() == {
        "error": {
            "code": 400,
            "message": text,
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": BAD_REQUEST,
                    "fieldViolations": [{"field": "message.data[0].value", "description": text}],
                }
            ],
        }
    }


async def test_a_body_that_is_not_json_is_an_invalid_argument(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    token = await access_token(http, account)

    response = await http.post(
        f"{emulators.fcm_url}/v1/projects/demo-project/messages:send",
        headers={"authorization": f"Bearer {token}"},
        content=b'{"message": {',
    )

    assert error_code(response) == (400, "INVALID_ARGUMENT", None)
    assert response.json()["error"]["message"].startswith("Invalid JSON payload received.")


@pytest.mark.parametrize(
    "message",
    [
        {"token": "t", "android": {"collapseKey": "c", "notification": {"channelId": "7"}}},
        {"token": "t", "android": {"collapse_key": "c", "notification": {"channel_id": "7"}}},
        {"token": "t", "android": {"priority": "high", "ttl": "3.5s"}},
        {"token": "t", "android": {"priority": 1, "ttl": "0.000000001s"}},
        {"token": "t", "android": {"notification": {"notification_count": "3"}}},
        {"token": "t", "topic": None, "data": {}},
        {"topic": "news", "fcm_options": {"analytics_label": "x"}},
        {"condition": "'a' in topics", "apns": {"payload": {"aps": {"badge": 1}}}},
    ],
    ids=[
        "camelCase",
        "snake_case",
        "lower-case-enum-and-fractional-ttl",
        "enum-number-and-nanosecond-ttl",
        "int32-as-string",
        "null-is-unset",
        "topic",
        "condition-with-apns-payload",
    ],
)
async def test_what_google_s_parser_accepts_is_accepted(
    emulators: Emulators,
    http: httpx.AsyncClient,
    account: dict[str, str],
    message: dict[str, Any],
) -> None:
    token = await access_token(http, account)

    response = await send(http, emulators, token, {"message": message})

    assert response.status_code == 200, response.text


async def test_a_malformed_registration_token_names_message_token(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    token = await access_token(http, account)
    emulators.state.set_token_outcome("android", "garbled", "INVALID_ARGUMENT")

    response = await send(http, emulators, token, {"message": {"token": "garbled"}})

    assert error_code(response) == (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert field_violations(response) == ["message.token"]
    error = response.json()["error"]
    assert error["message"] == "The registration token is not a valid FCM registration token"


async def test_pushgate_reads_the_emulators_answers_the_way_providers_md_says(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str], clock: Clock
) -> None:
    """A malformed token retires the device; a payload problem fails only that push; an
    expired access token is refreshed."""
    token = await access_token(http, account)
    emulators.state.set_token_outcome("android", "garbled", "INVALID_ARGUMENT")

    def verdict(response: httpx.Response) -> Verdict:
        return fcm.classify(response.status_code, dict(response.headers), response.content)

    dead = verdict(await send(http, emulators, token, {"message": {"token": "garbled"}}))
    bad_ttl = {"message": {"token": "t", "android": {"ttl": "1h"}}}
    payload = verdict(await send(http, emulators, token, bad_ttl))
    reserved = {"message": {"token": "t", "data": {"from": "me"}}}
    reserved_key = verdict(await send(http, emulators, token, reserved))
    clock.advance(3601)
    expired = verdict(await send(http, emulators, token, {"message": {"token": "t"}}))

    assert (dead.kind, dead.reason) == ("dead_token", "InvalidRegistration")
    assert (payload.kind, payload.reason) == ("rejected", "InvalidParameters")
    assert (reserved_key.kind, reserved_key.reason) == ("rejected", "InvalidParameters")
    assert (expired.kind, expired.refresh_auth) == ("credential", True)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("UNREGISTERED", (404, "NOT_FOUND", "UNREGISTERED")),
        ("INVALID_ARGUMENT", (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")),
        ("SENDER_ID_MISMATCH", (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")),
        ("QUOTA_EXCEEDED", (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")),
        ("UNAVAILABLE", (503, "UNAVAILABLE", "UNAVAILABLE")),
        ("INTERNAL", (500, "INTERNAL", "INTERNAL")),
        ("THIRD_PARTY_AUTH_ERROR", (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")),
    ],
)
async def test_a_token_outcome_is_answered_in_the_fcm_error_envelope(
    emulators: Emulators,
    http: httpx.AsyncClient,
    account: dict[str, str],
    outcome: str,
    expected: tuple[int, str, str],
) -> None:
    token = await access_token(http, account)
    emulators.state.set_token_outcome("android", "device-1", outcome)

    response = await send(http, emulators, token, {"message": {"token": "device-1"}})

    assert error_code(response) == expected


async def test_a_fault_answers_with_its_status_and_retry_after(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    token = await access_token(http, account)
    emulators.state.set_fault(Fault("android", 429, 1.0, retry_after=7))

    response = await send(http, emulators, token, {"message": {"token": "t"}})

    assert error_code(response) == (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
    assert response.headers["retry-after"] == "7"
