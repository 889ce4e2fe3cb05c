"""Credential uploads: POST /v1/settings/certificate/{firebase,apns,huawei}."""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import time
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from pushgate.emulators.credentials import (
    InMemoryCredentials,
    generate_apns_credential,
    generate_fcm_service_account,
)
from tests.support.server import Partner, Server


def upload(server: Server, provider: str, body: Any, api_key: str | None) -> httpx.Response:
    headers = {} if api_key is None else {"X-API-KEY": api_key}
    return server.client.post(f"/v1/settings/certificate/{provider}", json=body, headers=headers)


def info(server: Server) -> dict[str, Any]:
    return dict(server.client.get("/emulator/v1/info").json())


def credential_row(server: Server, partner: Partner, platform: str) -> tuple[Any, ...]:
    with contextlib.closing(server.db()) as conn:
        return tuple(
            conn.execute(
                "SELECT c.kind, c.validated, c.data FROM credentials c JOIN partners p"
                " ON p.id = c.partner_id WHERE p.name = ? AND c.platform = ?",
                (partner.name, platform),
            ).fetchone()
        )


def test_missing_api_key_is_400_and_wrong_key_is_403(server: Server) -> None:
    assert upload(server, "firebase", {}, None).json() == {"error": "No api key provided"}
    assert upload(server, "firebase", {}, None).status_code == 400
    wrong = upload(server, "firebase", {}, "pgk_wrong")
    assert (wrong.status_code, wrong.json()) == (403, {"error": "Invalid api key"})


def test_firebase_service_account_is_validated_against_its_token_uri(
    server: Server, partner: Partner
) -> None:
    account = generate_fcm_service_account(
        InMemoryCredentials(), token_uri=info(server)["fcm"]["token_url"]
    )
    r = upload(server, "firebase", account, partner.api_key)
    assert (r.status_code, r.json()) == (200, {"platform": "android", "validated": True})
    kind, validated, data = credential_row(server, partner, "android")
    assert (kind, validated) == ("uploaded", 1)
    assert account["private_key"].encode() not in bytes(data)  # sealed at rest
    assert account["client_email"].encode() not in bytes(data)


def test_uploaded_service_account_delivers_to_android(server: Server, partner: Partner) -> None:
    account = generate_fcm_service_account(
        InMemoryCredentials(), token_uri=info(server)["fcm"]["token_url"]
    )
    assert upload(server, "firebase", account, partner.api_key).status_code == 200
    time.sleep(2.5)  # the partner cache
    token = os.urandom(32).hex()
    partner.session({"uuid": "fcm-user"}, platform="android", token=token)
    body = {
        "identifiers": {"uuid": "fcm-user"},
        "camp_id": 3,
        "camp_name": "c",
        "title": "t",
        "message": "m",
        "image_url": "",
    }
    assert partner.push({"notifications": [body]}).json()["successes"] == [
        {"INSIDER.device_token": token}
    ]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = server.client.get("/emulator/v1/deliveries", params={"token": token}).json()
        if found:
            break
        time.sleep(0.1)
    assert found and found[0]["headers"]["authorization"].startswith("Bearer ")


def test_service_account_whose_token_uri_refuses_it_is_kept_but_not_validated(
    server: Server, partner: Partner
) -> None:
    account = generate_fcm_service_account(
        InMemoryCredentials(), token_uri=info(server)["fcm"]["token_url"]
    )
    account["private_key"] = generate_fcm_service_account(InMemoryCredentials(), token_uri="x")[
        "private_key"
    ]  # signs with a key that does not match the account's
    del account["private_key"]
    r = upload(server, "firebase", account, partner.api_key)
    assert r.status_code == 406
    assert r.json()["error"] == "invalid_certificate"
    assert set(r.json()) == {"error", "message"}
    assert credential_row(server, partner, "android")[1] == 0


def test_apns_p8_key_is_validated_and_stored(server: Server, partner: Partner) -> None:
    credential = generate_apns_credential(InMemoryCredentials(), bundle_id="com.example.app")
    r = upload(server, "apns", credential.as_upload(), partner.api_key)
    assert (r.status_code, r.json()) == (200, {"platform": "ios", "validated": True})


