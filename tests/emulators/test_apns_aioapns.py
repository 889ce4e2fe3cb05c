"""The APNs emulator driven by the real third-party client aioapns (token auth and certificate
auth, no ALPN, `host` header instead of `:authority`, answers matched by the echoed apns-id)."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aioapns import APNs, NotificationRequest, PushType
from aioapns.connection import APNsProductionClientProtocol
from aioapns.exceptions import ConnectionError as ApnsConnectionError
from aioapns.exceptions import MaxAttemptsExceeded

from pushgate.emulators import ApnsCredential, Emulators
from pushgate.emulators.credentials import ApnsPushCertificate, generate_apns_certificate
from pushgate.emulators.server import HttpServer

TOKEN = "a" * 64


def client_for(emulators: Emulators, credential: ApnsCredential) -> APNs:
    """An aioapns client whose connections go to the emulator and trust its CA.

    aioapns connects to its protocol class's APNS_SERVER/APNS_PORT, so a subclass names the
    emulator; the emulator's CA goes in through aioapns' `ssl_context` argument.
    """
    client = APNs(
        key=credential.private_key_pem,
        key_id=credential.key_id,
        team_id=credential.team_id,
        topic=credential.bundle_id,
        ssl_context=emulators.ca.client_context(),
        max_connection_attempts=1,
    )

    class EmulatorProtocol(APNsProductionClientProtocol):
        APNS_SERVER = emulators.apns_server.host
        APNS_PORT = emulators.apns_server.port

    client.pool.protocol_class = EmulatorProtocol
    return client


@pytest.fixture
async def apns_client(
    emulators: Emulators,
) -> AsyncIterator[Callable[[ApnsCredential], APNs]]:
    clients: list[APNs] = []

    def make(credential: ApnsCredential) -> APNs:
        clients.append(client_for(emulators, credential))
        return clients[-1]

    yield make
    for client in clients:
        client.pool.close()
    await asyncio.sleep(0.05)


def _point_at(client: APNs, server: HttpServer) -> None:
    class EmulatorProtocol(APNsProductionClientProtocol):
        APNS_SERVER = server.host
        APNS_PORT = server.port

    client.pool.protocol_class = EmulatorProtocol


CertClient = Callable[..., APNs]


@pytest.fixture
async def cert_client(emulators: Emulators, tmp_path: Path) -> AsyncIterator[CertClient]:
    """aioapns in certificate mode (`client_cert`: a PEM file with the key and certificate),
    on the production host unless `sandbox`; `topic=None` lets aioapns read the UID."""
    clients: list[APNs] = []

    def make(
        certificate: ApnsPushCertificate,
        topic: str | None = "com.example.app",
        sandbox: bool = False,
    ) -> APNs:
        path = certificate.write_identity(tmp_path / f"{uuid.uuid4()}.pem")
        client = APNs(
            client_cert=str(path),
            topic=topic,
            use_sandbox=sandbox,
            ssl_context=emulators.ca.client_context(),
            max_connection_attempts=1,
        )
        _point_at(client, emulators.apns_sandbox_server if sandbox else emulators.apns_server)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.pool.close()
    await asyncio.sleep(0.05)


def alert(token: str = TOKEN, **kwargs: object) -> NotificationRequest:
    message = {"aps": {"alert": {"title": "Hi", "body": "there"}, "badge": 1}, "campaign": 7}
    return NotificationRequest(device_token=token, message=message, **kwargs)  # type: ignore[arg-type]


async def test_a_push_with_a_valid_key_is_accepted_and_recorded(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    credential = emulators.generate_apns_credential("com.example.app")
    request = alert(priority=10, push_type=PushType.ALERT, collapse_key="c1", time_to_live=60)

    result = await apns_client(credential).send_notification(request)

    assert result.is_successful, result.description
    assert result.notification_id == request.notification_id
    [delivery] = emulators.state.deliveries(platform="ios")
    assert delivery.token == TOKEN
    assert delivery.payload == {
        "aps": {"alert": {"title": "Hi", "body": "there"}, "badge": 1},
        "campaign": 7,
    }
    assert delivery.headers["apns-topic"] == "com.example.app"
    assert delivery.headers["apns-push-type"] == "alert"
    assert delivery.headers["apns-collapse-id"] == "c1"
    assert delivery.headers["apns-id"] == request.notification_id
    assert not any(name.startswith(":") for name in delivery.headers)


async def test_many_concurrent_pushes_on_a_new_connection_all_succeed(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    client = apns_client(emulators.generate_apns_credential())
    tokens = [f"{i:064x}" for i in range(40)]

    results = await asyncio.gather(*(client.send_notification(alert(t)) for t in tokens))

    assert all(r.is_successful for r in results)
    assert sorted(d.token or "" for d in emulators.state.deliveries()) == sorted(tokens)


async def test_an_unregistered_token_gets_410_with_the_time_it_became_invalid(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    before = int(time.time() * 1000)
    emulators.state.set_token_outcome("ios", TOKEN, "Unregistered")

    result = await apns_client(emulators.generate_apns_credential()).send_notification(alert())

    assert (result.status, result.description) == ("410", "Unregistered")
    assert result.timestamp is not None
    assert before <= result.timestamp <= int(time.time() * 1000)
    assert emulators.state.deliveries() == []


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("ExpiredToken", "410"), ("BadDeviceToken", "400"), ("DeviceTokenNotForTopic", "400")],
)
async def test_a_token_outcome_set_by_control_reaches_the_client(
    emulators: Emulators,
    apns_client: Callable[[ApnsCredential], APNs],
    outcome: str,
    status: str,
) -> None:
    emulators.state.set_token_outcome("ios", TOKEN, outcome)

    result = await apns_client(emulators.generate_apns_credential()).send_notification(alert())

    assert (result.status, result.description) == (status, outcome)


async def test_a_malformed_device_token_is_a_bad_device_token(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    client = apns_client(emulators.generate_apns_credential())

    result = await client.send_notification(alert("not-hex"))

    assert (result.status, result.description) == ("400", "BadDeviceToken")


async def test_a_key_the_emulator_does_not_know_is_an_invalid_provider_token(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    known = emulators.generate_apns_credential()
    unknown = ApnsCredential("UNKNOWNKEY", known.team_id, known.bundle_id, known.private_key_pem)

    result = await apns_client(unknown).send_notification(alert())

    assert (result.status, result.description) == ("403", "InvalidProviderToken")


async def test_a_topic_outside_the_keys_bundle_ids_is_disallowed(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    client = apns_client(emulators.generate_apns_credential("com.example.app"))

    result = await client.send_notification(alert(apns_topic="com.other.app"))

    assert (result.status, result.description) == ("400", "TopicDisallowed")


async def test_a_background_push_at_priority_10_is_an_invalid_push_type(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    client = apns_client(emulators.generate_apns_credential())

    result = await client.send_notification(alert(push_type=PushType.BACKGROUND, priority=10))

    assert (result.status, result.description) == ("400", "InvalidPushType")


async def test_a_payload_over_4096_bytes_is_too_large(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    client = apns_client(emulators.generate_apns_credential())
    big = NotificationRequest(device_token=TOKEN, message={"aps": {"alert": "x" * 4100}})

    result = await client.send_notification(big)

    assert (result.status, result.description) == ("413", "PayloadTooLarge")


async def test_the_client_recovers_after_a_rejection_on_the_same_connection(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    client = apns_client(emulators.generate_apns_credential())
    emulators.state.set_token_outcome("ios", "b" * 64, "BadDeviceToken")

    first = await client.send_notification(alert())
    rejected = await client.send_notification(alert("b" * 64))
    after = await asyncio.gather(*(client.send_notification(alert()) for _ in range(10)))

    assert first.is_successful and not rejected.is_successful
    assert all(r.is_successful for r in after)
    assert len(emulators.state.deliveries()) == 11


async def test_an_injected_fault_reaches_the_client_as_service_unavailable(
    emulators: Emulators, apns_client: Callable[[ApnsCredential], APNs]
) -> None:
    from pushgate.emulators import Fault

    emulators.state.set_fault(Fault("ios", 503, 1.0, retry_after=2))
    client = apns_client(emulators.generate_apns_credential())
    notification_id = str(uuid.uuid4())

    result = await client.send_notification(alert(notification_id=notification_id))

    assert (result.status, result.description) == ("503", "ServiceUnavailable")
    assert result.notification_id == notification_id


# certificate auth


# aioapns reads the certificate's UID with a pyOpenSSL call that pyOpenSSL now deprecates.
@pytest.mark.filterwarnings("ignore:X509.get_subject is deprecated:DeprecationWarning")
async def test_certificate_mode_pushes_without_a_provider_token(
    emulators: Emulators, cert_client: CertClient, rsa_keys: tuple[str, str]
) -> None:
    certificate = emulators.generate_apns_certificate(
        "com.example.app", private_key_pem=rsa_keys[0]
    )
    client = cert_client(certificate, topic=None)  # aioapns takes the topic from the UID

    results = await asyncio.gather(
        *(client.send_notification(alert(f"{i:064x}")) for i in range(5))
    )

    assert all(r.is_successful for r in results), [r.description for r in results]
    deliveries = emulators.state.deliveries(platform="ios")
    assert len(deliveries) == 5
    assert all("authorization" not in d.headers for d in deliveries)
    assert {d.headers["apns-topic"] for d in deliveries} == {"com.example.app"}


async def test_certificate_mode_on_the_sandbox_host(
    emulators: Emulators, cert_client: CertClient, rsa_keys: tuple[str, str]
) -> None:
    certificate = emulators.generate_apns_certificate(
        "com.example.app", kind="sandbox", private_key_pem=rsa_keys[0]
    )

    on_sandbox = await cert_client(certificate, sandbox=True).send_notification(alert())
    on_production = await cert_client(certificate).send_notification(alert())

    assert on_sandbox.is_successful, on_sandbox.description
    assert (on_production.status, on_production.description) == (
        "403",
        "BadCertificateEnvironment",
    )


async def test_certificate_mode_with_a_topic_the_certificate_does_not_cover(
    emulators: Emulators, cert_client: CertClient, rsa_keys: tuple[str, str]
) -> None:
    certificate = emulators.generate_apns_certificate(
        "com.example.app", private_key_pem=rsa_keys[0]
    )

    result = await cert_client(certificate, topic="com.other.app").send_notification(alert())

    assert (result.status, result.description) == ("400", "TopicDisallowed")


async def test_certificate_mode_a_token_of_the_other_environment_is_a_bad_device_token(
    emulators: Emulators, cert_client: CertClient, rsa_keys: tuple[str, str]
) -> None:
    certificate = emulators.generate_apns_certificate(
        "com.example.app", private_key_pem=rsa_keys[0]
    )
    emulators.state.set_token_environment("ios", TOKEN, "sandbox")

    result = await cert_client(certificate).send_notification(alert())

    assert (result.status, result.description) == ("400", "BadDeviceToken")


async def test_certificate_mode_with_a_certificate_the_emulator_does_not_accept(
    emulators: Emulators, cert_client: CertClient, rsa_keys: tuple[str, str]
) -> None:
    stranger = generate_apns_certificate(
        None, bundle_id="com.example.app", private_key_pem=rsa_keys[1]
    )

    with pytest.raises((MaxAttemptsExceeded, ApnsConnectionError, ssl.SSLError, OSError)):
        await cert_client(stranger).send_notification(alert())
    assert emulators.state.deliveries() == []
