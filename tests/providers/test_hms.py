"""HMS Push Kit: the pure parts (credential, token request, message, result codes), then
`HmsSender` against the HMS emulator over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from pushgate.emulators import Emulators, Fault, HmsApp
from pushgate.emulators import HmsCredential as EmulatedHmsApp
from pushgate.emulators.exchange import Request, Response
from pushgate.emulators.server import HttpServer
from pushgate.providers import hms
from pushgate.providers.curl_client import DEFAULT_HTTP1_CONNECTIONS
from pushgate.providers.errors import CredentialError
from pushgate.providers.oauth import HmsTokenSource
from pushgate.providers.senders import HmsSender
from tests.support.provider_servers import eventually

TOKEN = "IQAAAACy0kYkAADqnrsvKz7mHSSiVPOdbVV"


def answer(code: str, msg: Any = "x") -> bytes:
    return json.dumps({"code": code, "msg": msg, "requestId": "r-1"}).encode()


def test_the_credential_parses_and_the_client_id_defaults_to_the_app_id() -> None:
    credential = hms.HmsCredential.parse({"app_id": 104000001, "client_secret": "s3cret"})
    assert (credential.app_id, credential.client_id) == ("104000001", "104000001")
    assert "s3cret" not in repr(credential)
    with pytest.raises(CredentialError, match="client_secret"):
        hms.HmsCredential.parse({"app_id": "1", "client_id": "1", "client_secret": " "})
    with pytest.raises(CredentialError, match="app_id"):
        hms.HmsCredential.parse({"client_id": "1", "client_secret": "s"})


def test_the_token_request_is_a_client_credentials_grant() -> None:
    form = parse_qs(hms.token_request_body("104000001", "a&b=c").decode(), strict_parsing=True)
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": ["104000001"],
        "client_secret": ["a&b=c"],
    }


def test_build_send_puts_the_one_token_in_a_list() -> None:
    message: dict[str, Any] = {"data": "{}", "android": {"urgency": "HIGH"}}
    body = {"validate_only": False, "message": message}
    path, data = hms.build_send("104000001", body, TOKEN)
    assert path == "/v1/104000001/messages:send"
    assert json.loads(data) == {
        "validate_only": False,
        "message": {"data": "{}", "android": {"urgency": "HIGH"}, "token": [TOKEN]},
    }
    assert "token" not in message


def test_build_send_refuses_another_target_or_no_token() -> None:
    with pytest.raises(ValueError):
        hms.build_send("1", {"message": {"topic": "news"}}, TOKEN)
    with pytest.raises(ValueError):
        hms.build_send("1", {"message": {}}, "")


@pytest.mark.parametrize(
    ("http", "code", "kind", "reason"),
    [
        (200, "80000000", "ok", ""),
        (200, "80300007", "dead_token", "NotRegistered"),
        (401, "80200001", "credential", "80200001"),
        (401, "80200003", "credential", "80200003"),
        (403, "80300002", "rejected", "80300002"),
        (400, "80100001", "rejected", "80100001"),
        (400, "80100003", "rejected", "80100003"),
        (413, "80300008", "rejected", "80300008"),
        (400, "80300010", "rejected", "80300010"),
        (500, "81000001", "retry", "81000001"),
    ],
)
def test_every_hms_result_code_has_its_verdict(
    http: int, code: str, kind: str, reason: str
) -> None:
    verdict = hms.classify(http, {}, answer(code))
    assert (verdict.kind, verdict.reason, verdict.status) == (kind, reason, http)


@pytest.mark.parametrize("code", ["80200001", "80200003"])
def test_a_refused_access_token_is_renewed_before_the_credential_is_judged(code: str) -> None:
    # providers.md: refresh and retry once; only a second refusal makes it invalid.
    verdict = hms.classify(401, {}, answer(code, "oauth token expired"))
    assert (verdict.kind, verdict.refresh_auth) == ("credential", True)
    assert verdict.detail == f"{code}: oauth token expired"


@pytest.mark.parametrize("code", ["80300002", "80100001", "80100003"])
def test_configuration_and_payload_answers_change_no_device(code: str) -> None:
    # 80300002 (no push permission) is the app's configuration; 80100001 and 80100003 are
    # the message's fault: the push fails, the device stays, nothing is renewed.
    verdict = hms.classify(400, {}, answer(code))
    assert (verdict.kind, verdict.reason, verdict.refresh_auth) == ("rejected", code, False)


@pytest.mark.parametrize(("status", "code"), [(503, ""), (500, "81000001"), (200, "81000002")])
def test_flow_control_and_internal_errors_are_retried(status: int, code: str) -> None:
    body = answer(code) if code else b""
    assert hms.classify(status, {}, body).kind == "retry"


def test_a_partial_success_naming_our_token_illegal_is_a_dead_token() -> None:
    msg = json.dumps({"success": 0, "failure": 1, "illegal_tokens": [TOKEN]})
    verdict = hms.classify(200, {}, answer("80100000", msg), token=TOKEN)
    assert (verdict.kind, verdict.reason) == ("dead_token", "NotRegistered")


def test_a_partial_success_naming_other_tokens_is_ok_for_ours() -> None:
    msg = json.dumps({"success": 1, "failure": 1, "illegal_tokens": ["other"]})
    assert hms.classify(200, {}, answer("80100000", msg), token=TOKEN).kind == "ok"


def test_an_unreadable_partial_success_is_rejected() -> None:
    assert hms.classify(200, {}, answer("80100000", "{not json"), token=TOKEN).kind == "rejected"


def test_http_503_is_flow_control_and_honours_retry_after() -> None:
    verdict = hms.classify(503, {"Retry-After": "5"}, b"")
    assert (verdict.kind, verdict.retry_after) == ("retry", 5.0)


def test_answers_without_a_code_fall_back_on_the_status() -> None:
    assert hms.classify(502, {}, b"<html>").kind == "retry"
    unauthorized = hms.classify(401, {}, b"")
    assert (unauthorized.kind, unauthorized.refresh_auth) == ("credential", True)
    assert hms.classify(200, {}, b"{}").kind == "rejected"
    assert hms.classify(404, {}, b"").kind == "rejected"


def test_numeric_codes_are_read_like_strings() -> None:
    assert hms.classify(200, {}, b'{"code": 80000000, "msg": "Success"}').kind == "ok"


# ---- credential defaults: Huawei's message classification ----


def test_the_credential_may_carry_a_default_category_and_importance() -> None:
    base = {"app_id": "1", "client_secret": "s"}
    credential = hms.HmsCredential.parse({**base, "category": "EXPRESS", "importance": "LOW"})
    assert (credential.category, credential.importance) == ("EXPRESS", "LOW")
    plain = hms.HmsCredential.parse({**base, "category": None})
    assert (plain.category, plain.importance) == (None, None)


@pytest.mark.parametrize(
    "extra",
    [
        {"category": "PROMOTION"},
        {"category": "im"},
        {"category": ""},
        {"category": 1},
        {"importance": "HIGH"},
        {"importance": "normal"},
    ],
)
def test_a_category_or_importance_outside_huaweis_values_is_refused(
    extra: dict[str, Any],
) -> None:
    name = next(iter(extra))
    with pytest.raises(CredentialError, match=f"huawei {name} .* not one of Huawei's values"):
        hms.HmsCredential.parse({"app_id": "1", "client_secret": "s", **extra})


# ---- prepare_message: what the sender puts into every message ----

MESSAGE: dict[str, Any] = {
    "data": "{}",
    "notification": {"title": "T", "body": "B"},
    "android": {"urgency": "HIGH", "ttl": "60s", "notification": {"click_action": {"type": 3}}},
}


@pytest.mark.parametrize(
    ("seconds", "field"),
    [(60, "60s"), (1_296_000, "1296000s"), (1_296_001, "1296000s"), (2_419_200, "1296000s")],
)
def test_the_ttl_is_cut_at_huaweis_15_days(seconds: int, field: str) -> None:
    assert hms.ttl_field(seconds) == field
    assert hms.prepare_message(MESSAGE, ttl=seconds)["android"]["ttl"] == field


@pytest.mark.parametrize(
    ("ttl", "sent"),
    [("2419200s", "1296000s"), ("1296000.5", "1296000s"), ("3600s", "3600s"), ("1h", "1h")],
)
def test_a_ttl_already_in_the_message_is_cut_only_when_longer_than_15_days(
    ttl: str, sent: str
) -> None:
    message = {**MESSAGE, "android": {**MESSAGE["android"], "ttl": ttl}}
    assert hms.prepare_message(message)["android"]["ttl"] == sent


def test_the_default_category_and_importance_go_into_a_notification() -> None:
    prepared = hms.prepare_message(MESSAGE, category="IM", importance="NORMAL")
    assert prepared["android"]["category"] == "IM"
    assert prepared["android"]["notification"] == {
        "click_action": {"type": 3},
        "importance": "NORMAL",
    }
    assert prepared["android"]["urgency"] == "HIGH"
    assert "category" not in MESSAGE["android"]  # the input is not changed
    assert "importance" not in MESSAGE["android"]["notification"]


def test_a_messages_own_category_and_importance_win() -> None:
    android = {**MESSAGE["android"], "category": "VOIP"}
    android["notification"] = {"click_action": {"type": 3}, "importance": "LOW"}
    prepared = hms.prepare_message(
        {**MESSAGE, "android": android}, category="IM", importance="NORMAL"
    )
    assert prepared["android"]["category"] == "VOIP"
    assert prepared["android"]["notification"]["importance"] == "LOW"


def test_a_data_message_gets_the_category_but_no_notification() -> None:
    data_only = {"data": "{}", "android": {"urgency": "NORMAL", "ttl": "60s"}}
    prepared = hms.prepare_message(data_only, category="IM", importance="NORMAL")
    assert prepared["android"] == {"urgency": "NORMAL", "ttl": "60s", "category": "IM"}
    assert hms.prepare_message({"data": "{}"}) == {"data": "{}"}


def test_a_message_without_defaults_or_ttl_is_sent_as_built() -> None:
    assert hms.prepare_message(MESSAGE) == MESSAGE
    assert hms.prepare_message({**MESSAGE, "android": "x"}, ttl=60) == {**MESSAGE, "android": "x"}


# ---- HmsSender against the HMS emulator (real sockets, TLS with the emulator's CA) ----


class Clock:
    """The emulators' wall clock, which a test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def emulators(clock: Clock) -> AsyncIterator[Emulators]:
    """HMS as the default emulator serves it: `h2` and `http/1.1` offered by ALPN."""
    async with Emulators(clock=clock) as running:
        yield running


