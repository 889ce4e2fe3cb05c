"""Credentials from a directory of the caller's (as pushgate passes one backed by its database)
are accepted beside the generated ones; unknown ones are not."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushgate.emulators import ApnsKey, Emulators, FcmAccount, HmsApp, InMemoryCredentials
from pushgate.emulators.credentials import (
    ApnsCertificate,
    apns_key_from_private,
    fcm_account_from_service_account,
    generate_apns_certificate,
    generate_fcm_service_account,
)
from tests.emulators.h2client import H2Client


@dataclass
class UploadedCredentials:
    """A directory of the kind pushgate implements over its own storage: plain lookups."""

    apns: dict[tuple[str, str], ApnsKey] = field(default_factory=dict)
    fcm: dict[tuple[str, str], FcmAccount] = field(default_factory=dict)
    hms: dict[str, HmsApp] = field(default_factory=dict)
    certificates: list[ApnsCertificate] = field(default_factory=list)

    def apns_key(self, key_id: str, team_id: str) -> ApnsKey | None:
        return self.apns.get((key_id, team_id))

    def apns_certificates(self) -> Sequence[ApnsCertificate]:
        return self.certificates

    def fcm_account(self, client_email: str, key_id: str) -> FcmAccount | None:
        return self.fcm.get((client_email, key_id))

    def hms_app(self, client_id: str) -> HmsApp | None:
        return self.hms.get(client_id)


@pytest.fixture
async def uploaded(tmp_path: Path) -> AsyncIterator[tuple[Emulators, UploadedCredentials]]:
    directory = UploadedCredentials()
    running = Emulators(directory, ca_dir=tmp_path)
    await running.start()
    yield running, directory
    await running.stop()


def p8_key() -> str:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


async def apns_push(emulators: Emulators, key_id: str, team_id: str, private_key: str) -> int:
    bearer = jwt.encode(
        {"iss": team_id, "iat": int(time.time())},
        private_key,
        algorithm="ES256",
        headers={"kid": key_id},
    )
    client = await H2Client.connect(
        emulators.apns_server.host, emulators.apns_server.port, emulators.ca.client_context()
    )
    try:
        response = await client.request(
            "POST",
            "/3/device/" + "c" * 64,
            [
                ("apns-id", str(uuid.uuid4())),
                ("apns-topic", "com.uploaded.app"),
                ("authorization", f"bearer {bearer}"),
            ],
            b'{"aps": {"alert": "hi"}}',
        )
    finally:
        await client.close()
    return response.status


async def test_an_uploaded_p8_key_signs_accepted_apns_pushes(
    uploaded: tuple[Emulators, UploadedCredentials],
) -> None:
    emulators, directory = uploaded
    private_key = p8_key()
    key = apns_key_from_private("UPLOADKEY1", "TEAMUPLOAD", private_key, ["com.uploaded.app"])
    directory.apns[(key.key_id, key.team_id)] = key

    status = await apns_push(emulators, "UPLOADKEY1", "TEAMUPLOAD", private_key)

    assert status == 200


async def test_a_key_known_under_another_team_is_refused(
    uploaded: tuple[Emulators, UploadedCredentials],
) -> None:
    emulators, directory = uploaded
    private_key = p8_key()
    key = apns_key_from_private("UPLOADKEY1", "TEAMUPLOAD", private_key)
    directory.apns[(key.key_id, key.team_id)] = key

    status = await apns_push(emulators, "UPLOADKEY1", "OTHERTEAM1", private_key)

    assert status == 403


async def test_generated_credentials_work_beside_the_callers_directory(
    uploaded: tuple[Emulators, UploadedCredentials],
) -> None:
    emulators, _ = uploaded
    generated = emulators.generate_apns_credential("com.uploaded.app")

    status = await apns_push(
        emulators, generated.key_id, generated.team_id, generated.private_key_pem
    )

    assert status == 200


async def test_an_uploaded_push_certificate_is_accepted_as_a_tls_client_certificate(
    uploaded: tuple[Emulators, UploadedCredentials], rsa_keys: tuple[str, str], tmp_path: Path
) -> None:
    emulators, directory = uploaded
    # Made elsewhere, self-signed: known to the emulator only through the caller's directory.
    made = generate_apns_certificate(
        None, bundle_id="com.uploaded.app", private_key_pem=rsa_keys[0]
    )
    context = emulators.ca.client_context()
    context.load_cert_chain(made.write_identity(tmp_path / "push.pem"))

    async def push() -> int:
        client = await H2Client.connect(
            emulators.apns_server.host, emulators.apns_server.port, context
        )
        try:
            response = await client.request(
                "POST", "/3/device/" + "c" * 64, [("apns-id", str(uuid.uuid4()))], b'{"aps":{}}'
            )
        finally:
            await client.close()
        return response.status

    with pytest.raises((ConnectionError, ssl.SSLError)):
        await push()
    directory.certificates.append(made.certificate)

    assert await push() == 200


async def test_an_uploaded_service_account_obtains_an_fcm_access_token(
    uploaded: tuple[Emulators, UploadedCredentials], rsa_keys: tuple[str, str]
) -> None:
    emulators, directory = uploaded
    # A service account made elsewhere (registered only in a scratch directory), then "uploaded".
    info = generate_fcm_service_account(
        InMemoryCredentials(), token_uri=emulators.fcm_token_url, private_key_pem=rsa_keys[0]
    )
    account = fcm_account_from_service_account(info)
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": info["client_email"],
            "aud": "https://oauth2.googleapis.com/token",
            "scope": "https://www.googleapis.com/auth/firebase.messaging",
            "iat": now,
            "exp": now + 3600,
        },
        info["private_key"],
        algorithm="RS256",
        headers={"kid": info["private_key_id"]},
    )
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}

    async with httpx.AsyncClient(verify=emulators.ca.client_context()) as client:
        before = await client.post(emulators.fcm_token_url, data=form)
        directory.fcm[(account.client_email, account.key_id)] = account
        after = await client.post(emulators.fcm_token_url, data=form)

    assert before.status_code == 400
    assert after.status_code == 200
    assert account.project_id == info["project_id"]


async def test_an_uploaded_hms_app_obtains_a_token(
    uploaded: tuple[Emulators, UploadedCredentials],
) -> None:
    emulators, directory = uploaded
    directory.hms["10001"] = HmsApp(client_id="10001", client_secret="s3cret", app_id="10001")
    form = {"grant_type": "client_credentials", "client_id": "10001", "client_secret": "s3cret"}

    async with httpx.AsyncClient(verify=emulators.ca.client_context()) as client:
        response = await client.post(emulators.hms_token_url, data=form)

    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
