"""APNs pure parts: provider token, .p8 loading, request headers, answer classification."""

from __future__ import annotations

import itertools
import random
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushgate.providers import apns
from pushgate.providers.errors import CredentialError, InvalidRequest
from tests.support.provider_keys import KeyPair, pkcs8

KEY_ID = "ABC123DEFG"
TEAM_ID = "DEF123GHIJ"
TOKEN = "a1" * 32
T0 = 1_800_000_000.0


def signer(key: KeyPair) -> apns.ApnsTokenSigner:
    return apns.ApnsTokenSigner(key.private_pem, KEY_ID, TEAM_ID)


# --------------------------------------------------------------------------- provider token


def test_the_provider_token_is_an_es256_jwt_with_kid_iss_and_iat(apns_key: KeyPair) -> None:
    now = time.time()
    token = signer(apns_key).token(now)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID}
    claims = jwt.decode(token, apns_key.public_key, algorithms=["ES256"])
    assert claims == {"iss": TEAM_ID, "iat": int(now)}


def test_the_token_is_reused_for_45_minutes_then_rotated(apns_key: KeyPair) -> None:
    s = signer(apns_key)
    first = s.token(T0)
    assert s.token(T0 + 45 * 60 - 1) == first
    second = s.token(T0 + 45 * 60)
    assert second != first
    assert jwt.decode(second, options={"verify_signature": False})["iat"] == int(T0) + 45 * 60
    assert s.issued_at == int(T0) + 45 * 60


def test_a_refresh_within_20_minutes_keeps_the_current_token(apns_key: KeyPair) -> None:
    s = signer(apns_key)
    first = s.token(T0)
    assert s.refresh(T0 + 20 * 60 - 1) is False
    assert s.token(T0 + 20 * 60 - 1) == first
    assert s.refresh(T0 + 20 * 60) is True
    assert s.token(T0 + 20 * 60) != first
    assert s.issued_at == int(T0) + 20 * 60


def test_no_token_is_ever_signed_sooner_than_20_minutes_after_the_previous(
    apns_key: KeyPair,
) -> None:
    s = signer(apns_key)
    rng = random.Random(7)
    now = T0
    issued: list[int] = []
    for _ in range(400):
        now += rng.choice([1, 30, 300, 600, 1200])
        if rng.random() < 0.5:
            s.refresh(now)  # after ExpiredProviderToken, at any moment
        s.token(now)
        if not issued or s.issued_at != issued[-1]:
            assert s.issued_at is not None
            issued.append(s.issued_at)
    gaps = [b - a for a, b in itertools.pairwise(issued)]
    assert len(gaps) > 20
    assert min(gaps) >= 20 * 60
    assert max(gaps) <= 45 * 60 + 1200  # rotated on schedule, never kept for an hour


def test_a_clock_stepping_back_keeps_the_current_token(apns_key: KeyPair) -> None:
    s = signer(apns_key)
    first = s.token(T0)
    assert s.token(T0 - 3600) == first
    assert s.refresh(T0 - 3600) is False


def test_the_rotation_period_must_stay_between_20_and_60_minutes(apns_key: KeyPair) -> None:
    with pytest.raises(ValueError):
        apns.ApnsTokenSigner(apns_key.private_pem, KEY_ID, TEAM_ID, rotate_after=600)
    with pytest.raises(ValueError):
        apns.ApnsTokenSigner(apns_key.private_pem, KEY_ID, TEAM_ID, rotate_after=3600)


# --------------------------------------------------------------------------- .p8 keys


def test_load_p8_accepts_the_file_as_downloaded_and_common_paste_variants(
    apns_key: KeyPair,
) -> None:
    pem = apns_key.private_pem
    body = "".join(pem.strip().splitlines()[1:-1])
    for variant in (pem, pem.encode(), pem.replace("\n", "\r\n"), pem.replace("\n", "\\n"), body):
        key = apns.load_p8(variant)
        assert key.public_key().public_numbers() == apns_key.public_key.public_numbers()


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("", "empty"),
        ("hello world!", "not a PEM"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "not a readable"),
    ],
)
def test_load_p8_rejects_what_is_not_a_key(pem: str, message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        apns.load_p8(pem)


def test_load_p8_rejects_keys_that_are_not_ec_p256(rsa_key: KeyPair) -> None:
    with pytest.raises(CredentialError, match="not an EC key"):
        apns.load_p8(rsa_key.private_pem)
    with pytest.raises(CredentialError, match="P-256"):
        apns.load_p8(pkcs8(ec.generate_private_key(ec.SECP384R1())))


def test_load_p8_rejects_an_encrypted_key() -> None:
    encrypted = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        .decode()
    )
    with pytest.raises(CredentialError, match="encrypted"):
        apns.load_p8(encrypted)