@pytest.fixture
async def http11_emulators() -> AsyncIterator[Emulators]:
    """An HMS that speaks HTTP/1.1 only (ALPN `http/1.1`, the HTTP/2 preface refused)."""
    async with Emulators(hms_http2=False) as running:
        yield running


def push_body(**android: Any) -> bytes:
    config: dict[str, Any] = {
        "urgency": "HIGH",
        "ttl": "86400s",
        "notification": {"click_action": {"type": 3}},
        **android,
    }
    message = {"data": '{"camp_id": "1"}', "notification": {"title": "T", "body": "B"}}
    return json.dumps({"validate_only": False, "message": {**message, "android": config}}).encode()


@contextlib.asynccontextmanager
async def sender_for(
    emulators: Emulators,
    app: EmulatedHmsApp | None = None,
    *,
    url: str | None = None,
    token_url: str | None = None,
    timeout: float = 10.0,
    **fields: Any,
) -> AsyncIterator[HmsSender]:
    app = app or emulators.generate_hms_credential()
    credential = hms.HmsCredential.parse(
        {"app_id": app.app_id, "client_id": app.client_id, "client_secret": app.client_secret}
        | fields
    )
    sender = HmsSender(
        credential,
        url=url or emulators.hms_url,
        token_url=token_url or emulators.hms_token_url,
        ssl_context=emulators.ca.client_context() if emulators.tls else None,
        timeout=timeout,
    )
    try:
        yield sender
    finally:
        await sender.aclose()


