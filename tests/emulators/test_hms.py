"""The HMS Push Kit emulator on the wire: token endpoint, send, result codes (httpx)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from pushgate.emulators import Emulators, Fault, HmsCredential
from tests.emulators.conftest import Clock


@pytest.fixture
async def http(emulators: Emulators) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=emulators.ca.client_context()) as client:
        yield client


@pytest.fixture
def app(emulators: Emulators) -> HmsCredential:
    return emulators.generate_hms_credential()


async def token_for(http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential) -> str:
    response = await http.post(
        emulators.hms_token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def send(
    http: httpx.AsyncClient,
    emulators: Emulators,
    app_id: str,
    bearer: str,
    body: dict[str, Any],
) -> httpx.Response:
    return await http.post(
        f"{emulators.hms_url}/v1/{app_id}/messages:send",
        headers={"authorization": f"Bearer {bearer}"},
        json=body,
    )


def message(*tokens: str, **extra: Any) -> dict[str, Any]:
    return {
        "validate_only": False,
        "message": {
            "token": list(tokens),
            "android": {
                "notification": {"title": "Hi", "body": "there", "click_action": {"type": 3}}
            },
            **extra,
        },
    }


async def test_the_token_endpoint_issues_an_hour_long_bearer_token(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    response = await http.post(
        emulators.hms_token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        },
    )

    assert response.status_code == 200
    assert response.json()["expires_in"] == 3600
    assert response.json()["token_type"] == "Bearer"


async def test_a_wrong_client_secret_gets_no_token(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    response = await http.post(
        emulators.hms_token_url,
        data={"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": "x"},
    )

    assert response.status_code == 400
    assert "access_token" not in response.json()


async def test_a_send_to_valid_tokens_succeeds_with_one_delivery_per_token(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    bearer = await token_for(http, emulators, app)
    body = message("h1", "h2", data='{"k": "v"}')

    response = await send(http, emulators, app.app_id, bearer, body)

    assert response.status_code == 200
    assert response.json()["code"] == "80000000"
    assert response.json()["msg"] == "Success"
    assert response.json()["requestId"]
    deliveries = emulators.state.deliveries(platform="huawei")
    assert [d.token for d in deliveries] == ["h1", "h2"]
    assert all(d.payload == body for d in deliveries)


async def test_an_unknown_access_token_is_an_authentication_error(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    response = await send(http, emulators, app.app_id, "CVmade-up", message("h1"))

    assert response.status_code == 401
    assert response.json()["code"] == "80200001"


async def test_an_expired_access_token_is_reported_as_expired(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential, clock: Clock
) -> None:
    bearer = await token_for(http, emulators, app)
    clock.advance(3601)

    response = await send(http, emulators, app.app_id, bearer, message("h1"))

    assert response.status_code == 401
    assert response.json()["code"] == "80200003"


async def test_a_token_of_another_app_has_no_permission(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    bearer = await token_for(http, emulators, app)

    response = await send(http, emulators, "999", bearer, message("h1"))

    assert response.json()["code"] == "80300002"


async def test_a_single_invalid_token_is_all_tokens_invalid(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    bearer = await token_for(http, emulators, app)
    emulators.state.set_token_outcome("huawei", "dead", "invalid")

    response = await send(http, emulators, app.app_id, bearer, message("dead"))

    assert response.json()["code"] == "80300007"
    assert emulators.state.deliveries() == []


async def test_invalid_tokens_among_several_are_a_partial_success_listing_them(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    bearer = await token_for(http, emulators, app)
    emulators.state.set_token_outcome("huawei", "dead", "invalid")

    response = await send(http, emulators, app.app_id, bearer, message("live", "dead", "alive"))

    assert response.status_code == 200
    assert response.json()["code"] == "80100000"
    summary = json.loads(response.json()["msg"])
    assert summary == {"success": 2, "failure": 1, "illegal_tokens": ["dead"]}
    assert [d.token for d in emulators.state.deliveries()] == ["live", "alive"]


async def test_a_message_over_4096_bytes_is_too_large(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    bearer = await token_for(http, emulators, app)

    response = await send(http, emulators, app.app_id, bearer, message("h1", data="x" * 4100))

    assert response.json()["code"] == "80300008"


@pytest.mark.parametrize(("count", "code"), [(1000, "80000000"), (1001, "80300010")])
async def test_one_request_takes_at_most_1000_tokens(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential, count: int, code: str
) -> None:
    bearer = await token_for(http, emulators, app)
    tokens = [f"token-{i}" for i in range(count)]

    response = await send(http, emulators, app.app_id, bearer, message(*tokens))

    assert response.json()["code"] == code


async def test_a_request_without_tokens_is_a_parameter_error(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    bearer = await token_for(http, emulators, app)

    response = await send(http, emulators, app.app_id, bearer, message())

    assert response.json()["code"] == "80100001"


async def test_flow_control_is_http_503_with_retry_after(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    bearer = await token_for(http, emulators, app)
    emulators.state.set_fault(Fault("huawei", 503, 1.0, retry_after=0.5))

    response = await send(http, emulators, app.app_id, bearer, message("h1"))

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert emulators.state.deliveries() == []