def test_signer_rejects_blank_ids(apns_key: KeyPair) -> None:
    with pytest.raises(CredentialError, match="key_id"):
        apns.ApnsTokenSigner(apns_key.private_pem, " ", TEAM_ID)
    with pytest.raises(CredentialError, match="team_id"):
        apns.ApnsTokenSigner(apns_key.private_pem, KEY_ID, "A B")


# --------------------------------------------------------------------------- requests


def test_build_request_uses_the_apns_path_and_header_names() -> None:
    apns_id = "3F2504E0-4F89-41D3-9A0C-0305E82C3301"
    path, headers = apns.build_request(
        TOKEN,
        b'{"aps":{}}',
        topic="com.example.app",
        push_type="alert",
        priority=10,
        expiration=1_800_000_100,
        apns_id=apns_id,
        bearer="JWT",
        collapse_id="sale",
    )
    assert path == f"/3/device/{TOKEN}"
    assert headers == [
        ("apns-id", apns_id.lower()),
        ("apns-topic", "com.example.app"),
        ("apns-push-type", "alert"),
        ("apns-priority", "10"),
        ("apns-expiration", "1800000100"),
        ("apns-collapse-id", "sale"),
        ("authorization", "bearer JWT"),
    ]


def test_build_request_without_bearer_or_apns_id_omits_those_headers() -> None:
    _, headers = apns.build_request(
        TOKEN, b"{}", topic="t", push_type="background", priority=5, expiration=0
    )
    names = [name for name, _ in headers]
    assert "authorization" not in names
    assert "apns-id" not in names
    assert ("apns-priority", "5") in headers


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"device_token": ""}, "MissingDeviceToken"),
        ({"device_token": "zz" * 32}, "BadDeviceToken"),
        ({"device_token": "abc"}, "BadDeviceToken"),
        ({"device_token": "ab/../cd"}, "BadDeviceToken"),
        ({"topic": ""}, "MissingTopic"),
        ({"push_type": "banner"}, "InvalidPushType"),
        ({"priority": 7}, "BadPriority"),
        ({"push_type": "background", "priority": 10}, "BadPriority"),
        ({"expiration": -1}, "BadExpirationDate"),
        ({"payload": b""}, "PayloadEmpty"),
        ({"payload": b"x" * 4097}, "PayloadTooLarge"),
        ({"collapse_id": "c" * 65}, "BadCollapseId"),
        ({"apns_id": "not-a-uuid"}, "BadMessageId"),
    ],
)
def test_build_request_refuses_what_apns_would_refuse(
    changes: dict[str, object], reason: str
) -> None:
    args: dict[str, object] = {
        "device_token": TOKEN,
        "payload": b"{}",
        "topic": "t",
        "push_type": "alert",
        "priority": 10,
        "expiration": 0,
    }
    args.update(changes)
    with pytest.raises(InvalidRequest) as caught:
        apns.build_request(**args)  # type: ignore[arg-type]
    assert caught.value.reason == reason
    verdict = apns.local_verdict(caught.value)
    assert verdict.reason == reason
    assert verdict.status == 0
    expected = "dead_token" if reason in ("BadDeviceToken", "MissingDeviceToken") else "rejected"
    assert verdict.kind == expected


def aps_payload(size: int) -> bytes:
    """A JSON APNs payload of exactly `size` bytes (the body APNs receives: the payload
    itself)."""
    frame = b'{"aps":{"alert":""}}'
    payload = frame[:-3] + b"x" * (size - len(frame)) + frame[-3:]
    assert len(payload) == size
    return payload


