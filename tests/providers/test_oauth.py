"""Token sources against a local HTTP/1.1 token endpoint (real sockets, httpx client)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest

from pushgate.providers import fcm
from pushgate.providers.oauth import (
    FcmTokenSource,
    HmsTokenSource,
    TokenFetchError,
    token_http_client,
)
from tests.support.provider_keys import KeyPair, service_account_info
from tests.support.provider_servers import HttpRequest, HttpTestServer


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def google_token_endpoint(rsa_key: KeyPair) -> Any:
    issued = 0

    async def handler(request: HttpRequest) -> tuple[int, bytes]:
        nonlocal issued
        form = parse_qs(request.body.decode())
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        claims = jwt.decode(
            form["assertion"][0],
            rsa_key.public_key,
            algorithms=["RS256"],
            audience="https://oauth2.googleapis.com/token",
            options={"verify_iat": False},
        )
        assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
        await asyncio.sleep(0.01)  # slow enough for concurrent callers to pile up
        issued += 1
        body = {"access_token": f"ya29.{issued}", "expires_in": 3599, "token_type": "Bearer"}
        return 200, json.dumps(body).encode()

    return handler


async def test_concurrent_callers_share_one_fetch_and_the_token_is_reused(rsa_key: KeyPair) -> None:
    clock = Clock()
    async with HttpTestServer(google_token_endpoint(rsa_key)) as server:
        account = fcm.ServiceAccount.parse(service_account_info(rsa_key, server.url + "/token"))
        async with token_http_client() as http:
            source = FcmTokenSource(account, http, clock=clock)
            tokens = await asyncio.gather(*(source.get() for _ in range(20)))
            assert set(tokens) == {"ya29.1"}
            clock.now += 3599 - 301
            assert await source.get() == "ya29.1"
            assert source.fetches == 1
    assert [r.target for r in server.requests] == ["/token"]


async def test_a_token_is_fetched_again_five_minutes_before_expiry_or_after_invalidation(
    rsa_key: KeyPair,
) -> None:
    clock = Clock()
    async with HttpTestServer(google_token_endpoint(rsa_key)) as server:
        account = fcm.ServiceAccount.parse(service_account_info(rsa_key, server.url + "/token"))
        async with token_http_client() as http:
            source = FcmTokenSource(account, http, clock=clock)
            assert await source.get() == "ya29.1"
            clock.now += 3599 - 300
            assert await source.get() == "ya29.2"
            source.invalidate("ya29.1")  # stale: the current token stays
            assert await source.get() == "ya29.2"
            source.invalidate("ya29.2")
            assert await source.get() == "ya29.3"
    assert len(server.requests) == 3


async def test_hms_tokens_use_the_client_credentials_grant() -> None:
    seen: list[dict[str, list[str]]] = []

    async def handler(request: HttpRequest) -> tuple[int, bytes]:
        seen.append(parse_qs(request.body.decode()))
        return 200, b'{"access_token":"CF1","expires_in":3600,"token_type":"Bearer"}'

    async with HttpTestServer(handler) as server, token_http_client() as http:
        source = HmsTokenSource(
            "104000001", "s3cret", http, token_url=server.url + "/oauth2/v3/token"
        )
        assert await source.get() == "CF1"
    assert seen == [
        {
            "grant_type": ["client_credentials"],
            "client_id": ["104000001"],
            "client_secret": ["s3cret"],
        }
    ]


@pytest.mark.parametrize(
    ("status", "body", "permanent"),
    [
        (400, b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}', False),
        (
            401,
            b'{"error":"invalid_client","error_description":"The OAuth client was not found."}',
            True,
        ),
        (401, b'{"error":1101,"sub_error":20058,"error_description":"invalid secret"}', True),
        (503, b"busy", False),
        (200, b'{"token_type":"Bearer"}', False),
    ],
)
async def test_token_endpoint_failures_say_whether_the_credential_was_refused(
    status: int, body: bytes, permanent: bool
) -> None:
    async def handler(request: HttpRequest) -> tuple[int, bytes]:
        return status, body

    async with HttpTestServer(handler) as server, token_http_client() as http:
        source = HmsTokenSource("1", "s", http, token_url=server.url)
        with pytest.raises(TokenFetchError) as caught:
            await source.get()
    assert caught.value.permanent is permanent
    if status in (400, 401):
        assert "invalid" in str(caught.value)


async def test_invalid_grant_is_retried_for_five_minutes_before_it_stands() -> None:
    # Google answers invalid_grant for a clock skew or a key not yet propagated too.
    answers = [
        (400, b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'),
        (400, b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'),
        (200, b'{"access_token":"T1","expires_in":3600,"token_type":"Bearer"}'),
        (400, b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'),
        (400, b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'),
        (400, b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'),
    ]

    async def handler(request: HttpRequest) -> tuple[int, bytes]:
        return answers.pop(0)

    now = [1000.0]
    async with HttpTestServer(handler) as server, token_http_client() as http:
        source = HmsTokenSource("1", "s", http, token_url=server.url, clock=lambda: now[0])
        permanence = []
        for at in (1000.0, 1299.0):
            now[0] = at
            with pytest.raises(TokenFetchError) as caught:
                await source.get()
            permanence.append(caught.value.permanent)
        now[0] = 1302.0  # a token in between starts the five minutes over
        assert await source.get() == "T1"
        source.invalidate("T1")
        for at in (1310.0, 1609.0, 1611.0):
            now[0] = at
            with pytest.raises(TokenFetchError) as caught:
                await source.get()
            permanence.append(caught.value.permanent)
    assert permanence == [False, False, False, False, True]


async def test_a_failed_fetch_answers_the_sends_waiting_on_it() -> None:
    calls = []

    async def handler(request: HttpRequest) -> tuple[int, bytes]:
        calls.append(1)
        return 503, b"busy"

    async with HttpTestServer(handler) as server, token_http_client() as http:
        source = HmsTokenSource("1", "s", http, token_url=server.url)
        results = await asyncio.gather(*(source.get() for _ in range(50)), return_exceptions=True)
    assert all(isinstance(r, TokenFetchError) for r in results)
    assert len(calls) == 1


async def test_an_unreachable_token_endpoint_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with token_http_client(timeout=2) as http:
        source = HmsTokenSource("1", "s", http, token_url=f"http://127.0.0.1:{port}/token")
        with pytest.raises(TokenFetchError) as caught:
            await source.get()
    assert caught.value.permanent is False
