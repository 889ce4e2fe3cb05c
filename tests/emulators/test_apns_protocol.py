"""The APNs emulator on the wire, through a raw h2 client: stream limits, validation order,
provider-token rules, error framing, faults."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import jwt
import pytest

from pushgate.emulators import ApnsCredential, Emulators, Fault
from tests.emulators.h2client import H2Client, H2Response
from tests.support.emulator_clock import Clock

TOKEN = "0123456789abcdef" * 4
PAYLOAD = b'{"aps": {"alert": "hi"}}'

Connect = Callable[[], Awaitable[H2Client]]


@pytest.fixture
async def connect(emulators: Emulators) -> AsyncIterator[Connect]:
    clients: list[H2Client] = []

    async def open_client() -> H2Client:
        client = await H2Client.connect(
            emulators.apns_server.host, emulators.apns_server.port, emulators.ca.client_context()
        )
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


@pytest.fixture
def credential(emulators: Emulators) -> ApnsCredential:
    return emulators.generate_apns_credential("com.example.app")


def provider_token(credential: ApnsCredential, issued_at: float | None = None) -> str:
    claims = {
        "iss": credential.team_id,
        "iat": int(time.time() if issued_at is None else issued_at),
    }
    return jwt.encode(
        claims, credential.private_key_pem, algorithm="ES256", headers={"kid": credential.key_id}
    )


def good_headers(credential: ApnsCredential, bearer: str | None = None) -> dict[str, str]:
    return {
        "apns-id": str(uuid.uuid4()),
        "apns-topic": credential.bundle_id,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "authorization": f"bearer {bearer or provider_token(credential)}",
    }


async def push(
    client: H2Client,
    headers: dict[str, str],
    token: str = TOKEN,
    body: bytes = PAYLOAD,
    method: str = "POST",
) -> H2Response:
    return await client.request(method, f"/3/device/{token}", list(headers.items()), body)


def reason(response: H2Response) -> str:
    return str(json.loads(response.body)["reason"])


async def test_a_new_connection_allows_one_stream_until_a_push_succeeds(
    connect: Connect, credential: ApnsCredential
) -> None:
    client = await connect()

    assert (await client.wait_for_settings(1))[0] == 1
    assert client.conn.remote_settings.max_concurrent_streams == 1
    response = await push(client, good_headers(credential))

    assert response.status == 200
    assert client.max_streams_history == [1, 1000]


async def test_a_rejected_push_drops_the_limit_to_one_and_the_next_success_raises_it(
    emulators: Emulators, connect: Connect, credential: ApnsCredential
) -> None:
    client = await connect()
    bearer = provider_token(credential)
    emulators.state.set_token_outcome("ios", "f" * 64, "Unregistered")

    ok = await push(client, good_headers(credential, bearer))
    rejected = await push(client, good_headers(credential, bearer), token="f" * 64)
    assert client.conn.remote_settings.max_concurrent_streams == 1
    again = await push(client, good_headers(credential, bearer))

    assert (ok.status, rejected.status, again.status) == (200, 410, 200)
    assert client.max_streams_history == [1, 1000, 1, 1000]
    assert client.conn.remote_settings.max_concurrent_streams == 1000


async def test_a_rejection_before_any_success_keeps_the_limit_at_one(
    connect: Connect, credential: ApnsCredential
) -> None:
    client = await connect()
    headers = good_headers(credential)
    del headers["authorization"]

    response = await push(client, headers)

    assert (response.status, reason(response)) == (403, "MissingProviderToken")
    assert client.max_streams_history == [1]


async def test_streams_opened_before_the_settings_arrive_are_still_served(
    emulators: Emulators, credential: ApnsCredential
) -> None:
    client = await H2Client.connect(
        emulators.apns_server.host, emulators.apns_server.port, emulators.ca.client_context()
    )
    try:
        headers = list(good_headers(credential).items())
        ids = [client.start("POST", f"/3/device/{i:064x}", headers, PAYLOAD) for i in range(5)]
        responses = [await client.response(i) for i in ids]
    finally:
        await client.close()

    assert [r.status for r in responses] == [200] * 5


# Each case breaks its own rule AND every later one; the emulator must name the earliest.
ORDER: list[tuple[str, int]] = [
    ("BadMessageId", 400),
    ("MethodNotAllowed", 405),
    ("MissingTopic", 400),
    ("BadCollapseId", 400),
    ("BadPriority", 400),
    ("InvalidPushType", 400),
    ("MissingDeviceToken", 400),
    ("BadDeviceToken", 400),
    ("Unregistered", 410),
    ("DeviceTokenNotForTopic", 400),
    ("MissingProviderToken", 403),
    ("InvalidProviderToken", 403),
    ("ExpiredProviderToken", 403),
    ("PayloadEmpty", 400),
    ("PayloadTooLarge", 413),
]


@pytest.mark.parametrize(("step", "expected"), list(enumerate(ORDER)), ids=[r for r, _ in ORDER])
async def test_validation_reports_the_first_broken_rule_in_the_documented_order(
    emulators: Emulators,
    connect: Connect,
    credential: ApnsCredential,
    step: int,
    expected: tuple[str, int],
) -> None:
    broken = {name for name, _ in ORDER[step:]}
    headers = good_headers(credential)
    method, token, body = "POST", TOKEN, PAYLOAD
    if "BadMessageId" in broken:
        headers["apns-id"] = "not-a-uuid"
    if "MethodNotAllowed" in broken:
        method = "GET"
    if "MissingTopic" in broken:
        del headers["apns-topic"]
    if "BadCollapseId" in broken:
        headers["apns-collapse-id"] = "c" * 65
    if "BadPriority" in broken:
        headers["apns-priority"] = "7"
    if "InvalidPushType" in broken:
        headers["apns-push-type"] = "shout"
    if "MissingDeviceToken" in broken:
        token = ""
    elif "BadDeviceToken" in broken:
        token = "abc"
    elif "Unregistered" in broken:
        token = "e" * 64
        emulators.state.set_token_outcome("ios", token, "Unregistered")
    elif "DeviceTokenNotForTopic" in broken:
        token = "d" * 64
        emulators.state.set_token_outcome("ios", token, "DeviceTokenNotForTopic")
    if "MissingProviderToken" in broken:
        del headers["authorization"]
    elif "InvalidProviderToken" in broken:
        stranger = ApnsCredential("ZZZZZZZZZZ", credential.team_id, "x", credential.private_key_pem)
        headers["authorization"] = f"bearer {provider_token(stranger, time.time() - 7200)}"
    elif "ExpiredProviderToken" in broken:
        headers["authorization"] = f"bearer {provider_token(credential, time.time() - 3700)}"
    if "PayloadEmpty" in broken:
        body = b""
    elif "PayloadTooLarge" in broken:
        body = json.dumps({"aps": {"alert": "x" * 5000}}).encode()
    client = await connect()

    response = await push(client, headers, token, body, method)

    assert (reason(response), response.status) == expected


async def test_a_request_breaking_no_rule_succeeds_with_an_empty_body(
    connect: Connect, credential: ApnsCredential
) -> None:
    client = await connect()
    headers = good_headers(credential)

    response = await push(client, headers)

    assert response.status == 200
    assert response.body == b""
    assert response.data_frames == 0
    assert response.headers["apns-id"] == headers["apns-id"]


async def test_an_error_body_comes_in_one_data_frame_with_the_apns_id_echoed(
    connect: Connect, credential: ApnsCredential
) -> None:
    client = await connect()
    headers = good_headers(credential)
    headers["apns-priority"] = "1"

    response = await push(client, headers)

    assert response.data_frames == 1
    assert json.loads(response.body) == {"reason": "BadPriority"}
    assert response.headers["apns-id"] == headers["apns-id"]


async def test_an_apns_id_is_generated_when_the_request_has_none(
    connect: Connect, credential: ApnsCredential
) -> None:
    client = await connect()
    headers = good_headers(credential)
    del headers["apns-id"]

    response = await push(client, headers)

    assert response.status == 200
    assert uuid.UUID(response.headers["apns-id"])


async def test_a_request_with_a_host_header_instead_of_authority_is_served(
    emulators: Emulators, connect: Connect, credential: ApnsCredential
) -> None:
    client = await connect()
    headers = [("host", "api.push.apple.com"), *good_headers(credential).items()]

    response = await client.request("POST", f"/3/device/{TOKEN}", headers, PAYLOAD, authority=None)

    assert response.status == 200
    assert emulators.state.deliveries()[0].headers["host"] == "api.push.apple.com"


async def test_a_path_outside_the_device_endpoint_is_a_bad_path(
    connect: Connect, credential: ApnsCredential
) -> None:
    client = await connect()

    response = await client.request(
        "POST", "/3/other", list(good_headers(credential).items()), PAYLOAD
    )

    assert (response.status, reason(response)) == (404, "BadPath")


async def test_a_provider_token_older_than_an_hour_on_an_open_connection_expires(
    connect: Connect, credential: ApnsCredential, clock: Clock
) -> None:
    client = await connect()
    bearer = provider_token(credential)

    fresh = await push(client, good_headers(credential, bearer))
    clock.advance(3601)
    stale = await push(client, good_headers(credential, bearer))

    assert fresh.status == 200
    assert (stale.status, reason(stale)) == (403, "ExpiredProviderToken")


async def test_changing_the_provider_token_within_20_minutes_is_too_many_updates(
    connect: Connect, credential: ApnsCredential, clock: Clock
) -> None:
    client = await connect()
    first, second = provider_token(credential), provider_token(credential, time.time() + 1)

    ok = await push(client, good_headers(credential, first))
    clock.advance(19 * 60)
    early = await push(client, good_headers(credential, second))
    clock.advance(2 * 60)
    later = await push(client, good_headers(credential, provider_token(credential, clock())))

    assert ok.status == 200
    assert (early.status, reason(early)) == (429, "TooManyProviderTokenUpdates")
    assert later.status == 200


async def test_a_token_signed_by_another_key_is_invalid(
    emulators: Emulators, connect: Connect, credential: ApnsCredential
) -> None:
    other = emulators.generate_apns_credential()
    forged = ApnsCredential(credential.key_id, credential.team_id, "x", other.private_key_pem)
    client = await connect()

    response = await push(client, good_headers(credential, provider_token(forged)))

    assert (response.status, reason(response)) == (403, "InvalidProviderToken")


async def test_a_fault_answers_its_share_of_pushes_with_retry_after(
    emulators: Emulators, connect: Connect, credential: ApnsCredential
) -> None:
    emulators.state.set_fault(Fault("ios", 503, 0.5, retry_after=3))
    client = await connect()
    bearer = provider_token(credential)

    responses = [await push(client, good_headers(credential, bearer)) for _ in range(4)]

    failed = [r for r in responses if r.status != 200]
    assert len(failed) == 2
    assert all(reason(r) == "ServiceUnavailable" for r in failed)
    assert all(r.headers["retry-after"] == "3" for r in failed)
    assert len(emulators.state.deliveries()) == 2


async def test_a_latency_fault_delays_every_answer(
    emulators: Emulators, connect: Connect, credential: ApnsCredential
) -> None:
    emulators.state.set_fault(Fault("ios", None, 0, latency_ms=200))
    client = await connect()

    started = asyncio.get_running_loop().time()
    response = await push(client, good_headers(credential))
    elapsed = asyncio.get_running_loop().time() - started

    assert response.status == 200
    assert elapsed >= 0.2
