"""FCM v1 pure parts: service account, assertion, send body, answer classification."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushgate.providers import fcm
from pushgate.providers.errors import CredentialError
from tests.support.provider_keys import KeyPair, pkcs8, service_account_info

LOCAL_TOKEN_URI = "https://127.0.0.1:9443/token"


@pytest.fixture
def info(rsa_key: KeyPair) -> dict[str, Any]:
    return service_account_info(rsa_key, LOCAL_TOKEN_URI)


# --------------------------------------------------------------------------- service account


def test_a_service_account_parses_from_bytes_text_or_dict(info: dict[str, Any]) -> None:
    for data in (json.dumps(info).encode(), json.dumps(info), info):
        account = fcm.ServiceAccount.parse(data)
        assert account.project_id == "demo-project"
        assert account.private_key_id == "kid-123"
        assert account.client_email == info["client_email"]
        assert account.token_uri == LOCAL_TOKEN_URI
    assert "PRIVATE KEY" not in repr(account)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "authorized_user"}, '"type" must be "service_account"'),
        ({"project_id": ""}, "lacks project_id"),
        ({"private_key_id": None}, "lacks private_key_id"),
        ({"client_email": 5}, "lacks client_email"),
        ({"token_uri": "ftp://x/token"}, "not an http"),
        ({"client_email": "nobody"}, "not an email"),
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
            "readable",
        ),
    ],
)
def test_a_bad_service_account_is_refused_with_a_clear_message(
    info: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    info.update(change)
    with pytest.raises(CredentialError, match=message):
        fcm.ServiceAccount.parse(info)


def test_missing_fields_are_all_named(info: dict[str, Any]) -> None:
    del info["private_key"], info["token_uri"]
    with pytest.raises(CredentialError, match="lacks private_key, token_uri"):
        fcm.ServiceAccount.parse(info)


def test_a_service_account_must_hold_an_rsa_key(info: dict[str, Any]) -> None:
    info["private_key"] = pkcs8(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CredentialError, match="not an RSA key"):
        fcm.ServiceAccount.parse(info)


def test_a_service_account_must_be_a_json_object() -> None:
    with pytest.raises(CredentialError, match="not valid JSON"):
        fcm.ServiceAccount.parse(b"{nope")
    with pytest.raises(CredentialError, match="must be an object"):
        fcm.ServiceAccount.parse(b"[1]")


# --------------------------------------------------------------------------- assertion


def test_the_assertion_is_rs256_with_googles_claims_and_audience(
    info: dict[str, Any], rsa_key: KeyPair
) -> None:
    account = fcm.ServiceAccount.parse(info)
    now = time.time()
    token = fcm.assertion(account, now)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == "kid-123"
    claims = jwt.decode(
        token,
        rsa_key.public_key,
        algorithms=["RS256"],
        audience="https://oauth2.googleapis.com/token",  # not the local token_uri
    )
    assert claims == {
        "iss": info["client_email"],
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": int(now),
        "exp": int(now) + 3600,
    }


def test_the_token_request_is_a_jwt_bearer_grant(info: dict[str, Any]) -> None:
    account = fcm.ServiceAccount.parse(info)
    form = parse_qs(fcm.token_request_body(account, time.time()).decode(), strict_parsing=True)
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    [assertion] = form["assertion"]
    assert jwt.get_unverified_header(assertion)["kid"] == "kid-123"


# --------------------------------------------------------------------------- send


def test_build_send_sets_the_token_and_keeps_the_message() -> None:
    message = {"data": {"camp_id": "7"}, "android": {"priority": "HIGH", "ttl": "60s"}}
    path, body = fcm.build_send("demo-project", message, "tok-1")
    assert path == "/v1/projects/demo-project/messages:send"
    assert json.loads(body) == {
        "message": {
            "data": {"camp_id": "7"},
            "android": {"priority": "HIGH", "ttl": "60s"},
            "token": "tok-1",
        },
        "validate_only": False,
    }
    assert "token" not in message, "the caller's message is not changed"


def test_build_send_replaces_a_token_but_refuses_another_target() -> None:
    _, body = fcm.build_send("p", {"token": "old"}, "new")
    assert json.loads(body)["message"]["token"] == "new"
    with pytest.raises(ValueError):
        fcm.build_send("p", {"topic": "news"}, "t")
    with pytest.raises(ValueError):
        fcm.build_send("p", {}, "")


def test_the_project_id_is_escaped_in_the_path() -> None:
    path, _ = fcm.build_send("a/b c", {}, "t")
    assert path == "/v1/projects/a%2Fb%20c/messages:send"


# --------------------------------------------------------------------------- answers


def envelope(
    http: int, status: str, code: str | None, message: str = "", violations: Sequence[str] = ()
) -> bytes:
    details: list[dict[str, Any]] = []
    if code is not None:
        details.append(
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        )
    if violations:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": f, "description": "bad"} for f in violations],
            }
        )
    error = {"code": http, "message": message, "status": status, "details": details}
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(
    ("http", "status", "code", "kind", "reason"),
    [
        (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "rejected", "InvalidParameters"),
        (404, "NOT_FOUND", "UNREGISTERED", "dead_token", "NotRegistered"),
        (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "rejected", "MismatchSenderId"),
        (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "retry", "QUOTA_EXCEEDED"),
        (503, "UNAVAILABLE", "UNAVAILABLE", "retry", "UNAVAILABLE"),
        (500, "INTERNAL", "INTERNAL", "retry", "INTERNAL"),
        (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "credential", "THIRD_PARTY_AUTH_ERROR"),
    ],
)
def test_every_fcm_error_code_has_its_verdict(
    http: int, status: str, code: str, kind: str, reason: str
) -> None:
    verdict = fcm.classify(http, {}, envelope(http, status, code, "Some message."))
    assert (verdict.kind, verdict.reason, verdict.status) == (kind, reason, http)
    assert code in verdict.detail


def test_success_is_ok() -> None:
    verdict = fcm.classify(200, {}, b'{"name":"projects/p/messages/0:123"}')
    assert (verdict.kind, verdict.status) == ("ok", 200)


def test_invalid_argument_naming_message_token_is_a_dead_token() -> None:
    by_field = envelope(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "x", ["message.token"])
    verdict = fcm.classify(400, {}, by_field)
    assert (verdict.kind, verdict.reason) == ("dead_token", "InvalidRegistration")


def test_invalid_argument_without_a_token_violation_retires_nothing() -> None:
    # The message alone is no proof (providers.md): only the field violation is.
    by_text = envelope(
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    )
    verdict = fcm.classify(400, {}, by_text)
    assert (verdict.kind, verdict.reason) == ("rejected", "InvalidParameters")


def test_quota_exceeded_waits_at_least_a_minute() -> None:
    quota = envelope(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.")
    assert fcm.classify(429, {}, quota).retry_after == 60
    assert fcm.classify(429, {"retry-after": "5"}, quota).retry_after == 60
    assert fcm.classify(429, {"retry-after": "90"}, quota).retry_after == 90


def test_invalid_argument_about_another_field_is_rejected() -> None:
    by_field = envelope(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "x", ["message.data[0].value"])
    by_text = envelope(
        400, "INVALID_ARGUMENT", None, "Invalid value at 'message.android.ttl' (Duration)"
    )
    for body in (by_field, by_text):
        verdict = fcm.classify(400, {}, body)
        assert (verdict.kind, verdict.reason) == ("rejected", "InvalidParameters")


def test_an_expired_access_token_asks_for_a_new_one() -> None:
    verdict = fcm.classify(401, {}, envelope(401, "UNAUTHENTICATED", None, "Expired OAuth token"))
    assert (verdict.kind, verdict.reason, verdict.refresh_auth) == (
        "credential",
        "UNAUTHENTICATED",
        True,
    )


def test_answers_without_an_error_code_fall_back_on_the_status() -> None:
    assert fcm.classify(403, {}, envelope(403, "PERMISSION_DENIED", None)).kind == "credential"
    assert fcm.classify(404, {}, envelope(404, "NOT_FOUND", None)).kind == "rejected"
    assert fcm.classify(502, {}, b"<html>bad gateway</html>").kind == "retry"
    assert fcm.classify(429, {}, b"").kind == "retry"
    assert fcm.classify(413, {}, b"").kind == "rejected"


def test_retry_after_is_honoured() -> None:
    verdict = fcm.classify(503, {"retry-after": "12"}, envelope(503, "UNAVAILABLE", "UNAVAILABLE"))
    assert verdict.retry_after == 12.0
