"""The HMS Push Kit emulator on the wire: token endpoint, send, result codes (httpx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pushgate.emulators import Emulators, Fault, HmsCredential
from pushgate.emulators.server import H2_PREFACE
from tests.support.emulator_clock import Clock


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


# ---- the message fields Huawei checks ----


def android_message(token: str, **android: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"notification": {"title": "Hi", "click_action": {"type": 3}}}
    config.update(android)
    return {"validate_only": False, "message": {"token": [token], "android": config}}


@pytest.mark.parametrize(
    ("ttl", "code"),
    [
        ("1296000s", "80000000"),  # 15 days, Huawei's longest
        ("86400", "80000000"),  # the `s` is optional
        ("3600.5s", "80000000"),
        ("1296001s", "80100001"),
        ("1296000.5s", "80100001"),
        ("2419200s", "80100001"),  # FCM's 28 days
        ("1h", "80100001"),
        (3600, "80100001"),
    ],
)
async def test_a_ttl_longer_than_15_days_is_a_parameter_error(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential, ttl: Any, code: str
) -> None:
    bearer = await token_for(http, emulators, app)

    response = await send(http, emulators, app.app_id, bearer, android_message("h1", ttl=ttl))

    assert response.json()["code"] == code
    if code != "80000000":
        assert response.status_code == 400
        assert "message.android.ttl" in response.json()["msg"]
        assert emulators.state.deliveries() == []


@pytest.mark.parametrize("category", ["IM", "VOIP", "EXPRESS", "DEVICE_REMINDER", "MARKETING"])
async def test_huaweis_categories_and_importances_are_accepted(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential, category: str
) -> None:
    bearer = await token_for(http, emulators, app)
    body = android_message("h1", category=category)
    body["message"]["android"]["notification"]["importance"] = "LOW"

    response = await send(http, emulators, app.app_id, bearer, body)

    assert response.json()["code"] == "80000000"
    (delivery,) = emulators.state.deliveries()
    assert delivery.payload["message"]["android"]["category"] == category


@pytest.mark.parametrize(
    ("android", "field"),
    [
        ({"category": "PROMOTION"}, "message.android.category"),
        ({"category": "im"}, "message.android.category"),
        ({"urgency": "URGENT"}, "message.android.urgency"),
        ({"collapse_key": 101}, "message.android.collapse_key"),
        ({"fast_app_target": 3}, "message.android.fast_app_target"),
        (
            {"notification": {"importance": "HIGH", "click_action": {"type": 3}}},
            "message.android.notification.importance",
        ),
        ({"notification": {"title": "Hi"}}, "message.android.notification.click_action"),
        (
            {"notification": {"click_action": {"type": 5}}},
            "message.android.notification.click_action.type",
        ),
        (
            {"notification": {"click_action": {"type": 2}}},
            "message.android.notification.click_action.url",
        ),
        (
            {"notification": {"click_action": {"type": 3}, "color": "red"}},
            "message.android.notification.color",
        ),
        (
            {"notification": {"click_action": {"type": 3}, "channel_id": 7}},
            "message.android.notification.channel_id",
        ),
    ],
)
async def test_a_field_outside_huaweis_values_is_a_parameter_error_naming_it(
    http: httpx.AsyncClient,
    emulators: Emulators,
    app: HmsCredential,
    android: dict[str, Any],
    field: str,
) -> None:
    bearer = await token_for(http, emulators, app)

    response = await send(http, emulators, app.app_id, bearer, android_message("h1", **android))

    assert (response.status_code, response.json()["code"]) == (400, "80100001")
    assert response.json()["msg"].endswith(f": {field}")
    assert emulators.state.deliveries() == []


@pytest.mark.parametrize(
    "message_fields",
    [{"android": "HIGH"}, {"android": {"notification": []}}, {"notification": "Hi"}],
)
async def test_an_object_that_is_not_an_object_is_a_bad_structure(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential, message_fields: Any
) -> None:
    bearer = await token_for(http, emulators, app)
    body = {"validate_only": False, "message": {"token": ["h1"], **message_fields}}

    response = await send(http, emulators, app.app_id, bearer, body)

    assert response.json()["code"] == "80100003"


async def test_fields_huawei_does_not_document_are_let_through(
    http: httpx.AsyncClient, emulators: Emulators, app: HmsCredential
) -> None:
    bearer = await token_for(http, emulators, app)

    response = await send(
        http, emulators, app.app_id, bearer, android_message("h1", receipt_id="RCP1")
    )

    assert response.json()["code"] == "80000000"


# ---- HTTP/2 where the client offers it, and the HTTP/1.1-only mode ----


@pytest.fixture
async def http11_emulators(tmp_path: Path) -> AsyncIterator[Emulators]:
    running = Emulators(ca_dir=tmp_path / "ca", hms_http2=False)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def negotiate(emulators: Emulators, offered: list[str]) -> tuple[str | None, bytes]:
    """The protocol the HMS server selects when a client offers `offered` by ALPN, and its
    first answer to the HTTP/2 client preface."""
    port = int(emulators.hms_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=emulators.ca.client_context(alpn=offered)
    )
    try:
        chosen = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        writer.write(H2_PREFACE)
        await writer.drain()
        answer = await reader.read(65536)
    finally:
        writer.transport.abort()
    return chosen, answer


async def test_the_server_selects_h2_for_a_client_that_offers_it(
    emulators: Emulators, app: HmsCredential
) -> None:
    async with httpx.AsyncClient(verify=emulators.ca.client_context(), http2=True) as client:
        bearer = await token_for(client, emulators, app)
        response = await send(client, emulators, app.app_id, bearer, message("h1"))

    assert response.http_version == "HTTP/2"
    assert response.json()["code"] == "80000000"
    assert [d.http_version for d in emulators.state.deliveries()] == ["2"]


async def test_the_http11_only_server_selects_http11_and_delivers(
    http11_emulators: Emulators,
) -> None:
    emulators = http11_emulators
    app = emulators.generate_hms_credential()
    async with httpx.AsyncClient(verify=emulators.ca.client_context(), http2=True) as client:
        bearer = await token_for(client, emulators, app)
        response = await send(client, emulators, app.app_id, bearer, message("h1"))

    assert response.http_version == "HTTP/1.1"
    assert response.json()["code"] == "80000000"
    assert [d.http_version for d in emulators.state.deliveries()] == ["1.1"]


async def test_the_http11_only_server_offers_only_http11_and_refuses_the_http2_preface(
    http11_emulators: Emulators,
) -> None:
    chosen, _ = await negotiate(http11_emulators, ["h2", "http/1.1"])
    assert chosen == "http/1.1"

    # A client that offers only h2 gets no protocol, then its preface is refused.
    chosen, answer = await negotiate(http11_emulators, ["h2"])
    assert chosen is None
    assert answer.startswith(b"HTTP/1.1 505 ")
    assert http11_emulators.state.deliveries() == []


async def test_the_default_server_takes_the_http2_preface_after_offering_h2(
    emulators: Emulators,
) -> None:
    chosen, answer = await negotiate(emulators, ["h2", "http/1.1"])

    assert chosen == "h2"
    assert not answer.startswith(b"HTTP/1.1")  # HTTP/2 frames: the server's SETTINGS
