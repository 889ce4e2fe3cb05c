"""The APNs emulator's certificate auth (TLS client certificates) and its two environments,
through a raw h2 client over Python's own TLS."""

from __future__ import annotations

import datetime
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from pushgate.emulators import Emulators
from pushgate.emulators.credentials import ApnsPushCertificate, generate_apns_certificate
from pushgate.emulators.server import HttpServer
from tests.emulators.h2client import H2Client, H2Response

TOKEN = "0123456789abcdef" * 4
PAYLOAD = b'{"aps": {"alert": "hi"}}'
BUNDLE = "com.example.app"

Connect = Callable[..., Awaitable[H2Client]]


@pytest.fixture
async def connect(emulators: Emulators, tmp_path: Path) -> AsyncIterator[Connect]:
    """Opens an h2 connection to one APNs host, presenting `certificate` if given."""
    clients: list[H2Client] = []

    async def open_client(
        certificate: ApnsPushCertificate | None = None,
        *,
        server: HttpServer | None = None,
        tls_max: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
    ) -> H2Client:
        target = server or emulators.apns_server
        context = emulators.ca.client_context(alpn=("h2",))
        context.maximum_version = tls_max
        if certificate is not None:
            path = certificate.write_identity(tmp_path / f"{uuid.uuid4()}.pem")
            context.load_cert_chain(path)
        client = await H2Client.connect(target.host, target.port, context)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


@pytest.fixture
def certificate(emulators: Emulators, rsa_keys: tuple[str, str]) -> ApnsPushCertificate:
    return emulators.generate_apns_certificate(BUNDLE, private_key_pem=rsa_keys[0])


def headers(topic: str | None = BUNDLE, **extra: str) -> list[tuple[str, str]]:
    found = {"apns-id": str(uuid.uuid4()), "apns-push-type": "alert", **extra}
    if topic is not None:
        found["apns-topic"] = topic
    return list(found.items())


async def push(
    client: H2Client, topic: str | None = BUNDLE, token: str = TOKEN, **extra: str
) -> H2Response:
    return await client.request("POST", f"/3/device/{token}", headers(topic, **extra), PAYLOAD)


def reason(response: H2Response) -> str:
    return str(json.loads(response.body)["reason"])


async def test_a_push_certificate_authenticates_without_an_authorization_header(
    emulators: Emulators, connect: Connect, certificate: ApnsPushCertificate
) -> None:
    client = await connect(certificate)

    response = await push(client)

    assert response.status == 200, response.body
    assert client.writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    [delivery] = emulators.state.deliveries(platform="ios")
    assert delivery.token == TOKEN
    assert "authorization" not in delivery.headers


async def test_without_apns_topic_the_certificates_uid_is_the_topic(
    emulators: Emulators, connect: Connect, certificate: ApnsPushCertificate
) -> None:
    client = await connect(certificate)

    response = await push(client, topic=None)

    assert response.status == 200, response.body
    assert len(emulators.state.deliveries()) == 1


async def test_only_the_certificates_bundle_id_and_its_suffixes_are_allowed_topics(
    connect: Connect, certificate: ApnsPushCertificate
) -> None:
    client = await connect(certificate)

    other = await push(client, topic="com.other.app")
    voip = await push(client, topic=f"{BUNDLE}.voip", **{"apns-push-type": "voip"})

    assert (other.status, reason(other)) == (400, "TopicDisallowed")
    assert voip.status == 200


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_certificate_the_emulator_does_not_accept_fails_the_handshake(
    connect: Connect, rsa_keys: tuple[str, str], tls_max: ssl.TLSVersion
) -> None:
    # Not registered anywhere: as a certificate Apple did not issue.
    stranger = generate_apns_certificate(None, bundle_id=BUNDLE, private_key_pem=rsa_keys[1])

    # TLS 1.2 fails in the handshake; with 1.3 the client's part ends first and the server
    # closes the connection when it reads the certificate.
    with pytest.raises((ConnectionError, ssl.SSLError)):
        client = await connect(stranger, tls_max=tls_max)
        await push(client)


