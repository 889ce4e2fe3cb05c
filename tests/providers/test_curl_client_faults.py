"""CurlClient against the emulators' connection faults (contract.md, "Additions (revised)":
`goaway` and `drop`): streams a GOAWAY left unprocessed are resent on a new connection and
answered once; requests in flight at a dropped connection come back retryable and the next ones
reconnect.

providers.md: "Keep connections open; reconnect on GOAWAY", and "Transient: ... connection loss,
GOAWAY: retry". The servers are the real emulators on real sockets (TLS, ALPN h2).

How the fault rates make these runs deterministic: a fault of rate r hits exactly every (1/r)-th
request the emulator handles, and the emulator handles a connection's streams in stream order.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from pushgate.emulators import Emulators, Fault
from pushgate.emulators.exchange import Request, Response
from pushgate.providers.apns import ApnsTokenSigner
from pushgate.providers.curl_client import ConnectionLostError, CurlClient
from pushgate.providers.senders import ApnsSender
from pushgate.providers.tls import make_ssl_context

PROJECT = "demo-project"


@pytest.fixture
async def emulators() -> AsyncIterator[Emulators]:
    async with Emulators() as running:
        yield running


def count_handled(emulators: Emulators, platform: str) -> list[int]:
    """The connection of every request the platform's emulator starts to handle, in order. A
    stream left unprocessed by a GOAWAY, or cut off by a drop before its turn, is not in it."""
    server = emulators.apns_server if platform == "ios" else emulators.fcm_server
    inner = server.handler
    handled: list[int] = []

    async def counting(request: Request) -> Response:
        handled.append(request.connection.id)
        return await inner(request)

    server.handler = counting
    return handled


@dataclass
class Target:
    """How to push to one token of one platform with a bare CurlClient."""

    url: str
    path: Callable[[str], str]
    headers: list[tuple[str, str]]
    body: Callable[[str], bytes]


def target(emulators: Emulators, platform: str) -> Target:
    if platform == "ios":
        credential = emulators.generate_apns_credential()
        signer = ApnsTokenSigner(credential.private_key_pem, credential.key_id, credential.team_id)
        return Target(
            emulators.apns_url,
            lambda token: f"/3/device/{token}",
            [
                ("apns-topic", credential.bundle_id),
                ("apns-push-type", "alert"),
                ("authorization", f"bearer {signer.token(time.time())}"),
            ],
            lambda token: b'{"aps":{"alert":"hello"}}',
        )
    access_token, _ = emulators.fcm.issue(PROJECT, f"pushgate@{PROJECT}.iam.gserviceaccount.com")
    return Target(
        emulators.fcm_url,
        lambda token: f"/v1/projects/{PROJECT}/messages:send",
        [("authorization", f"Bearer {access_token}"), ("content-type", "application/json")],
        lambda token: json.dumps({"message": {"token": token, "data": {"n": "1"}}}).encode(),
    )


def new_token(platform: str) -> str:
    return os.urandom(32).hex() if platform == "ios" else f"f{os.urandom(5).hex()}:APA91b"


def delivered(emulators: Emulators, platform: str) -> Counter[str]:
    return Counter(str(d.token) for d in emulators.state.deliveries(platform))


def applied(emulators: Emulators, platform: str, kind: str) -> int:
    return sum(f.applied for f in emulators.state.faults(platform) if f.kind == kind)


@pytest.mark.parametrize("platform", ["ios", "android"])
async def test_streams_above_a_goaways_last_stream_id_are_resent_and_each_answered_once(
    emulators: Emulators, platform: str
) -> None:
    handled = count_handled(emulators, platform)
    to = target(emulators, platform)
    tokens = [new_token(platform) for _ in range(20)]
    # GOAWAY after every tenth request: the first connection takes 10 of the 20 streams sent on
    # it, the other 10 are above the GOAWAY's last stream id.
    emulators.state.set_fault(Fault(platform, None, 0.1, kind="goaway"))

    async with CurlClient(to.url, make_ssl_context(emulators.ca.ca_pem)) as client:
        responses = await asyncio.gather(
            *(client.request("POST", to.path(t), to.headers, to.body(t), 10.0) for t in tokens)
        )

    assert [r.status for r in responses] == [200] * 20
    assert delivered(emulators, platform) == Counter(tokens), "each push arrived exactly once"
    assert applied(emulators, platform, "goaway") == 2
    first, second = Counter(handled).values()
    assert (first, second) == (10, 10), "the 10 unprocessed streams went on a new connection"
    assert len(handled) == 20, "no stream was processed twice"


async def test_a_request_cut_off_by_a_drop_fails_retryable_and_the_next_one_reconnects(
    emulators: Emulators,
) -> None:
    handled = count_handled(emulators, "android")
    to = target(emulators, "android")
    cut, later = new_token("android"), new_token("android")
    emulators.state.set_fault(Fault("android", None, 1.0, kind="drop"))

    async with CurlClient(to.url, make_ssl_context(emulators.ca.ca_pem)) as client:
        with pytest.raises(ConnectionLostError) as caught:
            await client.request("POST", to.path(cut), to.headers, to.body(cut), 10.0)
        emulators.state.set_fault(Fault("android", None, 0, kind="drop"))
        response = await client.request("POST", to.path(later), to.headers, to.body(later), 10.0)

    # The emulator acted on the request before dropping: the client cannot know, so the error
    # is retryable but not "unprocessed" (libcurl does not resend it by itself).
    assert caught.value.retryable and not caught.value.unprocessed
    assert response.status == 200
    assert delivered(emulators, "android") == Counter([cut, later])
    assert len(set(handled)) == 2, "the next request went on a new connection"


async def test_pushes_in_flight_at_a_drop_come_back_retry_and_only_the_dropped_one_twice(
    emulators: Emulators,
) -> None:
    handled = count_handled(emulators, "ios")
    credential = emulators.generate_apns_credential()
    sender = ApnsSender(
        ApnsTokenSigner(credential.private_key_pem, credential.key_id, credential.team_id),
        credential.bundle_id,
        production_url=emulators.apns_url,
        ssl_context=make_ssl_context(emulators.ca.ca_pem),
    )
    tokens = [new_token("ios") for _ in range(10)]
    payload = b'{"aps":{"alert":"hello"}}'
    # APNs allows one stream until a push succeeds: the first push goes alone and succeeds, the
    # other nine go together once the limit rises, and the second request handled is dropped.
    # libcurl resends none of them: over HTTP/2 a connection closed under open streams fails
    # them (it only resends streams refused or above a GOAWAY's last stream id).
    emulators.state.set_fault(Fault("ios", None, 0.5, kind="drop"))
    try:
        verdicts = await asyncio.gather(*(sender.send(t, payload) for t in tokens))
        drops = applied(emulators, "ios", "drop")
        emulators.state.set_fault(Fault("ios", None, 0, kind="drop"))
        retried = [t for t, v in zip(tokens, verdicts, strict=True) if v.kind == "retry"]
        again = await asyncio.gather(*(sender.send(t, payload) for t in retried))
    finally:
        await sender.aclose()

    assert Counter(v.kind for v in verdicts) == {"ok": 1, "retry": 9}
    assert {v.reason for v in verdicts if v.kind == "retry"} == {"ConnectionLostError"}
    assert [v.kind for v in again] == ["ok"] * 9
    counts = delivered(emulators, "ios")
    assert set(counts) == set(tokens), "no push was lost"
    # Only the request the emulator acted on and then dropped arrives twice.
    assert sorted(counts.values()) == [1] * 9 + [2]
    assert drops == 1
    first, second = Counter(handled).values()
    assert (first, second) == (2, 9), "the retries went on a new connection"