class PushConnections:
    """The emulator's connections that carried pushes (not token requests), as it saw them."""

    def __init__(self, emulators: Emulators) -> None:
        self.server = emulators.hms_server
        self.ids: list[int] = []
        inner = self.server.handler

        async def recording(request: Request) -> Response:
            if request.path.endswith(":send"):
                self.ids.append(request.connection.id)
            return await inner(request)

        self.server.handler = recording

    @property
    def used(self) -> int:
        return len(set(self.ids))

    @property
    def open(self) -> int:
        return len({s.connection.id for s in self.server._sessions} & set(self.ids))


def tokens_of(sender: HmsSender) -> HmsTokenSource:
    assert isinstance(sender.tokens, HmsTokenSource)
    return sender.tokens


async def test_the_sender_speaks_http2_to_a_server_that_selects_h2(
    emulators: Emulators,
) -> None:
    async with sender_for(emulators) as sender:
        verdicts = [await sender.send(f"h{n}", push_body(), ttl=60) for n in range(3)]
        protocol = sender.protocol

    assert [v.kind for v in verdicts] == ["ok"] * 3
    assert protocol == "h2"
    assert [d.http_version for d in emulators.state.deliveries()] == ["2"] * 3


async def test_the_sender_speaks_http11_to_a_server_that_does_not_select_h2(
    http11_emulators: Emulators,
) -> None:
    connections = PushConnections(http11_emulators)
    async with sender_for(http11_emulators) as sender:
        first = await sender.send("h1", push_body(), ttl=60)
        again = [await sender.send(f"h{n}", push_body(), ttl=60) for n in (2, 3)]
        # One keep-alive connection carried the three sends, one after the other.
        assert connections.used == 1
        protocol = sender.protocol

    assert [v.kind for v in (first, *again)] == ["ok"] * 3
    assert first.status == 200
    assert protocol == "http/1.1"
    deliveries = http11_emulators.state.deliveries()
    assert [(d.token, d.http_version) for d in deliveries] == [
        ("h1", "1.1"),
        ("h2", "1.1"),
        ("h3", "1.1"),
    ]
    assert deliveries[0].headers["authorization"].startswith("Bearer ")
    assert deliveries[0].payload["message"]["token"] == ["h1"]