def test_a_payload_of_exactly_4096_bytes_is_allowed() -> None:
    payload = aps_payload(4096)

    path, headers = apns.build_request(TOKEN, payload, topic="t")

    assert path == f"/3/device/{TOKEN}"
    assert headers == [
        ("apns-topic", "t"),
        ("apns-push-type", "alert"),
        ("apns-priority", "10"),
        ("apns-expiration", "0"),
    ]
    # One byte more is what APNs refuses: the limit is 4096 inclusive.
    with pytest.raises(InvalidRequest) as caught:
        apns.build_request(TOKEN, aps_payload(4097), topic="t")
    assert caught.value.reason == "PayloadTooLarge"


# --------------------------------------------------------------------------- answers


def body(reason: str) -> bytes:
    return b'{"reason":"' + reason.encode() + b'"}'


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (400, "BadCollapseId", "rejected"),
        (400, "BadDeviceToken", "dead_token"),
        (400, "BadExpirationDate", "rejected"),
        (400, "BadMessageId", "rejected"),
        (400, "BadPriority", "rejected"),
        (400, "BadTopic", "rejected"),
        (400, "DeviceTokenNotForTopic", "rejected"),
        (400, "DuplicateHeaders", "rejected"),
        (400, "IdleTimeout", "retry"),
        (400, "InvalidPushType", "rejected"),
        (400, "MissingDeviceToken", "rejected"),
        (400, "MissingTopic", "rejected"),
        (400, "PayloadEmpty", "rejected"),
        (400, "TopicDisallowed", "rejected"),
        (403, "BadCertificate", "credential"),
        (403, "BadCertificateEnvironment", "rejected"),
        (403, "ExpiredProviderToken", "credential"),
        (403, "Forbidden", "credential"),
        (403, "InvalidProviderToken", "credential"),
        (403, "MissingProviderToken", "credential"),
        (404, "BadPath", "rejected"),
        (405, "MethodNotAllowed", "rejected"),
        (410, "Unregistered", "dead_token"),
        (410, "ExpiredToken", "dead_token"),
        (413, "PayloadTooLarge", "rejected"),
        (429, "TooManyProviderTokenUpdates", "retry"),
        (429, "TooManyRequests", "retry"),
        (500, "InternalServerError", "retry"),
        (503, "ServiceUnavailable", "retry"),
        (503, "Shutdown", "retry"),
    ],
)
def test_every_apns_reason_has_its_verdict(status: int, reason: str, kind: str) -> None:
    verdict = apns.classify(status, {"apns-id": "x"}, body(reason))
    assert (verdict.kind, verdict.reason, verdict.status) == (kind, reason, status)
    assert verdict.refresh_auth is (reason == "ExpiredProviderToken")


def test_success_is_ok() -> None:
    verdict = apns.classify(200, {"apns-id": "abc"}, b"")
    assert (verdict.kind, verdict.reason, verdict.status) == ("ok", "", 200)
    assert apns.classify(202, {}, b"").kind == "ok"


def test_410_carries_the_timestamp_in_milliseconds() -> None:
    verdict = apns.classify(410, {}, b'{"reason":"Unregistered","timestamp":1700000000123}')
    assert verdict.kind == "dead_token"
    assert verdict.timestamp_ms == 1700000000123
    assert apns.classify(410, {}, b'{"reason":"Unregistered"}').timestamp_ms is None


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert apns.classify(429, {"Retry-After": "30"}, body("TooManyRequests")).retry_after == 30
    dated = apns.classify(
        503,
        {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"},
        body("ServiceUnavailable"),
        now=1792567660.0,  # 2026-10-21 07:27:40 GMT
    )
    assert dated.retry_after == pytest.approx(20.0)


def test_answers_without_a_readable_body_fall_back_on_the_status() -> None:
    assert apns.classify(502, {}, b"<html>").kind == "retry"
    gone = apns.classify(410, {}, b"")
    assert (gone.kind, gone.reason) == ("dead_token", "Unregistered")
    assert apns.classify(403, {}, b"[]").kind == "credential"
    assert apns.classify(418, {}, b"").kind == "rejected"
