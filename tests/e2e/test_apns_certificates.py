"""APNs certificate auth end to end: a `.p12` uploaded to `POST /v1/settings/certificate/apns`
delivers through `pushgate serve --emulate` over mutual TLS, with no provider token; the
emulator's refusals become fail records; an unusable `.p12` is refused with 406 and changes
nothing stored.

Sources: contract.md ("Credentials", "Emulators"), providers.md ("Corrections and additions").
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pushgate.emulators.credentials import ApnsPushCertificate, generate_apns_certificate
from tests.support.emulated import (
    Control,
    Standalone,
    create_emulator_partner,
    device_token,
    fail_records,
    notification,
    wait_for,
    wait_jobs_final,
)
from tests.support.server import Partner, Server

BUNDLE = "com.example.pushgate"
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def key_pem() -> str:
    """One RSA key for the module's certificates (each certificate is new)."""
    return generate_apns_certificate(None, bundle_id=BUNDLE).private_key_pem


def p12(key_pem: str, **options: Any) -> ApnsPushCertificate:
    """A push certificate made here, known to no emulator until it is uploaded."""
    options.setdefault("password", "s3cret")
    return generate_apns_certificate(None, bundle_id=BUNDLE, private_key_pem=key_pem, **options)


def upload(partner: Partner, body: dict[str, Any]) -> httpx.Response:
    return partner.server.client.post(
        "/v1/settings/certificate/apns", json=body, headers={"X-API-KEY": partner.api_key}
    )


def stored_ios_credential(partner: Partner) -> tuple[Any, ...]:
    with contextlib.closing(partner.server.db()) as conn:
        row = conn.execute(
            "SELECT c.kind, c.validated, c.detail, c.ref, c.data, c.updated_at"
            " FROM credentials c JOIN partners p ON p.id = c.partner_id"
            " WHERE p.name = ? AND c.platform = 'ios'",
            (partner.name,),
        ).fetchone()
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)


def send(partner: Partner, environment: str = "production") -> str:
    """One iOS device, one push to it; returns the device's token."""
    token = device_token("ios")
    uuid = f"cert-{os.urandom(4).hex()}"
    partner.session({"uuid": uuid}, platform="ios", token=token, environment=environment)
    answer = partner.push({"notifications": [notification(uuid)]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["successes"] == [{"INSIDER.device_token": token}]
    return token


def device_status(partner: Partner, token: str) -> str:
    with contextlib.closing(partner.server.db()) as conn:
        row = conn.execute("SELECT status FROM devices WHERE token = ?", (token,)).fetchone()
    return str(row[0])


def test_an_uploaded_p12_delivers_without_an_authorization_header(
    partner: Partner, control: Control, key_pem: str
) -> None:
    certificate = p12(key_pem)
    answer = upload(partner, certificate.as_upload())
    assert (answer.status_code, answer.json()) == (200, {"platform": "ios", "validated": True})

    token = send(partner)

    control.wait_delivered([token])
    [delivery] = control.deliveries(token=token)
    assert "authorization" not in delivery["headers"]
    assert delivery["headers"]["apns-topic"] == BUNDLE
    assert delivery["payload"]["aps"]["alert"]["title"] == "A title"
    assert [j["state"] for j in wait_jobs_final(partner, 1, 20, [token])] == ["done"]


def test_a_sandbox_device_is_sent_to_the_sandbox_host(
    partner: Partner, control: Control, key_pem: str
) -> None:
    info = control.info()["apns"]
    assert info["sandbox_url"] != info["url"]
    # Usable on production only: refused by the sandbox host, which proves it was asked.
    certificate = p12(key_pem, kind="production")
    assert upload(partner, certificate.as_upload()).status_code == 200

    production = send(partner)
    sandbox = send(partner, environment="sandbox")

    control.wait_delivered([production])
    wait_jobs_final(partner, 2, 20)
    [failure] = fail_records(partner, [sandbox])
    assert failure["reason"] == "BadCertificateEnvironment"
    assert device_status(partner, sandbox) == "active"  # the partner's configuration, not the token


def test_a_certificate_the_emulator_refuses_is_a_fail_record(
    partner: Partner, control: Control, key_pem: str
) -> None:
    # Uploads (no UID to check against the bundle id), but names no app: APNs refuses it.
    certificate = p12(key_pem, uid=None)
    assert upload(partner, certificate.as_upload()).status_code == 200

    token = send(partner)

    [job] = wait_jobs_final(partner, 1, 20, [token])
    [failure] = fail_records(partner, [token])
    assert job["state"] == "failed"
    assert failure["reason"] == "InvalidCertificate"
    assert "BadCertificate" in failure["detail"]
    assert control.deliveries(token=token) == []
    assert stored_ios_credential(partner)[1] in (0, False)  # no longer used
    assert pushgate_is_up(partner)


def pushgate_is_up(partner: Partner) -> bool:
    return bool(wait_for(lambda: partner.server.client.get("/healthz").status_code == 200, 5))


@pytest.mark.parametrize(
    ("options", "body_change", "message"),
    [
        ({"not_before": NOW - datetime.timedelta(days=60), "not_after": NOW}, {}, "expired"),
        ({}, {"bundle_id": "com.other.app"}, "not 'com.other.app'"),
        ({}, {"password": "wrong"}, "password is wrong"),
        ({}, {"p12": "bm90IGEgcDEy"}, "cannot be opened"),
    ],
)
def test_an_unusable_p12_is_406_kept_but_not_used(
    partner: Partner,
    control: Control,
    key_pem: str,
    options: dict[str, Any],
    body_change: dict[str, str],
    message: str,
) -> None:
    good = p12(key_pem)
    assert upload(partner, good.as_upload()).status_code == 200
    before = stored_ios_credential(partner)

    answer = upload(partner, {**p12(key_pem, **options).as_upload(), **body_change})

    assert answer.status_code == 406
    assert answer.json()["error"] == "invalid_certificate"
    assert message in answer.json()["message"]
    # contract.md: the credential is kept but not used (it replaced the good one).
    kind, validated, detail, _ref, _data, _updated = stored_ios_credential(partner)
    assert (kind, validated) == (before[0], 0)
    assert detail is not None and message in detail
    # Good again: sending resumes.
    assert upload(partner, good.as_upload()).status_code == 200
    token = send(partner)
    control.wait_delivered([token])


def test_pushgate_emulate_serves_both_environments(
    standalone: Standalone, serve_against: Callable[[], Server], key_pem: str
) -> None:
    assert standalone.control is not None and standalone.log_path is not None
    info = standalone.control.info()["apns"]
    assert info["sandbox_url"] != info["url"]
    assert info["sandbox_url"] in standalone.log_path.read_text()  # printed at start
    srv = serve_against()
    partner = create_emulator_partner(standalone.data_dir, srv)
    # Usable on the sandbox only: delivered only if PUSHGATE_APNS_SANDBOX_URL names the sandbox.
    certificate = p12(key_pem, kind="sandbox")
    assert upload(partner, certificate.as_upload()).status_code == 200

    token = send(partner, environment="sandbox")

    standalone.control.wait_delivered([token])
    assert "authorization" not in standalone.control.deliveries(token=token)[0]["headers"]