async def test_concurrent_sends_over_http11_share_a_bounded_pool(
    http11_emulators: Emulators,
) -> None:
    connections = PushConnections(http11_emulators)
    async with sender_for(http11_emulators) as sender:
        verdicts = await asyncio.gather(
            *(sender.send(f"t{n}", push_body(), ttl=60) for n in range(40))
        )

    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    assert 1 < connections.used <= DEFAULT_HTTP1_CONNECTIONS
    assert len(http11_emulators.state.deliveries()) == 40


async def test_a_server_that_selects_no_protocol_is_spoken_to_in_http11(
    emulators: Emulators,
) -> None:
    # A TLS server without ALPN: HTTP/1.1, the protocol every HTTPS server speaks.
    bare = HttpServer(
        emulators.hms.handle, ssl_context=emulators.ca.server_context(alpn=()), http2=False
    )
    await bare.start()
    try:
        async with sender_for(emulators, url=bare.url) as sender:
            verdict = await sender.send("h1", push_body(), ttl=60)
            protocol = sender.protocol
    finally:
        await bare.stop()

    assert (verdict.kind, protocol) == ("ok", "http/1.1")
    assert [d.http_version for d in emulators.state.deliveries()] == ["1.1"]


async def test_an_http11_request_without_an_answer_in_time_is_retried_on_a_new_connection(
    http11_emulators: Emulators,
) -> None:
    connections = PushConnections(http11_emulators)
    async with sender_for(http11_emulators, timeout=2.0) as sender:
        assert (await sender.send("h1", push_body(), ttl=60)).ok
        http11_emulators.state.set_fault(Fault("huawei", None, 0, latency_ms=3_000))
        late = await sender.send("h2", push_body(), ttl=60)
        http11_emulators.state.set_fault(Fault("huawei", None, 0))
        after = await sender.send("h3", push_body(), ttl=60)
        delivered = [d.token for d in http11_emulators.state.deliveries()]
        # The one given up on was closed (the emulator sees it once its late answer is due),
        # a new one carried h3.
        await eventually(lambda: connections.open == 1, within=5)

    assert (late.kind, late.reason) == ("retry", "RequestTimeout")
    assert after.ok
    assert connections.used == 2
    assert delivered == ["h1", "h3"]


async def test_an_http_url_means_http2_with_prior_knowledge() -> None:
    async with Emulators(tls=False) as emulators:
        assert emulators.hms_url.startswith("http://")
        async with sender_for(emulators) as sender:
            verdict = await sender.send("h1", push_body(), ttl=60)

        assert verdict.ok
        assert [d.http_version for d in emulators.state.deliveries()] == ["2"]


