"""Senders end to end against local provider servers (h2 for pushes, HTTP/1.1 for tokens)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushgate.config import Settings
from pushgate.providers import hms
from pushgate.providers.apns import ApnsTokenSigner
from pushgate.providers.senders import ApnsSender, Endpoints, FcmSender, HmsSender
from tests.support.provider_keys import KeyPair, service_account_info
from tests.support.provider_servers import (
    H2TestServer,
    HttpRequest,
    HttpTestServer,
    Reply,
    Request,
    Tls,
    eventually,
)

APNS_TOKEN = "ab" * 32
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- APNs


@dataclass
class FakeApns:
    key: KeyPair
    outcomes: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    seen: list[tuple[Request, dict[str, Any]]] = field(default_factory=list)
    expired_before: int = 0  # provider tokens issued before this get ExpiredProviderToken

    async def __call__(self, request: Request) -> Reply:
        bearer = request.headers["authorization"].removeprefix("bearer ")
        claims = jwt.decode(
            bearer, self.key.public_key, algorithms=["ES256"], options={"verify_iat": False}
        )
        self.seen.append((request, claims))
        token = request.path.removeprefix("/3/device/")
        echo = [("apns-id", request.headers.get("apns-id") or str(uuid.uuid4()))]
        if claims["iat"] < self.expired_before:
            return Reply(403, b'{"reason":"ExpiredProviderToken"}', echo)
        status, error = self.outcomes.get(token, (200, {}))
        return Reply(status, json.dumps(error).encode() if error else b"", echo)


@pytest.fixture
async def apns_server(apns_key: KeyPair) -> AsyncIterator[tuple[H2TestServer, FakeApns]]:
    fake = FakeApns(apns_key)
    async with H2TestServer(fake, initial_max_streams=1) as server:
        yield server, fake


def apns_sender(key: KeyPair, url: str, clock: Clock | None = None, **options: Any) -> ApnsSender:
    signer = ApnsTokenSigner(key.private_pem, "ABC123DEFG", "DEF123GHIJ")
    return ApnsSender(
        signer,
        "com.example.app",
        production_url=url,
        sandbox_url=url,
        clock=clock or Clock(),
        **options,
    )


async def test_apns_sender_sends_the_payload_with_its_headers_and_a_valid_token(
    apns_key: KeyPair, apns_server: tuple[H2TestServer, FakeApns]
) -> None:
    server, fake = apns_server
    sender = apns_sender(apns_key, server.url)
    try:
        verdict = await sender.send(
            APNS_TOKEN,
            b'{"aps":{"content-available":1}}',
            push_type="background",
            priority=5,
            expiration=1_800_000_600,
        )
    finally:
        await sender.aclose()
    assert (verdict.kind, verdict.status) == ("ok", 200)
    [(request, claims)] = fake.seen
    assert request.path == f"/3/device/{APNS_TOKEN}"
    assert request.body == b'{"aps":{"content-available":1}}'
    headers = request.headers
    assert headers["apns-topic"] == "com.example.app"
    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"
    assert headers["apns-expiration"] == "1800000600"
    # No apns-id of ours (the headers are a campaign's, not a push's): APNs makes one.
    assert "apns-id" not in headers
    assert claims == {"iss": "DEF123GHIJ", "iat": int(T0)}


async def test_apns_sender_reports_a_dead_token_with_its_timestamp(
    apns_key: KeyPair, apns_server: tuple[H2TestServer, FakeApns]
) -> None:
    server, fake = apns_server
    fake.outcomes[APNS_TOKEN] = (410, {"reason": "Unregistered", "timestamp": 1_700_000_000_000})
    sender = apns_sender(apns_key, server.url)
    try:
        verdict = await sender.send(APNS_TOKEN, b'{"aps":{}}')
    finally:
        await sender.aclose()
    assert (verdict.kind, verdict.reason, verdict.timestamp_ms) == (
        "dead_token",
        "Unregistered",
        1_700_000_000_000,
    )


async def test_apns_sender_uses_the_sandbox_host_for_sandbox_devices(apns_key: KeyPair) -> None:
    production, sandbox = FakeApns(apns_key), FakeApns(apns_key)
    async with H2TestServer(production) as prod_server, H2TestServer(sandbox) as sandbox_server:
        sender = ApnsSender(
            ApnsTokenSigner(apns_key.private_pem, "ABC123DEFG", "DEF123GHIJ"),
            "com.example.app",
            production_url=prod_server.url,
            sandbox_url=sandbox_server.url,
        )
        try:
            assert (await sender.send(APNS_TOKEN, b"{}", sandbox=True)).ok
            assert (await sender.send(APNS_TOKEN, b"{}")).ok
            assert (await sender.send(APNS_TOKEN, b"{}", sandbox=True)).ok
        finally:
            await sender.aclose()
    assert (len(production.seen), len(sandbox.seen)) == (1, 2)


async def test_bad_device_token_is_tried_once_on_the_other_environment(apns_key: KeyPair) -> None:
    production, sandbox = FakeApns(apns_key), FakeApns(apns_key)
    other = "cd" * 32
    dead = "ef" * 32
    production.outcomes[APNS_TOKEN] = (400, {"reason": "BadDeviceToken"})
    sandbox.outcomes[other] = (400, {"reason": "BadDeviceToken"})
    for fake in (production, sandbox):
        fake.outcomes[dead] = (400, {"reason": "BadDeviceToken"})
    async with H2TestServer(production) as prod_server, H2TestServer(sandbox) as sandbox_server:
        sender = ApnsSender(
            ApnsTokenSigner(apns_key.private_pem, "ABC123DEFG", "DEF123GHIJ"),
            "com.example.app",
            production_url=prod_server.url,
            sandbox_url=sandbox_server.url,
        )
        try:
            to_sandbox = await sender.send(APNS_TOKEN, b"{}")
            to_production = await sender.send(other, b"{}", sandbox=True)
            refused = await sender.send(dead, b"{}")
        finally:
            await sender.aclose()
    assert (to_sandbox.kind, to_sandbox.environment) == ("ok", "sandbox")
    assert (to_production.kind, to_production.environment) == ("ok", "production")
    assert (refused.kind, refused.reason, refused.environment) == (
        "dead_token",
        "BadDeviceToken",
        None,
    )
    assert "both environments" in refused.detail
    assert (len(production.seen), len(sandbox.seen)) == (3, 3)


async def test_an_expired_provider_token_is_renewed_only_once_20_minutes_old(
    apns_key: KeyPair, apns_server: tuple[H2TestServer, FakeApns]
) -> None:
    server, fake = apns_server
    fake.outcomes[APNS_TOKEN] = (403, {"reason": "ExpiredProviderToken"})
    clock = Clock()
    sender = apns_sender(apns_key, server.url, clock)
    try:
        early = await sender.send(APNS_TOKEN, b"{}")
        clock.now += 21 * 60
        later = await sender.send(APNS_TOKEN, b"{}")
        del fake.outcomes[APNS_TOKEN]
        clock.now += 60
        after = await sender.send(APNS_TOKEN, b"{}")
    finally:
        await sender.aclose()
    # Under 20 minutes old: no new token can be had yet, so the push waits for one.
    assert early.kind == "retry" and "kept" in early.detail
    assert early.retry_after == 20 * 60  # when a new token may be signed
    # A fresh token refused too: now the credential is invalid.
    assert (later.kind, later.reason) == ("credential", "ExpiredProviderToken")
    assert after.ok
    issued = [claims["iat"] for _, claims in fake.seen]
    assert issued == [int(T0), int(T0), int(T0) + 21 * 60, int(T0) + 21 * 60]


async def test_an_expired_provider_token_is_renewed_and_the_push_sent_at_once(
    apns_key: KeyPair, apns_server: tuple[H2TestServer, FakeApns]
) -> None:
    server, fake = apns_server
    clock = Clock()
    sender = apns_sender(apns_key, server.url, clock)
    try:
        assert (await sender.send(APNS_TOKEN, b"{}")).ok
        clock.now += 21 * 60
        fake.expired_before = int(T0) + 1  # APNs's clock says the first token is too old
        verdict = await sender.send(APNS_TOKEN, b"{}")
    finally:
        await sender.aclose()
    assert verdict.ok
    assert [claims["iat"] for _, claims in fake.seen] == [int(T0), int(T0), int(T0) + 21 * 60]


async def test_apns_sender_refuses_a_malformed_token_without_sending(
    apns_key: KeyPair, apns_server: tuple[H2TestServer, FakeApns]
) -> None:
    server, fake = apns_server
    sender = apns_sender(apns_key, server.url)
    try:
        verdict = await sender.send("not-hex", b"{}")
    finally:
        await sender.aclose()
    assert (verdict.kind, verdict.reason, verdict.status) == ("dead_token", "BadDeviceToken", 0)
    assert fake.seen == [] and server.accepted == 0


async def test_an_unreachable_provider_is_a_retry_verdict(apns_key: KeyPair) -> None:
    sender = apns_sender(apns_key, f"http://127.0.0.1:{closed_port()}")
    try:
        verdict = await sender.send(APNS_TOKEN, b"{}")
    finally:
        await sender.aclose()
    assert (verdict.kind, verdict.reason) == ("retry", "ConnectError")


async def test_apns_sender_builds_from_the_uploaded_credential(
    apns_key: KeyPair, apns_server: tuple[H2TestServer, FakeApns]
) -> None:
    server, fake = apns_server
    sender = ApnsSender.from_credential(
        {
            "key_id": "ABC123DEFG",
            "team_id": "DEF123GHIJ",
            "bundle_id": "com.example.app",
            "private_key": apns_key.private_pem,
        },
        endpoints=Endpoints(apns_url=server.url),
    )
    try:
        assert (await sender.send(APNS_TOKEN, b"{}")).ok
    finally:
        await sender.aclose()
    assert fake.seen[0][0].headers["apns-topic"] == "com.example.app"


# --------------------------------------------------------------------------- FCM / HMS


@dataclass
class TokenEndpoint:
    refuse: bool = False
    issued: int = 0
    refuse_status: int = 400
    refuse_with: bytes = b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'

    async def __call__(self, request: HttpRequest) -> tuple[int, bytes]:
        if self.refuse:
            return self.refuse_status, self.refuse_with
        self.issued += 1
        body = {"access_token": f"tok-{self.issued}", "expires_in": 3600, "token_type": "Bearer"}
        return 200, json.dumps(body).encode()


@dataclass
class FakeProvider:
    """Answers by the bearer token and the device token; records what it got."""

    rejected_bearers: set[str] = field(default_factory=set)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    auth_failure: tuple[int, dict[str, Any]] = (401, {})
    seen: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, request: Request) -> Reply:
        body = json.loads(request.body)
        bearer = request.headers["authorization"]
        self.seen.append((request.path, bearer, body))
        if bearer in self.rejected_bearers:
            status, answer = self.auth_failure
            return Reply(status, json.dumps(answer).encode())
        token = body["message"]["token"]
        key = token[0] if isinstance(token, list) else token
        status, answer = self.answers.get(key, (200, {"name": "projects/p/messages/1"}))
        return Reply(status, json.dumps(answer).encode())


FCM_UNAUTHENTICATED = (
    401,
    {
        "error": {
            "code": 401,
            "message": "Request had invalid credentials.",
            "status": "UNAUTHENTICATED",
        }
    },
)


def fcm_error(code: str, http: int, status: str) -> tuple[int, dict[str, Any]]:
    detail = {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
    return http, {"error": {"code": http, "message": "m", "status": status, "details": [detail]}}


@pytest.fixture
async def fcm_env(
    rsa_key: KeyPair,
) -> AsyncIterator[tuple[FcmSender, FakeProvider, TokenEndpoint]]:
    tokens, provider = TokenEndpoint(), FakeProvider(auth_failure=FCM_UNAUTHENTICATED)
    async with HttpTestServer(tokens) as token_server, H2TestServer(provider) as server:
        sender = FcmSender.from_credential(
            json.dumps(service_account_info(rsa_key, token_server.url + "/token")),
            endpoints=Endpoints(fcm_url=server.url),
        )
        try:
            yield sender, provider, tokens
        finally:
            await sender.aclose()


FCM_BODY = json.dumps(
    {
        "message": {"data": {"camp_id": "7"}, "android": {"priority": "HIGH", "ttl": "2419200s"}},
        "validate_only": False,
    }
).encode()


async def test_fcm_sender_sends_one_message_per_token_with_a_bearer_token(
    fcm_env: tuple[FcmSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, tokens = fcm_env
    verdict = await sender.send("fcm-token-1", FCM_BODY, ttl=120)
    assert (verdict.kind, verdict.status) == ("ok", 200)
    [(path, bearer, body)] = provider.seen
    assert path == "/v1/projects/demo-project/messages:send"
    assert bearer == "Bearer tok-1"
    assert body == {
        "message": {
            "data": {"camp_id": "7"},
            "android": {"priority": "HIGH", "ttl": "120s"},
            "token": "fcm-token-1",
        },
        "validate_only": False,
    }
    assert (await sender.send("fcm-token-2", FCM_BODY)).ok
    assert tokens.issued == 1, "the access token is reused"


async def test_fcm_sender_maps_unregistered_to_a_dead_token(
    fcm_env: tuple[FcmSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, _ = fcm_env
    provider.answers["gone"] = fcm_error("UNREGISTERED", 404, "NOT_FOUND")
    verdict = await sender.send("gone", FCM_BODY)
    assert (verdict.kind, verdict.reason) == ("dead_token", "NotRegistered")


async def test_fcm_sender_renews_a_refused_access_token_once_and_retries(
    fcm_env: tuple[FcmSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, tokens = fcm_env
    provider.rejected_bearers.add("Bearer tok-1")
    verdict = await sender.send("t", FCM_BODY)
    assert verdict.ok
    assert [bearer for _, bearer, _ in provider.seen] == ["Bearer tok-1", "Bearer tok-2"]
    assert tokens.issued == 2


async def test_fcm_sender_reports_a_credential_problem_when_renewing_does_not_help(
    fcm_env: tuple[FcmSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, _ = fcm_env
    provider.rejected_bearers.update({"Bearer tok-1", "Bearer tok-2"})
    verdict = await sender.send("t", FCM_BODY)
    assert (verdict.kind, verdict.status) == ("credential", 401)
    assert len(provider.seen) == 2


async def test_quota_exceeded_pauses_the_whole_credential_for_a_minute(
    fcm_env: tuple[FcmSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, _ = fcm_env
    clock = Clock()
    sender.clock = clock
    quota = {
        "error": {
            "code": 429,
            "message": "Quota exceeded for quota metric 'Send requests'.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "QUOTA_EXCEEDED",
                }
            ],
        }
    }
    provider.answers["q"] = (429, quota)
    refused = await sender.send("q", FCM_BODY)
    clock.now += 30
    waiting = await sender.send("a", FCM_BODY)  # another device, same credential
    sent_while_paused = len(provider.seen)
    clock.now += 31
    after = await sender.send("a", FCM_BODY)
    assert (refused.kind, refused.reason, refused.retry_after) == ("retry", "QUOTA_EXCEEDED", 60)
    assert (waiting.kind, waiting.reason, waiting.retry_after) == ("retry", "QUOTA_EXCEEDED", 30)
    assert sent_while_paused == 1
    assert after.ok and len(provider.seen) == 2


async def test_a_refused_service_account_is_a_credential_verdict_without_sending(
    fcm_env: tuple[FcmSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, tokens = fcm_env
    tokens.refuse = True
    verdict = await sender.send("t", FCM_BODY)
    # invalid_grant may be a clock skew or a key not yet propagated: retried for 5 minutes.
    assert (verdict.kind, verdict.reason) == ("retry", "AccessTokenUnavailable")
    tokens.refuse_with = b'{"error":"invalid_client","error_description":"no such client"}'
    tokens.refuse_status = 401
    sender.tokens.invalidate()
    verdict = await sender.send("t", FCM_BODY)
    assert (verdict.kind, verdict.reason) == ("credential", "AccessTokenRefused")
    assert provider.seen == []


async def test_fcm_sender_over_tls_uses_one_ca_for_the_token_endpoint_and_fcm(
    rsa_key: KeyPair,
) -> None:
    tls = Tls()
    tokens, provider = TokenEndpoint(), FakeProvider()
    async with (
        HttpTestServer(tokens, tls=tls) as token_server,
        H2TestServer(provider, tls=tls) as server,
    ):
        sender = FcmSender.from_credential(
            service_account_info(rsa_key, token_server.url + "/token"),
            endpoints=Endpoints(fcm_url=server.url),
            ssl_context=tls.client_context(),
        )
        try:
            assert (await sender.send("a", FCM_BODY)).ok
            sender.tokens.invalidate()  # the token endpoint again, then FCM again
            assert (await sender.send("b", FCM_BODY)).ok
        finally:
            await sender.aclose()
    assert tokens.issued == 2
    assert server.alpn == ["h2"]


HMS_BODY = json.dumps(
    {
        "validate_only": False,
        "message": {"data": "{}", "android": {"urgency": "HIGH", "ttl": "86400s"}},
    }
).encode()


@pytest.fixture
async def hms_env() -> AsyncIterator[tuple[HmsSender, FakeProvider, TokenEndpoint]]:
    expired = {"code": hms.TOKEN_EXPIRED, "msg": "oauth token expired"}
    tokens, provider = TokenEndpoint(), FakeProvider(auth_failure=(401, expired))
    async with HttpTestServer(tokens) as token_server, H2TestServer(provider) as server:
        sender = HmsSender.from_credential(
            {"app_id": "104000001", "client_id": "104000001", "client_secret": "s"},
            endpoints=Endpoints(hms_url=server.url, hms_token_url=token_server.url + "/token"),
        )
        try:
            yield sender, provider, tokens
        finally:
            await sender.aclose()


def hms_ok() -> tuple[int, dict[str, Any]]:
    return 200, {"code": "80000000", "msg": "Success", "requestId": "r"}


async def test_hms_sender_sends_the_token_as_a_one_element_list(
    hms_env: tuple[HmsSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, _ = hms_env
    provider.answers["h1"] = hms_ok()
    verdict = await sender.send("h1", HMS_BODY, ttl=60)
    assert verdict.ok
    [(path, bearer, body)] = provider.seen
    assert path == "/v1/104000001/messages:send"
    assert bearer == "Bearer tok-1"
    assert body["message"]["token"] == ["h1"]
    assert body["message"]["android"] == {"urgency": "HIGH", "ttl": "60s"}
    assert body["validate_only"] is False


async def test_hms_sender_renews_an_expired_access_token_and_retries(
    hms_env: tuple[HmsSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, tokens = hms_env
    provider.answers["h1"] = hms_ok()
    provider.rejected_bearers.add("Bearer tok-1")
    assert (await sender.send("h1", HMS_BODY)).ok
    assert tokens.issued == 2


async def test_hms_sender_maps_an_illegal_token_to_not_registered(
    hms_env: tuple[HmsSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, _ = hms_env
    msg = json.dumps({"success": 0, "failure": 1, "illegal_tokens": ["h2"]})
    provider.answers["h2"] = (200, {"code": "80100000", "msg": msg, "requestId": "r"})
    verdict = await sender.send("h2", HMS_BODY)
    assert (verdict.kind, verdict.reason) == ("dead_token", "NotRegistered")


async def test_a_payload_without_a_message_is_rejected_locally(
    hms_env: tuple[HmsSender, FakeProvider, TokenEndpoint],
) -> None:
    sender, provider, _ = hms_env
    assert (await sender.send("h1", b"[]")).kind == "rejected"
    assert (await sender.send("", HMS_BODY)).kind == "dead_token"
    assert provider.seen == []


def test_endpoints_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHGATE_APNS_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("PUSHGATE_HMS_TOKEN_URL", "http://127.0.0.1:2/token")
    endpoints = Endpoints(**Settings.load().provider_urls())
    assert endpoints.apns_url == "http://127.0.0.1:1"
    assert endpoints.hms_token_url == "http://127.0.0.1:2/token"
    assert endpoints.apns_sandbox_url == "https://api.sandbox.push.apple.com"
    assert endpoints.fcm_url == "https://fcm.googleapis.com"


# ---- FCM and HMS bodies built once per payload (senders._BodyTemplates)


@pytest.fixture
def fcm_sender(rsa_key: KeyPair) -> FcmSender:
    """A sender that never sends: its bodies are what is looked at (no token fetcher)."""
    return FcmSender.from_credential(
        json.dumps(service_account_info(rsa_key, "http://127.0.0.1:9/token")),
        token_source=object(),
    )


FCM_PAYLOADS = [
    FCM_BODY,
    json.dumps({"message": {"notification": {"title": 'quote " and \\ and \u00e9'}}}).encode(),
    json.dumps({"data": {"k": "v"}}).encode(),  # the bare message
    json.dumps({"message": {"android": {"ttl": "5s", "priority": "NORMAL"}}}).encode(),
    json.dumps({"message": {"data": {"x": "\x00pushgate-token\x00"}}}).encode(),  # a stand-in
]
HMS_PAYLOADS = [
    json.dumps(
        {
            "validate_only": False,
            "message": {
                "android": {
                    "notification": {"title": "t", "body": "b", "click_action": {"type": 3}}
                },
                "data": '{"camp_id": "1"}',
            },
        }
    ).encode(),
    json.dumps({"message": {"android": {"ttl": "9999999s", "category": "MARKETING"}}}).encode(),
    json.dumps({"message": {"android": "not an object"}}).encode(),  # no ttl slot: built in full
    json.dumps({"message": {"data": "\x00pushgate-ttl\x00"}}).encode(),  # a stand-in
]


@pytest.mark.parametrize("platform", ["android", "huawei"])
def test_a_templated_body_is_the_body_built_in_full(fcm_sender: FcmSender, platform: str) -> None:
    sender: FcmSender | HmsSender = fcm_sender
    payloads = FCM_PAYLOADS
    if platform == "huawei":
        sender = HmsSender.from_credential(
            {"app_id": "104000001", "client_id": "104000001", "client_secret": "s" * 64},
            token_source=object(),
        )
        payloads = HMS_PAYLOADS

    @settings(max_examples=300, deadline=None)
    @given(
        index=st.integers(0, len(payloads) - 1),
        token=st.text(min_size=1, max_size=40),
        ttl=st.none() | st.integers(0, 10**8),
    )
    def same_body(index: int, token: str, ttl: int | None) -> None:
        payload = payloads[index]
        ttl_text = None if ttl is None else f"{ttl}s"
        # Twice: the first send of a payload makes its template, the second fills it.
        for _ in range(2):
            assert sender._bodies.body(payload, token, ttl_text) == sender._build(
                payload, token, ttl_text
            )

    same_body()


async def test_a_refused_fcm_payload_stays_refused_with_its_reason(
    fcm_sender: FcmSender,
) -> None:
    for payload, detail in (
        (b"[1, 2]", "payload is not a JSON object"),
        (b'{"message": "text"}', "message is not an object"),
        (b'{"message": {"topic": "news"}}', "message already has a topic or condition target"),
    ):
        for _ in range(2):
            verdict = await fcm_sender.send("t", payload)
            assert (verdict.kind, verdict.reason, verdict.detail) == (
                "rejected",
                "InvalidParameters",
                detail,
            )


async def test_cancelling_a_started_push_stops_its_request_even_during_a_second_chance(
    apns_key: KeyPair,
) -> None:
    """The worker's watchdog cancels the future of a push past its time: whichever request
    of the push is under way is reset, not left to run."""
    production, sandbox = FakeApns(apns_key), FakeApns(apns_key)
    production.outcomes[APNS_TOKEN] = (400, {"reason": "BadDeviceToken"})
    hanging = "12" * 32
    arrived: list[str] = []

    async def slow_production(request: Request) -> Reply:
        arrived.append(request.path)
        if request.path.endswith(hanging):
            await asyncio.sleep(10)
        return await production(request)

    async def slow_sandbox(request: Request) -> Reply:
        await asyncio.sleep(10)
        return await sandbox(request)

    async with (
        H2TestServer(slow_production) as prod_server,
        H2TestServer(slow_sandbox) as sandbox_server,
    ):
        sender = ApnsSender(
            ApnsTokenSigner(apns_key.private_pem, "ABC123DEFG", "DEF123GHIJ"),
            "com.example.app",
            production_url=prod_server.url,
            sandbox_url=sandbox_server.url,
        )
        try:
            assert (await sender.send("cd" * 32, b"{}")).ok  # the production connection is up
            first = sender.start(hanging, b"{}")
            await eventually(lambda: len(arrived) == 2)
            first.cancel()
            await eventually(lambda: len(prod_server.resets) == 1)
            second = sender.start(APNS_TOKEN, b"{}")
            await eventually(lambda: sandbox_server.peak_open == 1)
            second.cancel()
            await eventually(lambda: len(sandbox_server.resets) == 1)
            assert first.cancelled() and second.cancelled()
            assert (await sender.send("cd" * 32, b"{}")).ok, "the sender still sends"
        finally:
            await sender.aclose()
    assert len(production.seen) == 3, "the hanging push never reached the fake's counter"


async def test_an_apns_id_given_is_sent_and_the_next_push_goes_without(
    apns_key: KeyPair, apns_server: tuple[H2TestServer, FakeApns]
) -> None:
    server, fake = apns_server
    sender = apns_sender(apns_key, server.url)
    given = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    try:
        named = await sender.send(APNS_TOKEN, b"{}", apns_id=given.upper())
        unnamed = await sender.send(APNS_TOKEN, b"{}")
    finally:
        await sender.aclose()
    assert [request.headers.get("apns-id") for request, _ in fake.seen] == [given, None]
    assert named.ok and unnamed.ok
