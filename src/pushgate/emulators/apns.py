"""The APNs emulator: `POST /3/device/<token>` over HTTP/2, token auth (ES256 JWT) or
certificate auth (a TLS client certificate), on two hosts: production and sandbox.

Validation follows providers.md, in its order: apns-id, method, path, topic, collapse id, priority,
push type, expiration, device token (malformed, or registered for the other environment through
the control routes: `BadDeviceToken`), the token's outcome set through the control routes, then
the credential and the topic allowed for it, then the payload.

- Token auth (an `authorization` header): the provider token present, signed by a known key of
  that team, not older than an hour, not changed more often than every 20 minutes on one
  connection; the topic one of the key's bundle ids (`TopicDisallowed`).
- Certificate auth (no `authorization` header, a client certificate verified in the handshake,
  see `ca.ClientCertificateTrust`; unknown ones fail the handshake, as with Apple): the topic
  defaults to the certificate's UID, as APNs does; a certificate that names no bundle id, or is
  no longer accepted, is `BadCertificate`; one for the other environment (by Apple's extensions
  or the subject's "Apple Development/Production IOS Push Services") is
  `BadCertificateEnvironment`; a topic other than its bundle id (or a suffix of it) is
  `TopicDisallowed`.

Stream limits as APNs: a new connection advertises MAX_CONCURRENT_STREAMS 1; the first success
raises it to 1000; any rejected push drops it back to 1 until the next success.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

import jwt

from pushgate.emulators.credentials import (
    ApnsCertificate,
    ApnsEnvironment,
    ApnsKey,
    signature_valid,
)
from pushgate.emulators.exchange import Handler, Request, Response
from pushgate.emulators.outcomes import APNS_FAULT_REASONS, APNS_REASONS
from pushgate.emulators.state import EmulatorState

PLATFORM: Final = "ios"
INITIAL_STREAMS: Final = 1
STREAMS_AFTER_SUCCESS: Final = 1000
MAX_PAYLOAD: Final = 4096
MAX_VOIP_PAYLOAD: Final = 5120
MAX_COLLAPSE_ID_BYTES: Final = 64
PROVIDER_TOKEN_MAX_AGE: Final = 3600
PROVIDER_TOKEN_MIN_REFRESH: Final = 20 * 60
PUSH_TYPES: Final = frozenset(
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
TOPIC_SUFFIXES: Final = (
    ".voip",
    ".complication",
    ".pushkit.fileprovider",
    ".push-type.liveactivity",
    ".voip-ptt",
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TOKEN = re.compile(r"^[0-9a-fA-F]{64}$")
_SINGLE_HEADERS: Final = (
    "apns-id",
    "apns-topic",
    "apns-push-type",
    "apns-expiration",
    "apns-priority",
    "apns-collapse-id",
    "authorization",
)


@dataclass(slots=True)
class ApnsConnectionState:
    """What APNs remembers per connection: the provider token in use and when it last changed."""

    token: str | None = None
    issued_at: int = 0
    changed_at: float = 0.0
    key: ApnsKey | None = None


class _Rejected(Exception):
    def __init__(self, reason: str, timestamp: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timestamp = timestamp


@dataclass(frozen=True, slots=True)
class _ClientCertificate:
    certificate: ApnsCertificate
    accepted: bool


class ApnsEmulator:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def handler(self, environment: ApnsEnvironment) -> Handler:
        """The handler of one host: `production` (api.push.apple.com) or `sandbox`."""

        async def handle(request: Request) -> Response:
            return await self.handle(request, environment)

        return handle

    async def handle(
        self, request: Request, environment: ApnsEnvironment = "production"
    ) -> Response:
        given_id = request.header("apns-id")
        apns_id = given_id if given_id is not None else str(uuid.uuid4())
        connection = request.connection
        fault = self.state.draw_fault(PLATFORM)
        if fault is not None:
            if fault.latency > 0:
                await asyncio.sleep(fault.latency)
            # A goaway or drop fault: handled as usual, then the server acts on the connection.
            request.connection_fault = fault.connection
            if fault.status is not None:
                connection.set_max_concurrent_streams(INITIAL_STREAMS)
                reason = APNS_FAULT_REASONS.get(fault.status, "ServiceUnavailable")
                extra = (
                    [] if fault.retry_after is None else [("retry-after", str(fault.retry_after))]
                )
                return _error(fault.status, reason, apns_id, extra=extra)
        try:
            token, payload = self._validate(request, given_id, environment)
        except _Rejected as rejected:
            connection.set_max_concurrent_streams(INITIAL_STREAMS)
            return _error(
                APNS_REASONS[rejected.reason], rejected.reason, apns_id, rejected.timestamp
            )
        self.state.record_delivery(PLATFORM, token, request.headers, payload)
        connection.set_max_concurrent_streams(STREAMS_AFTER_SUCCESS)
        return Response(200, b"", [("apns-id", apns_id)])

    def _validate(
        self, request: Request, given_id: str | None, environment: ApnsEnvironment
    ) -> tuple[str, Any]:
        if given_id is not None and not _UUID.match(given_id):
            raise _Rejected("BadMessageId")
        if any(request.header_count(name) > 1 for name in _SINGLE_HEADERS):
            raise _Rejected("DuplicateHeaders")
        if request.method != "POST":
            raise _Rejected("MethodNotAllowed")
        if request.path in ("/3/device", "/3/device/"):
            token = ""
        elif request.path.startswith("/3/device/"):
            token = request.path[len("/3/device/") :]
        else:
            raise _Rejected("BadPath")
        topic = request.header("apns-topic")
        # Token auth takes the header's word; certificate auth falls back on the certificate.
        client = None if request.header("authorization") else self._client_certificate(request)
        if not topic and client is not None:
            topic = client.certificate.bundle_id
        if not topic:
            raise _Rejected("MissingTopic")
        collapse_id = request.header("apns-collapse-id")
        if collapse_id is not None and len(collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES:
            raise _Rejected("BadCollapseId")
        priority = request.header("apns-priority")
        if priority is not None and priority not in ("5", "10"):
            raise _Rejected("BadPriority")
        push_type = request.header("apns-push-type")
        if push_type is not None and (
            push_type not in PUSH_TYPES or (push_type == "background" and priority == "10")
        ):
            raise _Rejected("InvalidPushType")
        expiration = request.header("apns-expiration")
        if expiration is not None and not expiration.isdigit():
            raise _Rejected("BadExpirationDate")
        if not token:
            raise _Rejected("MissingDeviceToken")
        if not _TOKEN.match(token):
            raise _Rejected("BadDeviceToken")
        registered = self.state.token_environment(PLATFORM, token)
        if registered is not None and registered != environment:
            raise _Rejected("BadDeviceToken")
        outcome = self.state.token_outcome(PLATFORM, token)
        if outcome is not None:
            stamp = outcome.set_at_ms if APNS_REASONS[outcome.outcome] == 410 else None
            raise _Rejected(outcome.outcome, stamp)
        if client is not None:
            _check_certificate(client, topic, environment)
        else:
            key = self._authenticate(request)
            if key.bundle_ids and not _topic_allowed(topic, key.bundle_ids):
                raise _Rejected("TopicDisallowed")
        body = request.body
        if not body.strip():
            raise _Rejected("PayloadEmpty")
        if len(body) > (MAX_VOIP_PAYLOAD if push_type == "voip" else MAX_PAYLOAD):
            raise _Rejected("PayloadTooLarge")
        try:
            payload = json.loads(body)
        except ValueError:
            raise _Rejected("PayloadEmpty") from None
        if not isinstance(payload, dict):
            raise _Rejected("PayloadEmpty")
        return token, payload

    def _client_certificate(self, request: Request) -> _ClientCertificate | None:
        """The connection's verified client certificate, looked up once per connection."""
        der = request.connection.peer_certificate
        if der is None:
            return None
        known = request.connection.context.get("apns-certificate")
        if isinstance(known, _ClientCertificate):
            return known
        certificate = ApnsCertificate.from_der(der)
        accepted = any(
            c.fingerprint == certificate.fingerprint
            for c in self.state.credentials.apns_certificates()
        )
        client = _ClientCertificate(certificate, accepted)
        request.connection.context["apns-certificate"] = client
        return client

    def _authenticate(self, request: Request) -> ApnsKey:
        header = request.header("authorization")
        if header is None:
            raise _Rejected("MissingProviderToken")
        scheme, _, provider_token = header.strip().partition(" ")
        provider_token = provider_token.strip()
        if scheme.lower() != "bearer" or not provider_token:
            raise _Rejected("MissingProviderToken")
        context = request.connection.context.get("apns")
        if not isinstance(context, ApnsConnectionState):
            context = ApnsConnectionState()
            request.connection.context["apns"] = context
        now = self.state.now()
        if provider_token == context.token and context.key is not None:
            key, issued_at = context.key, context.issued_at
        else:
            key, issued_at = self._verify(provider_token)
        if now - issued_at > PROVIDER_TOKEN_MAX_AGE:
            raise _Rejected("ExpiredProviderToken")
        if provider_token != context.token:
            if context.token is not None and now - context.changed_at < PROVIDER_TOKEN_MIN_REFRESH:
                raise _Rejected("TooManyProviderTokenUpdates")
            context.token, context.issued_at, context.key = provider_token, issued_at, key
            context.changed_at = now
        return key

    def _verify(self, provider_token: str) -> tuple[ApnsKey, int]:
        try:
            header = jwt.get_unverified_header(provider_token)
            claims = jwt.decode(provider_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _Rejected("InvalidProviderToken") from None
        key_id, team_id, issued_at = header.get("kid"), claims.get("iss"), claims.get("iat")
        if (
            header.get("alg") != "ES256"
            or not isinstance(key_id, str)
            or not isinstance(team_id, str)
            or not isinstance(issued_at, int)
            or isinstance(issued_at, bool)
        ):
            raise _Rejected("InvalidProviderToken")
        key = self.state.credentials.apns_key(key_id, team_id)
        if key is None:
            raise _Rejected("InvalidProviderToken")
        if not signature_valid(provider_token, key.public_key_pem, "ES256"):
            raise _Rejected("InvalidProviderToken")
        return key, issued_at


def _check_certificate(client: _ClientCertificate, topic: str, environment: str) -> None:
    certificate = client.certificate
    # Verified in the handshake, so only a certificate withdrawn since (or one naming no app)
    # gets here unaccepted.
    if not client.accepted or certificate.bundle_id is None:
        raise _Rejected("BadCertificate")
    if environment not in certificate.environments:
        raise _Rejected("BadCertificateEnvironment")
    if not _topic_allowed(topic, (certificate.bundle_id,)):
        raise _Rejected("TopicDisallowed")


def _topic_allowed(topic: str, bundle_ids: tuple[str, ...]) -> bool:
    if topic in bundle_ids:
        return True
    return any(topic == bundle + suffix for bundle in bundle_ids for suffix in TOPIC_SUFFIXES)


def _error(
    status: int,
    reason: str,
    apns_id: str,
    timestamp: int | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> Response:
    body: dict[str, Any] = {"reason": reason}
    if timestamp is not None:
        body["timestamp"] = timestamp
    headers = [("apns-id", apns_id), ("content-type", "application/json"), *(extra or [])]
    return Response(status, json.dumps(body, separators=(",", ":")).encode(), headers)