@pytest.mark.parametrize("http2", [True, False])
async def test_a_28_day_lifetime_reaches_huawei_as_15_days(http2: bool) -> None:
    async with Emulators(hms_http2=http2) as emulators, sender_for(emulators) as sender:
        verdict = await sender.send("h1", push_body(), ttl=28 * 24 * 3600)
        longer_in_payload = await sender.send("h2", push_body(ttl="2419200s"))
        (first, second) = emulators.state.deliveries()

    assert (verdict.kind, longer_in_payload.kind) == ("ok", "ok")
    assert first.payload["message"]["android"]["ttl"] == "1296000s"
    assert second.payload["message"]["android"]["ttl"] == "1296000s"


async def test_the_credentials_category_and_importance_reach_huawei(
    emulators: Emulators,
) -> None:
    async with sender_for(emulators, category="FINANCE", importance="NORMAL") as sender:
        assert (await sender.send("h1", push_body(), ttl=60)).ok
        own = push_body(
            category="IM", notification={"click_action": {"type": 3}, "importance": "LOW"}
        )
        assert (await sender.send("h2", own, ttl=60)).ok

    default, explicit = (d.payload["message"]["android"] for d in emulators.state.deliveries())
    assert default["category"] == "FINANCE"
    assert default["notification"]["importance"] == "NORMAL"
    assert (explicit["category"], explicit["notification"]["importance"]) == ("IM", "LOW")


async def test_a_message_huawei_refuses_fails_the_push_only(emulators: Emulators) -> None:
    async with sender_for(emulators) as sender:
        verdict = await sender.send("h1", push_body(urgency="URGENT"), ttl=60)

    assert (verdict.kind, verdict.reason, verdict.status) == ("rejected", "80100001", 400)
    assert "message.android.urgency" in verdict.detail
    assert emulators.state.deliveries() == []


async def test_an_expired_access_token_is_renewed_and_the_push_sent(
    emulators: Emulators, clock: Clock
) -> None:
    async with sender_for(emulators) as sender:
        assert (await sender.send("h1", push_body(), ttl=60)).ok
        clock.offset += 3601  # Huawei's hour has passed; pushgate's cache has not noticed
        verdict = await sender.send("h2", push_body(), ttl=60)
        fetches = tokens_of(sender).fetches

    assert verdict.ok
    assert fetches == 2
    assert [d.token for d in emulators.state.deliveries()] == ["h1", "h2"]


async def test_an_access_token_huawei_no_longer_knows_is_renewed_once(
    emulators: Emulators,
) -> None:
    async with sender_for(emulators) as sender:
        assert (await sender.send("h1", push_body(), ttl=60)).ok
        emulators.hms._grants.clear()  # as after a revocation on Huawei's side: 80200001
        verdict = await sender.send("h2", push_body(), ttl=60)
        fetches = tokens_of(sender).fetches

    assert verdict.ok
    assert fetches == 2


async def test_a_fresh_access_token_refused_again_makes_the_credential_invalid(
    emulators: Emulators,
) -> None:
    # The tokens come from another HMS, which knows the app: Huawei's push host refuses
    # every one of them with 80200001, the renewed one too.
    app = emulators.generate_hms_credential()
    async with Emulators(ca=emulators.ca) as elsewhere:
        elsewhere.state.generated.add_hms_app(HmsApp(app.client_id, app.client_secret, app.app_id))
        async with sender_for(emulators, app, token_url=elsewhere.hms_token_url) as sender:
            verdict = await sender.send("h1", push_body(), ttl=60)
            fetches = tokens_of(sender).fetches

    assert (verdict.kind, verdict.reason) == ("credential", "80200001")
    assert fetches == 2  # renewed once, not more
    assert emulators.state.deliveries() == []


async def test_no_push_permission_fails_the_push_and_keeps_the_device(
    emulators: Emulators,
) -> None:
    app = emulators.generate_hms_credential()
    other_app = EmulatedHmsApp(
        app_id="999", client_id=app.client_id, client_secret=app.client_secret
    )
    async with sender_for(emulators, other_app) as sender:
        verdict = await sender.send("h1", push_body(), ttl=60)

    assert (verdict.kind, verdict.reason) == ("rejected", "80300002")


async def test_an_illegal_token_is_a_dead_token(emulators: Emulators) -> None:
    emulators.state.set_token_outcome("huawei", "gone", "invalid")
    async with sender_for(emulators) as sender:
        verdict = await sender.send("gone", push_body(), ttl=60)

    assert (verdict.kind, verdict.reason) == ("dead_token", "NotRegistered")
