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
from tests.emulators.conftest import Clock, ServiceAccount

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
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
    token: str,
    body: Any,
    project: str = "demo-project",
) -> httpx.Response:
    return await http.post(
        f"{emulators.fcm_url}/v1/projects/{project}/messages:send",
        headers={"authorization": f"Bearer {token}"},
        content=json.dumps(body).encode(),
    )


def error_code(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    [detail] = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.firebase.fcm.v1.FcmError"
    assert error["code"] == response.status_code
    return response.status_code, error["status"], detail["errorCode"]


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


async def test_a_token_of_another_project_is_unauthenticated(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str]
) -> None:
    token = await access_token(http, account)

    response = await send(http, emulators, token, {"message": {"token": "t"}}, "other-project")

    assert error_code(response) == (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")


async def test_a_missing_or_unknown_bearer_is_unauthenticated(
    emulators: Emulators, http: httpx.AsyncClient
) -> None:
    response = await send(http, emulators, "ya29.made-up", {"message": {"token": "t"}})

    assert error_code(response) == (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")


async def test_an_access_token_stops_working_after_an_hour(
    emulators: Emulators, http: httpx.AsyncClient, account: dict[str, str], clock: Clock
) -> None:
    token = await access_token(http, account)
    clock.advance(3601)

    response = await send(http, emulators, token, {"message": {"token": "t"}})

    assert error_code(response)[0] == 401


@pytest.mark.parametrize(
    "message",
    [
        {"token": "t", "topic": "news"},
        {"notification": {"title": "no target"}},
        {"token": "t", "data": {"count": 1}},
        {"token": "t", "data": {"blob": "x" * 4100}},
    ],
    ids=["two-targets", "no-target", "non-string-data", "too-big"],
)
async def test_an_invalid_message_is_an_invalid_argument(
    emulators: Emulators,
    http: httpx.AsyncClient,
    account: dict[str, str],
    message: dict[str, Any],
) -> None:
    token = await access_token(http, account)

    response = await send(http, emulators, token, {"message": message})

    assert error_code(response) == (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert emulators.state.deliveries() == []


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("UNREGISTERED", (404, "NOT_FOUND", "UNREGISTERED")),
        ("INVALID_ARGUMENT", (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")),
        ("SENDER_ID_MISMATCH", (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")),
        ("QUOTA_EXCEEDED", (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")),
        ("UNAVAILABLE", (503, "UNAVAILABLE", "UNAVAILABLE")),
        ("INTERNAL", (500, "INTERNAL", "INTERNAL")),
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
