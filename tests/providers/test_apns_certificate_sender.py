"""ApnsSender with certificate auth (a `.p12` as stored by the upload), against the APNs
emulator's two hosts, and against a TLS server that refuses the certificate with an alert."""

from __future__ import annotations

import base64
import contextlib
import os
import select
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pushgate.credential_check import check_apns
from pushgate.emulators import Emulators
from pushgate.emulators.ca import LocalCA
from pushgate.emulators.credentials import ApnsPushCertificate, generate_apns_certificate
from pushgate.providers.senders import ApnsSender, Endpoints
from pushgate.providers.tls import make_ssl_context
from tests.support.provider_keys import KeyPair

TOKEN = "0123456789abcdef" * 4
PAYLOAD = b'{"aps":{"alert":"hi"}}'
BUNDLE = "com.example.app"


@pytest.fixture
async def emulators(tmp_path: Path) -> AsyncIterator[Emulators]:
    running = Emulators(ca_dir=tmp_path / "ca")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def stored(certificate: ApnsPushCertificate) -> dict[str, Any]:
    """The record the upload stores for this .p12 (and checks on the way)."""
    checked = check_apns(certificate.as_upload())
    assert checked.validated, checked.detail
    return checked.record


def sender_for(emulators: Emulators, record: dict[str, Any]) -> ApnsSender:
    endpoints = Endpoints(apns_url=emulators.apns_url, apns_sandbox_url=emulators.apns_sandbox_url)
    return ApnsSender.from_credential(
        record, endpoints=endpoints, ssl_context=make_ssl_context(emulators.ca.ca_pem)
    )


async def test_a_p12_credential_pushes_over_mutual_tls_without_a_provider_token(
    emulators: Emulators, rsa_key: KeyPair
) -> None:
    certificate = emulators.generate_apns_certificate(
        BUNDLE, password="pw", private_key_pem=rsa_key.private_pem
    )
    sender = sender_for(emulators, stored(certificate))
    try:
        production = await sender.send(TOKEN, PAYLOAD)
        sandbox = await sender.send(TOKEN, PAYLOAD, sandbox=True)
    finally:
        await sender.aclose()

    assert production.ok and sandbox.ok
    assert sender.signer is None
    deliveries = emulators.state.deliveries(platform="ios")
    assert len(deliveries) == 2
    assert all("authorization" not in d.headers for d in deliveries)
    assert {d.headers["apns-topic"] for d in deliveries} == {BUNDLE}


async def test_the_identity_stays_with_the_senders_own_connections(
    emulators: Emulators, rsa_key: KeyPair
) -> None:
    certificate = emulators.generate_apns_certificate(BUNDLE, private_key_pem=rsa_key.private_pem)
    trust = make_ssl_context(emulators.ca.ca_pem)
    trusted_before = trust.get_ca_certs(binary_form=True)

    sender = ApnsSender.from_credential(stored(certificate), ssl_context=trust)

    assert sender.identity is not None
    assert sender.identity.fingerprint == certificate.certificate.fingerprint
    assert sender.ssl_context is trust
    assert trust.get_ca_certs(binary_form=True) == trusted_before, "the shared context is unchanged"
    await sender.aclose()


async def test_a_sandbox_token_sent_as_production_is_delivered_on_the_sandbox(
    emulators: Emulators, rsa_key: KeyPair
) -> None:
    certificate = emulators.generate_apns_certificate(BUNDLE, private_key_pem=rsa_key.private_pem)
    emulators.state.set_token_environment("ios", TOKEN, "sandbox")
    sender = sender_for(emulators, stored(certificate))
    try:
        verdict = await sender.send(TOKEN, PAYLOAD)
    finally:
        await sender.aclose()

    assert verdict.ok and verdict.environment == "sandbox"
    assert len(emulators.state.deliveries()) == 1


async def test_a_sandbox_certificate_on_the_production_host_is_a_configuration_refusal(
    emulators: Emulators, rsa_key: KeyPair
) -> None:
    certificate = emulators.generate_apns_certificate(
        BUNDLE, kind="sandbox", private_key_pem=rsa_key.private_pem
    )
    sender = sender_for(emulators, stored(certificate))
    try:
        verdict = await sender.send(TOKEN, PAYLOAD)
        on_sandbox = await sender.send(TOKEN, PAYLOAD, sandbox=True)
    finally:
        await sender.aclose()

    assert (verdict.kind, verdict.reason, verdict.status) == (
        "rejected",
        "BadCertificateEnvironment",
        403,
    )
    assert on_sandbox.ok


async def test_a_certificate_naming_no_app_is_a_bad_certificate(
    emulators: Emulators, rsa_key: KeyPair
) -> None:
    certificate = emulators.generate_apns_certificate(
        BUNDLE, uid=None, private_key_pem=rsa_key.private_pem
    )
    sender = sender_for(emulators, stored(certificate))
    try:
        verdict = await sender.send(TOKEN, PAYLOAD)
    finally:
        await sender.aclose()

    assert (verdict.kind, verdict.reason, verdict.status) == ("credential", "BadCertificate", 403)


@pytest.fixture
def refusing_server() -> Iterator[tuple[int, LocalCA]]:
    """A TLS server (blocking sockets, which send their alerts) that asks for a client
    certificate and trusts none of ours: as APNs with a certificate Apple did not issue."""
    ca, stranger_ca = LocalCA.generate(), LocalCA.generate()
    context = ca.server_context(("h2",))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=stranger_ca.ca_pem)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            with (
                contextlib.suppress(OSError),
                raw,
                context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False) as tls,
            ):
                try:
                    tls.do_handshake()
                    tls.recv(1)
                except ssl.SSLError:
                    # Under TLS 1.3 the client has finished its side and sent its request by
                    # now: closing with those bytes unread would answer them with a RST, which
                    # can destroy the alert before the client reads it. Read until it closes.
                    while select.select([tls], [], [], 5)[0] and os.read(tls.fileno(), 65536):
                        pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], ca
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        listener.close()
        thread.join(5)


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_certificate_refused_in_the_handshake_is_a_bad_certificate(
    refusing_server: tuple[int, LocalCA], rsa_key: KeyPair, tls_max: ssl.TLSVersion
) -> None:
    port, ca = refusing_server
    certificate = generate_apns_certificate(
        None, bundle_id=BUNDLE, private_key_pem=rsa_key.private_pem
    )
    trust = make_ssl_context(ca.ca_pem)
    trust.maximum_version = tls_max  # read by the sender's connections
    url = f"https://127.0.0.1:{port}"
    sender = ApnsSender.from_credential(
        stored(certificate),
        endpoints=Endpoints(apns_url=url, apns_sandbox_url=url),
        ssl_context=trust,
    )
    try:
        verdict = await sender.send(TOKEN, PAYLOAD)
    finally:
        await sender.aclose()

    assert (verdict.kind, verdict.reason) == ("credential", "BadCertificate")
    assert "alert unknown ca" in verdict.detail


def test_the_upload_stores_the_certificate_for_the_emulator_and_a_ref_by_fingerprint(
    rsa_key: KeyPair,
) -> None:
    certificate = generate_apns_certificate(
        None, bundle_id=BUNDLE, password="pw", private_key_pem=rsa_key.private_pem
    )

    checked = check_apns(certificate.as_upload())

    assert checked.validated
    assert checked.ref == f"apns-cert:{certificate.certificate.fingerprint}"
    assert checked.record["type"] == "apns_certificate"
    assert checked.record["certificate"] == certificate.certificate_pem
    assert base64.b64decode(checked.record["p12"]) == certificate.p12