async def test_an_expired_certificate_fails_the_handshake(
    emulators: Emulators, connect: Connect, rsa_keys: tuple[str, str]
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    expired = emulators.generate_apns_certificate(
        BUNDLE,
        private_key_pem=rsa_keys[0],
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )

    with pytest.raises((ConnectionError, ssl.SSLError)):
        client = await connect(expired)
        await push(client)


async def test_a_certificate_accepted_after_the_server_started_works_at_once(
    emulators: Emulators, connect: Connect, rsa_keys: tuple[str, str]
) -> None:
    late = generate_apns_certificate(None, bundle_id=BUNDLE, private_key_pem=rsa_keys[1])
    with pytest.raises((ConnectionError, ssl.SSLError)):
        await push(await connect(late))

    emulators.state.generated.add_apns_certificate(late.certificate)

    assert (await push(await connect(late))).status == 200


async def test_a_self_signed_certificate_the_directory_lists_is_accepted(
    emulators: Emulators, connect: Connect, rsa_keys: tuple[str, str]
) -> None:
    own = emulators.generate_apns_certificate(BUNDLE, ca=None, private_key_pem=rsa_keys[1])

    assert (await push(await connect(own))).status == 200


async def test_a_certificate_that_names_no_bundle_id_is_a_bad_certificate(
    emulators: Emulators, connect: Connect, rsa_keys: tuple[str, str]
) -> None:
    nameless = emulators.generate_apns_certificate(BUNDLE, uid=None, private_key_pem=rsa_keys[1])

    response = await push(await connect(nameless))

    assert (response.status, reason(response)) == (403, "BadCertificate")


@pytest.mark.parametrize(
    ("kind", "refused_on"), [("sandbox", "production"), ("production", "sandbox")]
)
async def test_a_certificate_for_one_environment_is_refused_on_the_other(
    emulators: Emulators,
    connect: Connect,
    rsa_keys: tuple[str, str],
    kind: str,
    refused_on: str,
) -> None:
    cert = emulators.generate_apns_certificate(BUNDLE, kind=kind, private_key_pem=rsa_keys[1])
    servers = {"production": emulators.apns_server, "sandbox": emulators.apns_sandbox_server}
    accepted_on = "sandbox" if refused_on == "production" else "production"

    refused = await push(await connect(cert, server=servers[refused_on]))
    accepted = await push(await connect(cert, server=servers[accepted_on]))

    assert (refused.status, reason(refused)) == (403, "BadCertificateEnvironment")
    assert accepted.status == 200


async def test_a_universal_certificate_works_on_both_hosts(
    emulators: Emulators, connect: Connect, certificate: ApnsPushCertificate
) -> None:
    production = await push(await connect(certificate))
    sandbox = await push(await connect(certificate, server=emulators.apns_sandbox_server))

    assert (production.status, sandbox.status) == (200, 200)


async def test_token_auth_needs_its_header_even_on_a_certificate_connection(
    connect: Connect, certificate: ApnsPushCertificate
) -> None:
    client = await connect(certificate)

    response = await push(client, authorization="bearer not-a-jwt")

    assert (response.status, reason(response)) == (403, "InvalidProviderToken")


# the two environments


@pytest.fixture
async def control(emulators: Emulators) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emulators.control_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://control") as client:
        yield client


async def test_info_names_the_production_and_the_sandbox_host(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    info = (await control.get("/emulator/v1/info")).json()["apns"]

    assert info["url"] == f"https://127.0.0.1:{emulators.apns_server.port}"
    assert info["sandbox_url"] == f"https://127.0.0.1:{emulators.apns_sandbox_server.port}"
    assert info["url"] != info["sandbox_url"]


@pytest.mark.parametrize("environment", ["sandbox", "production"])
async def test_a_token_of_one_environment_is_a_bad_device_token_on_the_other(
    emulators: Emulators,
    connect: Connect,
    control: httpx.AsyncClient,
    certificate: ApnsPushCertificate,
    environment: str,
) -> None:
    answer = await control.post(
        "/emulator/v1/tokens",
        json={"platform": "ios", "token": TOKEN, "environment": environment},
    )
    servers = {"production": emulators.apns_server, "sandbox": emulators.apns_sandbox_server}
    other = "production" if environment == "sandbox" else "sandbox"

    own = await push(await connect(certificate, server=servers[environment]))
    foreign = await push(await connect(certificate, server=servers[other]))

    assert answer.json() == {"platform": "ios", "token": TOKEN, "environment": environment}
    assert own.status == 200
    assert (foreign.status, reason(foreign)) == (400, "BadDeviceToken")


async def test_an_environment_and_an_outcome_together(
    emulators: Emulators,
    connect: Connect,
    control: httpx.AsyncClient,
    certificate: ApnsPushCertificate,
) -> None:
    answer = await control.post(
        "/emulator/v1/tokens",
        json={
            "platform": "ios",
            "token": TOKEN,
            "environment": "sandbox",
            "outcome": "Unregistered",
        },
    )

    on_sandbox = await push(await connect(certificate, server=emulators.apns_sandbox_server))
    on_production = await push(await connect(certificate))

    assert answer.status_code == 200
    assert answer.json()["outcome"] == "Unregistered"
    assert (on_sandbox.status, reason(on_sandbox)) == (410, "Unregistered")
    assert (on_production.status, reason(on_production)) == (400, "BadDeviceToken")


@pytest.mark.parametrize(
    "body",
    [
        {"platform": "ios", "token": TOKEN},
        {"platform": "ios", "token": TOKEN, "environment": "staging"},
        {"platform": "android", "token": "t", "environment": "sandbox"},
        {"platform": "ios", "token": TOKEN, "environment": "sandbox", "outcome": "Nope"},
    ],
)
async def test_bad_environment_requests_are_400_and_change_nothing(
    emulators: Emulators, control: httpx.AsyncClient, body: dict[str, str]
) -> None:
    response = await control.post("/emulator/v1/tokens", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert emulators.state.token_environment("ios", TOKEN) is None
