"""APNs over HTTP/2 with token auth: the pure parts (no I/O).

- `ApnsTokenSigner`: one ES256 provider token per key, rotated on a fixed schedule.
- `build_request`: the path and headers of one push (`build_headers` and `check_push`, its
  two halves, for a sender that builds a campaign's headers once).
- `classify`: an APNs answer as a `Verdict`.

Answers by status (providers.md):

==========  ==============================================  ===========================
status      reason                                          verdict
==========  ==============================================  ===========================
200         -                                               ok
400         BadDeviceToken                                  dead_token, unless the other
                                                            environment accepts it: the
                                                            sender tries it once
400         DeviceTokenNotForTopic, TopicDisallowed,        rejected: the partner's
            BadTopic                                        configuration, the device stays
400         IdleTimeout                                     retry (the request was not
                                                            acted on; a new connection
                                                            serves it)
400         any other (BadCollapseId, BadPriority, ...)     rejected
403         ExpiredProviderToken                            credential, refresh_auth: the
                                                            sender signs a new token (within
                                                            the 20-minute rule) and tries
                                                            once more; only a second refusal
                                                            stands
403         BadCertificateEnvironment                       rejected: configuration
403         BadCertificate, Forbidden, InvalidProviderToken,  credential
            MissingProviderToken, any other
404, 405    BadPath, MethodNotAllowed                       rejected
410         Unregistered, ExpiredToken (+ timestamp)        dead_token
413         PayloadTooLarge                                 rejected
429         TooManyRequests, TooManyProviderTokenUpdates    retry
500, 503    InternalServerError, ServiceUnavailable,        retry
            Shutdown (and any other 5xx)
other 4xx                                                   rejected
==========  ==============================================  ===========================
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pushgate.jobs import VerdictKind
from pushgate.providers.errors import CredentialError, InvalidRequest
from pushgate.providers.verdict import Verdict, header
from pushgate.retry_after import parse_retry_after

APNS_PRODUCTION = "https://api.push.apple.com"
APNS_SANDBOX = "https://api.sandbox.push.apple.com"

MAX_PAYLOAD_BYTES = 4096
MAX_COLLAPSE_ID_BYTES = 64
# Apple: a token older than an hour is refused; one refreshed more often than every
# 20 minutes gets TooManyProviderTokenUpdates. Rotate in between.
TOKEN_ROTATE_AFTER_S = 45 * 60
TOKEN_MIN_AGE_S = 20 * 60

PUSH_TYPES = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
        "widgets",
        "controls",
    }
)
PRIORITIES = frozenset({1, 5, 10})

_HEX = re.compile(r"[0-9a-fA-F]+")
_LOWER_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s]+")


def load_p8(pem: str | bytes) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 signing key of an APNs .p8 file.

    Accepts the file as downloaded (PKCS#8 PEM), also with CRLF line ends, surrounding
    blanks or with only the base64 body pasted. Raises `CredentialError` otherwise.
    """
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    text = text.strip().replace("\r\n", "\n").replace("\\n", "\n")
    if not text:
        raise CredentialError("private_key is empty")
    if "-----BEGIN" not in text:
        if not _PEM_BODY.fullmatch(text):
            raise CredentialError("private_key is not a PEM (.p8) key")
        body = "".join(text.split())
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        text = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----"
    try:
        key = load_pem_private_key(text.encode("ascii", "replace"), password=None)
    except TypeError as exc:  # encrypted key
        raise CredentialError("private_key is encrypted; upload the .p8 as downloaded") from exc
    except ValueError as exc:
        raise CredentialError("private_key is not a readable PEM (.p8) key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CredentialError("private_key is not an EC key (APNs keys are EC P-256)")
    if not isinstance(key.curve, ec.SECP256R1):
        raise CredentialError(f"private_key uses curve {key.curve.name}, APNs needs P-256")
    return key


def _check_id(value: str, what: str) -> str:
    value = value.strip()
    if not value or any(c.isspace() for c in value) or not value.isascii():
        raise CredentialError(f"{what} must be a non-empty ASCII identifier")
    return value


class ApnsTokenSigner:
    """One provider token (ES256 JWT) per key, reused and rotated every ~45 minutes.

    Never signs a new token sooner than 20 minutes after the previous one: APNs answers
    429 TooManyProviderTokenUpdates to that. `now` is epoch seconds (injected for tests).
    A clock that steps backwards keeps the current token (its age counts as zero).
    """

    def __init__(
        self,
        private_key_pem: str | bytes,
        key_id: str,
        team_id: str,
        *,
        rotate_after: float = TOKEN_ROTATE_AFTER_S,
    ) -> None:
        if not TOKEN_MIN_AGE_S <= rotate_after < 3600:
            raise ValueError("rotate_after must be between 20 and 60 minutes")
        self._key = load_p8(private_key_pem)
        self.key_id = _check_id(key_id, "key_id")
        self.team_id = _check_id(team_id, "team_id")
        self.rotate_after = rotate_after
        self._token: str | None = None
        self._issued_at: int = 0

    @property
    def issued_at(self) -> int | None:
        """The `iat` of the current token (epoch seconds), None before the first one."""
        return self._issued_at if self._token is not None else None

    def _age(self, now: float) -> float:
        return max(0.0, now - self._issued_at)

    def _sign(self, now: float) -> str:
        self._issued_at = int(now)
        self._token = jwt.encode(
            {"iss": self.team_id, "iat": self._issued_at},
            self._key,
            algorithm="ES256",
            headers={"kid": self.key_id, "typ": None},  # Apple's header: alg and kid only
        )
        return self._token

    def token(self, now: float) -> str:
        """The token to send at `now`: the current one, or a new one once it is due."""
        if self._token is None or self._age(now) >= self.rotate_after:
            return self._sign(now)
        return self._token

    def refresh(self, now: float) -> bool:
        """Ask for a new token now (after 403 ExpiredProviderToken).

        Re-signs only if the current token is at least 20 minutes old; returns whether a
        new token was made. False means the current token is kept (and reported as such
        by the caller), since an earlier update would only earn a 429.
        """
        if self._token is not None and self._age(now) < TOKEN_MIN_AGE_S:
            return False
        self._sign(now)
        return True


def device_path(device_token: str) -> str:
    return f"/3/device/{device_token}"


def build_request(
    device_token: str,
    payload: bytes,
    *,
    topic: str,
    push_type: str = "alert",
    priority: int = 10,
    expiration: int = 0,
    apns_id: str | None = None,
    bearer: str | None = None,
    collapse_id: str | None = None,
) -> tuple[str, list[tuple[str, str]]]:
    """The `:path` and headers of one push (the body is `payload` itself).

    `bearer` is the provider token (None with certificate auth); `apns_id` a UUID that
    APNs echoes (None: APNs makes one, and echoes that). Raises `InvalidRequest` with the
    reason APNs would give for a request it would refuse, in the order APNs checks.
    """
    headers = build_headers(
        topic=topic,
        push_type=push_type,
        priority=priority,
        expiration=expiration,
        apns_id=apns_id,
        bearer=bearer,
        collapse_id=collapse_id,
    )
    check_push(device_token, payload)
    return device_path(device_token), list(headers)


def build_headers(
    *,
    topic: str,
    push_type: str = "alert",
    priority: int = 10,
    expiration: int = 0,
    apns_id: str | None = None,
    bearer: str | None = None,
    collapse_id: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """The headers of a push, which the pushes of a campaign share (a sender builds them
    once for all: no `apns-id` unless one is given). Raises `InvalidRequest`."""
    headers: list[tuple[str, str]] = []
    if apns_id is not None:
        if not _LOWER_UUID.fullmatch(apns_id):
            try:
                apns_id = str(uuid.UUID(apns_id))
            except ValueError:
                raise InvalidRequest("BadMessageId", "apns-id is not a UUID") from None
        headers.append(("apns-id", apns_id))
    if not topic:
        raise InvalidRequest("MissingTopic", "apns-topic is required with token auth")
    if collapse_id is not None and (
        not collapse_id or len(collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES
    ):
        raise InvalidRequest("BadCollapseId", "apns-collapse-id must be 1-64 bytes")
    if priority not in PRIORITIES:
        raise InvalidRequest("BadPriority", f"apns-priority {priority} is not 1, 5 or 10")
    if push_type not in PUSH_TYPES:
        raise InvalidRequest("InvalidPushType", f"unknown apns-push-type {push_type!r}")
    if push_type == "background" and priority == 10:
        raise InvalidRequest("BadPriority", "background pushes must use apns-priority 5")
    if expiration < 0:
        raise InvalidRequest("BadExpirationDate", "apns-expiration must be >= 0")
    headers += [
        ("apns-topic", topic),
        ("apns-push-type", push_type),
        ("apns-priority", str(priority)),
        ("apns-expiration", str(expiration)),
    ]
    if collapse_id is not None:
        headers.append(("apns-collapse-id", collapse_id))
    if bearer is not None:
        headers.append(("authorization", f"bearer {bearer}"))
    return tuple(headers)


def check_push(device_token: str, payload: bytes) -> None:
    """What APNs checks of the device token and the payload: `InvalidRequest` if refused."""
    if not device_token:
        raise InvalidRequest("MissingDeviceToken", "device token is empty")
    if not _HEX.fullmatch(device_token) or len(device_token) % 2:
        raise InvalidRequest("BadDeviceToken", "device token is not a hex string")
    if not payload:
        raise InvalidRequest("PayloadEmpty", "payload is empty")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidRequest(
            "PayloadTooLarge", f"payload is {len(payload)} bytes, over {MAX_PAYLOAD_BYTES}"
        )


def local_verdict(error: InvalidRequest) -> Verdict:
    """The verdict for a push `build_request` refused, as APNs would have answered it."""
    # A token that is not hex is malformed on every environment: dead.
    kind: VerdictKind = (
        "dead_token" if error.reason in ("BadDeviceToken", "MissingDeviceToken") else "rejected"
    )
    return Verdict(kind=kind, reason=error.reason, detail=f"{error} (checked locally)")


BAD_DEVICE_TOKEN = "BadDeviceToken"
EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"
# Answers about the partner's app, key or certificate setup: fixing that must bring the
# devices back, so they fail the push and retire nothing.
CONFIGURATION_REASONS = frozenset(
    {"DeviceTokenNotForTopic", "TopicDisallowed", "BadTopic", "BadCertificateEnvironment"}
)
_DEFAULT_REASON = {
    400: "BadRequest",
    403: "Forbidden",
    404: "BadPath",
    405: "MethodNotAllowed",
    410: "Unregistered",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def _error_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


_ACCEPTED = Verdict(kind="ok", status=200)


def classify(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Verdict:
    """An APNs answer as a Verdict (see the module table)."""
    if 200 <= status < 300:
        # Not the echoed apns-id: reading it meant parsing every success's headers, 8% of a
        # delivery worker's CPU, for a value nothing keeps.
        return _ACCEPTED if status == 200 else Verdict(kind="ok", status=status)
    error = _error_body(body)
    raw_reason = error.get("reason")
    reason = (
        raw_reason
        if isinstance(raw_reason, str) and raw_reason
        else _DEFAULT_REASON.get(status, f"HTTP{status}")
    )
    retry_after = parse_retry_after(header(headers, "retry-after"), now)
    detail = body[:200].decode("utf-8", "replace") if body else ""

    def verdict(
        kind: VerdictKind, *, timestamp_ms: int | None = None, refresh_auth: bool = False
    ) -> Verdict:
        return Verdict(
            kind=kind,
            reason=reason,
            status=status,
            detail=detail,
            retry_after=retry_after,
            timestamp_ms=timestamp_ms,
            refresh_auth=refresh_auth,
        )

    if status == 410:
        stamp = error.get("timestamp")
        timestamp_ms = int(stamp) if isinstance(stamp, int | float) and stamp >= 0 else None
        return verdict("dead_token", timestamp_ms=timestamp_ms)
    if reason in CONFIGURATION_REASONS:
        return verdict("rejected")
    if status == 400:
        if reason == BAD_DEVICE_TOKEN:
            return verdict("dead_token")
        if reason == "IdleTimeout":
            return verdict("retry")
        return verdict("rejected")
    if status == 403:
        return verdict("credential", refresh_auth=reason == EXPIRED_PROVIDER_TOKEN)
    if status == 429 or status >= 500:
        return verdict("retry")
    return verdict("rejected")
