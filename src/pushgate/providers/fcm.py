"""FCM HTTP v1: the pure parts (no I/O).

- `ServiceAccount.parse`: the service-account JSON as downloaded from Google.
- `assertion`: the RS256 JWT exchanged for an access token (JWT bearer grant).
- `build_send`: the path and body of one send, with `message.token` set.
- `classify`: an FCM answer as a `Verdict`.

Answers (providers.md): the error envelope's `details[].errorCode` decides; without one,
the HTTP status / `error.status` does.

======================  =====  ==========================  ========================
errorCode               HTTP   verdict                     reason
======================  =====  ==========================  ========================
(none, 2xx)             200    ok                          -
UNREGISTERED            404    dead_token                  NotRegistered
INVALID_ARGUMENT        400    dead_token, if a field      InvalidRegistration
                               violation names
                               `message.token`
INVALID_ARGUMENT        400    rejected, otherwise (a      InvalidParameters
                               payload problem)
SENDER_ID_MISMATCH      403    rejected (configuration:    MismatchSenderId
                               the device stays)
QUOTA_EXCEEDED          429    retry, after >= 60 s        QUOTA_EXCEEDED
UNAVAILABLE             503    retry                       UNAVAILABLE
INTERNAL                500    retry                       INTERNAL
THIRD_PARTY_AUTH_ERROR  401    credential                  THIRD_PARTY_AUTH_ERROR
(none) UNAUTHENTICATED  401    credential, refresh_auth    UNAUTHENTICATED
(none) PERMISSION_DENIED 403   credential                  PERMISSION_DENIED
(none) 429 / 5xx               retry                       the status name
(none) other 4xx               rejected                    the status name
======================  =====  ==========================  ========================

Only a `google.rpc.BadRequest` field violation naming `message.token` proves the token
malformed (providers.md): an INVALID_ARGUMENT that names another field, or none, is a
payload problem and retires nothing.

A 401 is reported as `credential` with `refresh_auth` set: the sender first fetches a new
access token and tries once more, and only a second 401 stands. QUOTA_EXCEEDED is the
project's quota, shared by every message of the credential: the sender pauses the whole
credential for at least `QUOTA_WAIT_S` (Google's guidance: wait at least a minute).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pushgate.jobs import VerdictKind
from pushgate.providers.access_token import AccessTokenCache
from pushgate.providers.errors import CredentialError
from pushgate.providers.verdict import Verdict, header
from pushgate.retry_after import parse_retry_after

__all__ = [
    "FCM_SCOPE",
    "FCM_URL",
    "GOOGLE_TOKEN_AUDIENCE",
    "AccessTokenCache",
    "ServiceAccount",
    "assertion",
    "build_send",
    "classify",
    "send_path",
    "token_request_body",
]

FCM_URL = "https://fcm.googleapis.com"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# Google's own clients send this audience even when token_uri points elsewhere.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME_S = 3600

_REQUIRED_FIELDS = ("project_id", "private_key_id", "private_key", "client_email", "token_uri")


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    project_id: str
    private_key_id: str
    client_email: str
    token_uri: str
    private_key: str = field(repr=False)
    key: rsa.RSAPrivateKey = field(repr=False, compare=False)

    @classmethod
    def parse(
        cls, data: bytes | str | Mapping[str, Any], *, checked: bool = False
    ) -> ServiceAccount:
        """A service account from its JSON (bytes/str) or the decoded dict.

        Raises `CredentialError` naming what is missing or wrong. `checked`: the key passed
        this check before (a stored credential validated at upload), so OpenSSL's RSA
        consistency check, about 40 ms, is not run again.
        """
        info: Any
        if isinstance(data, bytes | str):
            try:
                info = msgspec.json.decode(data)
            except msgspec.DecodeError as exc:
                raise CredentialError("service account is not valid JSON") from exc
        else:
            info = data
        if not isinstance(info, Mapping):
            raise CredentialError("service account JSON must be an object")
        kind = info.get("type")
        if kind != "service_account":
            raise CredentialError(f'service account "type" must be "service_account", not {kind!r}')
        missing = [
            name
            for name in _REQUIRED_FIELDS
            if not isinstance(info.get(name), str) or not info[name]
        ]
        if missing:
            raise CredentialError("service account lacks " + ", ".join(missing))
        token_uri: str = info["token_uri"]
        parts = urlsplit(token_uri)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise CredentialError(f"service account token_uri {token_uri!r} is not an http(s) URL")
        if "@" not in info["client_email"]:
            raise CredentialError("service account client_email is not an email address")
        private_key: str = info["private_key"]
        try:
            key = load_pem_private_key(
                private_key.encode(), password=None, unsafe_skip_rsa_key_validation=checked
            )
        except (ValueError, TypeError) as exc:
            raise CredentialError("service account private_key is not a readable PEM key") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CredentialError("service account private_key is not an RSA key")
        return cls(
            project_id=info["project_id"],
            private_key_id=info["private_key_id"],
            client_email=info["client_email"],
            token_uri=token_uri,
            private_key=private_key,
            key=key,
        )


def assertion(account: ServiceAccount, now: float) -> str:
    """The signed JWT of the jwt-bearer grant, issued at `now` (epoch seconds)."""
    issued_at = int(now)
    return jwt.encode(
        {
            "iss": account.client_email,
            "scope": FCM_SCOPE,
            "aud": GOOGLE_TOKEN_AUDIENCE,
            "iat": issued_at,
            "exp": issued_at + ASSERTION_LIFETIME_S,
        },
        account.key,
        algorithm="RS256",
        headers={"kid": account.private_key_id},
    )


JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def token_request_body(account: ServiceAccount, now: float) -> bytes:
    """The form body POSTed to `account.token_uri` for an access token."""
    return urlencode(
        {"grant_type": JWT_BEARER_GRANT, "assertion": assertion(account, now)}
    ).encode()


@functools.lru_cache(maxsize=256)  # the same few apps' paths, once per push
def send_path(project_id: str) -> str:
    return f"/v1/projects/{quote(project_id, safe='')}/messages:send"


def build_send(
    project_id: str, message: Mapping[str, Any], token: str, *, validate_only: bool = False
) -> tuple[str, bytes]:
    """The path and JSON body sending `message` (without a target) to `token`."""
    if not token:
        raise ValueError("token is empty")
    if "topic" in message or "condition" in message:
        raise ValueError("message already has a topic or condition target")
    body = {"message": {**message, "token": token}, "validate_only": validate_only}
    return send_path(project_id), msgspec.json.encode(body)


_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
TOKEN_FIELD = "message.token"
# The legacy names of answers about the partner's Firebase setup, not about the device.
CONFIGURATION_REASONS = frozenset({"MismatchSenderId"})
QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
# Google: after QUOTA_EXCEEDED wait at least a minute; the quota is the project's, so
# every message of the credential waits.
QUOTA_WAIT_S = 60.0
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "QUOTA_EXCEEDED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True, slots=True)
class _ErrorEnvelope:
    status: str = ""
    message: str = ""
    error_code: str = ""
    field_violations: tuple[str, ...] = ()


def _parse_error(body: bytes) -> _ErrorEnvelope:
    try:
        data: Any = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        return _ErrorEnvelope(message=body[:200].decode("utf-8", "replace"))
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return _ErrorEnvelope()
    status = error.get("status")
    message = error.get("message")
    error_code = ""
    violations: list[str] = []
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        code = detail.get("errorCode")
        if isinstance(code, str) and code and (kind == _FCM_ERROR_TYPE or not error_code):
            error_code = code
        if kind == _BAD_REQUEST_TYPE:
            for violation in detail.get("fieldViolations") or ():
                if isinstance(violation, dict) and isinstance(violation.get("field"), str):
                    violations.append(violation["field"])
    return _ErrorEnvelope(
        status=status if isinstance(status, str) else "",
        message=message if isinstance(message, str) else "",
        error_code=error_code,
        field_violations=tuple(violations),
    )


def _about_token(error: _ErrorEnvelope) -> bool:
    return TOKEN_FIELD in error.field_violations


_ACCEPTED = Verdict(kind="ok", status=200)


def classify(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Verdict:
    """An FCM v1 answer as a Verdict (see the module table)."""
    if 200 <= status < 300:
        # Not the message's `name` from the body: decoding every success for a value nothing
        # keeps (as with APNs's echoed apns-id).
        return _ACCEPTED if status == 200 else Verdict(kind="ok", status=status)
    error = _parse_error(body)
    code = error.error_code or error.status or _STATUS_NAMES.get(status, f"HTTP{status}")
    retry_after = parse_retry_after(header(headers, "retry-after"), now)
    detail = f"{code}: {error.message}" if error.message else code

    def verdict(kind: VerdictKind, reason: str, *, refresh_auth: bool = False) -> Verdict:
        return Verdict(
            kind=kind,
            reason=reason,
            status=status,
            detail=detail,
            retry_after=retry_after,
            refresh_auth=refresh_auth,
        )

    if code == "UNREGISTERED":
        return verdict("dead_token", "NotRegistered")
    if code == "SENDER_ID_MISMATCH":
        return verdict("rejected", "MismatchSenderId")  # CONFIGURATION_REASONS
    if code == "INVALID_ARGUMENT":
        if _about_token(error):
            return verdict("dead_token", "InvalidRegistration")
        return verdict("rejected", "InvalidParameters")
    if code in ("THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR"):
        return verdict("credential", code)
    if code == QUOTA_EXCEEDED:
        retry_after = max(QUOTA_WAIT_S, retry_after or 0.0)
        return verdict("retry", code)
    if code in ("UNAVAILABLE", "INTERNAL"):
        return verdict("retry", code)
    if status == 401 or code == "UNAUTHENTICATED":
        return verdict("credential", "UNAUTHENTICATED", refresh_auth=True)
    if status == 403 or code == "PERMISSION_DENIED":
        return verdict("credential", code)
    if status == 429 or status >= 500:
        return verdict("retry", code)
    return verdict("rejected", code)