def test_apns_key_that_is_not_a_p8_is_406(server: Server, partner: Partner) -> None:
    body = {
        "key_id": "ABC123DEFG",
        "team_id": "DEF123GHIJ",
        "bundle_id": "com.x",
        "private_key": "nope",
    }
    r = upload(server, "apns", body, partner.api_key)
    assert r.status_code == 406
    assert r.json()["error"] == "invalid_certificate"
    assert credential_row(server, partner, "ios")[1] == 0


def _p12(not_after: datetime.datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Apple Push Services: com.example.app")]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    blob = pkcs12.serialize_key_and_certificates(
        b"push", key, cert, None, serialization.BestAvailableEncryption(b"secret")
    )
    return base64.b64encode(blob).decode()


def test_apns_p12_certificate_is_validated(server: Server, partner: Partner) -> None:
    p12 = _p12(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30))
    r = upload(
        server,
        "apns",
        {"p12": p12, "password": "secret", "bundle_id": "com.example.app"},
        partner.api_key,
    )
    assert (r.status_code, r.json()) == (200, {"platform": "ios", "validated": True})


def test_expired_or_wrong_password_p12_is_406(server: Server, partner: Partner) -> None:
    expired = _p12(datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1))
    r = upload(
        server,
        "apns",
        {"p12": expired, "password": "secret", "bundle_id": "com.x"},
        partner.api_key,
    )
    assert r.status_code == 406
    good = _p12(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30))
    r = upload(
        server, "apns", {"p12": good, "password": "wrong", "bundle_id": "com.x"}, partner.api_key
    )
    assert r.status_code == 406


def test_huawei_app_is_validated_by_the_token_endpoint(server: Server, partner: Partner) -> None:
    # The emulators accept uploaded credentials (contract.md), so a complete one validates.
    body = {"app_id": "100200300", "client_id": "100200300", "client_secret": "s3cret"}
    r = upload(server, "huawei", body, partner.api_key)
    assert (r.status_code, r.json()) == (200, {"platform": "huawei", "validated": True})
    incomplete = upload(server, "huawei", {"app_id": "100200300"}, partner.api_key)
    assert incomplete.status_code == 406
    assert credential_row(server, partner, "huawei")[1] == 0


def test_service_account_whose_token_uri_is_unreachable_is_not_validated(
    server: Server, partner: Partner
) -> None:
    account = generate_fcm_service_account(
        InMemoryCredentials(), token_uri="https://127.0.0.1:1/token"
    )
    r = upload(server, "firebase", account, partner.api_key)
    assert r.status_code == 406
    assert "token" in r.json()["message"]


def test_invalid_upload_replaces_a_validated_credential_and_the_platform_stops(
    server: Server, partner: Partner
) -> None:
    token = os.urandom(32).hex()
    partner.session({"uuid": "ios-user"}, platform="ios", token=token)
    body = {
        "key_id": "ABC123DEFG",
        "team_id": "DEF123GHIJ",
        "bundle_id": "com.x",
        "private_key": "nope",
    }
    assert upload(server, "apns", body, partner.api_key).status_code == 406
    time.sleep(2.5)
    push = {
        "identifiers": {"uuid": "ios-user"},
        "camp_id": 4,
        "camp_name": "c",
        "title": "t",
        "message": "m",
        "image_url": "",
    }
    answer = partner.push({"notifications": [push]}).json()
    assert answer == {"successes": [], "errors": {"InvalidCertificate": [{"uuid": "ios-user"}]}}


def test_huawei_default_category_and_importance_must_be_huaweis(
    server: Server, partner: Partner
) -> None:
    body = {"app_id": "100200301", "client_id": "100200301", "client_secret": "s3cret"}
    good = upload(
        server, "huawei", {**body, "category": "IM", "importance": "LOW"}, partner.api_key
    )
    assert (good.status_code, good.json()) == (200, {"platform": "huawei", "validated": True})
    for wrong in ({"category": "PROMOTION"}, {"category": "im"}, {"importance": "HIGH"}):
        r = upload(server, "huawei", {**body, **wrong}, partner.api_key)
        assert r.status_code == 406
        assert r.json()["error"] == "invalid_certificate"
        name = next(iter(wrong))
        allowed = {"category": "DEVICE_REMINDER, EXPRESS", "importance": "LOW, NORMAL"}[name]
        assert f"huawei {name}" in r.json()["message"]
        assert allowed in r.json()["message"]  # says which values Huawei takes
        assert credential_row(server, partner, "huawei")[1] == 0  # kept, not used
