"""The FCM HTTP v1 emulator: an OAuth2 token endpoint and `messages:send`.

- `POST /token`, form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`:
  the assertion must be RS256-signed by a known service account (`kid` = private_key_id,
  `iss` = client_email), for Google's token audience (or this endpoint's own URL), with the
  messaging scope (or cloud-platform, which Google accepts for FCM and firebase-admin asks for),
  short-lived (exp - iat <= 3600) and unexpired. Answer `{"access_token", "expires_in",
  "token_type"}`; errors as Google's `{"error", "error_description"}` with 400.
- `POST /v1/projects/{project}/messages:send` with `Authorization: Bearer <access token>` issued for
  an account of that project; body `{"message": {...}, "validate_only": bool}`; the message names
  exactly one target: `token` (or `fid`, a Firebase installation id, which newer firebase-admin
  sends), `topic` or `condition`. Errors in Google's
  envelope with an `FcmError` detail carrying `errorCode`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

import jwt

from pushgate.emulators.credentials import signature_valid
from pushgate.emulators.outcomes import FCM_ERRORS, FCM_FAULT_CODES
from pushgate.emulators.server import Request, Response
from pushgate.emulators.state import EmulatorState

PLATFORM: Final = "android"
TOKEN_PATH: Final = "/token"
GOOGLE_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"
GOOGLE_AUDIENCES: Final = frozenset(
    {
        GOOGLE_TOKEN_URL,
        "https://www.googleapis.com/oauth2/v4/token",
        "https://accounts.google.com/o/oauth2/token",
    }
)
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MESSAGING_SCOPES: Final = frozenset(
    {
        "https://www.googleapis.com/auth/firebase.messaging",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
ACCESS_TOKEN_TTL: Final = 3600
MAX_ASSERTION_LIFETIME: Final = 3600
CLOCK_SKEW: Final = 300
MAX_MESSAGE_BYTES: Final = 4096
FCM_ERROR_TYPE: Final = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_SEND = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_JSON: Final = ("content-type", "application/json; charset=UTF-8")
_TARGETS: Final = ("token", "fid", "topic", "condition")
_DEVICE_TARGETS: Final = ("token", "fid")


@dataclass(frozen=True, slots=True)
class AccessGrant:
    project_id: str
    client_email: str
    expires_at: float


class _TokenError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class FcmEmulator:
    def __init__(self, state: EmulatorState, token_url: str | None = None) -> None:
        self.state = state
        self.token_url = token_url
        """This endpoint's own token URL (also accepted as the assertion's audience)."""
        self._grants: dict[str, AccessGrant] = {}

    async def handle(self, request: Request) -> Response:
        if request.path == TOKEN_PATH:
            if request.method != "POST":
                return _google_error(405, "Method Not Allowed", "INVALID_ARGUMENT", None)
            return self._token(request)
        match = _SEND.match(request.path)
        if match is None or request.method != "POST":
            return _google_error(
                404, "The requested URL was not found on this server.", "NOT_FOUND", None
            )
        return await self._send(request, match.group(1))

    def issue(self, project_id: str, client_email: str) -> tuple[str, int]:
        """Issue an access token (as the token endpoint does); returns it and its lifetime."""
        token = "ya29.emulator-" + secrets.token_urlsafe(32)
        now = self.state.now()
        self._grants[token] = AccessGrant(project_id, client_email, now + ACCESS_TOKEN_TTL)
        if len(self._grants) > 10_000:
            self._grants = {k: g for k, g in self._grants.items() if g.expires_at > now}
        return token, ACCESS_TOKEN_TTL

    # the token endpoint

    def _token(self, request: Request) -> Response:
        try:
            project_id, client_email = self._check_assertion(request)
        except _TokenError as error:
            body = {"error": error.error, "error_description": error.description}
            return Response(400, json.dumps(body).encode(), [_JSON])
        token, ttl = self.issue(project_id, client_email)
        answer = {"access_token": token, "expires_in": ttl, "token_type": "Bearer"}
        return Response(200, json.dumps(answer).encode(), [_JSON, ("cache-control", "no-store")])

    def _check_assertion(self, request: Request) -> tuple[str, str]:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        grant_type = form.get("grant_type", "")
        if grant_type != JWT_BEARER:
            raise _TokenError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _TokenError("invalid_grant", "Invalid JWT: could not be parsed.") from None
        key_id, issuer = header.get("kid"), claims.get("iss")
        if header.get("alg") != "RS256":
            raise _TokenError("invalid_grant", "Invalid JWT: the algorithm must be RS256.")
        if not isinstance(key_id, str) or not isinstance(issuer, str):
            raise _TokenError("invalid_grant", "Invalid grant: account not found")
        account = self.state.credentials.fcm_account(issuer, key_id)
        if account is None:
            raise _TokenError("invalid_grant", "Invalid grant: account not found")
        if not signature_valid(assertion, account.public_key_pem, "RS256"):
            raise _TokenError("invalid_grant", "Invalid JWT Signature.")
        audiences = set(GOOGLE_AUDIENCES)
        if self.token_url:
            audiences.add(self.token_url)
        if request.authority:
            audiences.add(f"{request.scheme}://{request.authority}{request.path}")
        if claims.get("aud") not in audiences:
            raise _TokenError(
                "invalid_grant",
                f"Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_URL}",
            )
        scopes = str(claims.get("scope", "")).split()
        if not MESSAGING_SCOPES.intersection(scopes):
            raise _TokenError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        issued_at, expires = claims.get("iat"), claims.get("exp")
        now = self.state.now()
        if (
            not isinstance(issued_at, int | float)
            or not isinstance(expires, int | float)
            or expires - issued_at > MAX_ASSERTION_LIFETIME
            or expires <= now
            or issued_at > now + CLOCK_SKEW
        ):
            raise _TokenError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.",
            )
        return account.project_id, account.client_email

    # messages:send

    async def _send(self, request: Request, project_id: str) -> Response:
        fault = self.state.draw_fault(PLATFORM)
        if fault is not None:
            if fault.latency > 0:
                await asyncio.sleep(fault.latency)
            if fault.status is not None:
                code = FCM_FAULT_CODES.get(fault.status, "UNAVAILABLE")
                extra = (
                    [] if fault.retry_after is None else [("retry-after", str(fault.retry_after))]
                )
                return _fcm_error(code, extra=extra)
        scheme, _, access_token = (request.header("authorization") or "").partition(" ")
        grant = self._grants.get(access_token.strip()) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires_at <= self.state.now() or grant.project_id != project_id:
            return _fcm_error("THIRD_PARTY_AUTH_ERROR")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _invalid("Invalid JSON payload received.")
        if not isinstance(body, dict):
            return _invalid("Invalid JSON payload received. Expected an object.")
        message = body.get("message")
        validate_only = body.get("validate_only", False)
        if not isinstance(message, dict):
            return _invalid("Request contains an invalid argument: 'message' is required.")
        if not isinstance(validate_only, bool):
            return _invalid("Invalid value at 'validate_only' (TYPE_BOOL).")
        targets = [t for t in _TARGETS if message.get(t) is not None]
        if len(targets) != 1:
            return _invalid("Exactly one of fid, token, topic or condition must be specified.")
        target = message[targets[0]]
        if not isinstance(target, str) or not target:
            return _invalid(f"Invalid value at 'message.{targets[0]}' (TYPE_STRING).")
        data = message.get("data")
        if data is not None and (
            not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())
        ):
            return _invalid("Invalid value at 'message.data': values must be strings.")
        if len(json.dumps(message, separators=(",", ":")).encode()) > MAX_MESSAGE_BYTES:
            return _invalid("Message is too big")
        token = target if targets[0] in _DEVICE_TARGETS else None
        if token is not None:
            outcome = self.state.token_outcome(PLATFORM, token)
            if outcome is not None:
                return _fcm_error(outcome.outcome)
        if validate_only:
            name = f"projects/{project_id}/messages/fake_message_id"
        else:
            name = (
                f"projects/{project_id}/messages/0:{int(time.time() * 1e6)}%{secrets.token_hex(8)}"
            )
            self.state.record_delivery(PLATFORM, token, request.headers, body)
        return Response(200, json.dumps({"name": name}).encode(), [_JSON])


def _google_error(
    code: int,
    message: str,
    status: str,
    error_code: str | None,
    extra: list[tuple[str, str]] | None = None,
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if error_code is not None:
        error["details"] = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
    return Response(code, json.dumps({"error": error}).encode(), [_JSON, *(extra or [])])


def _fcm_error(error_code: str, extra: list[tuple[str, str]] | None = None) -> Response:
    http_status, status, message = FCM_ERRORS[error_code]
    return _google_error(http_status, message, status, error_code, extra)


def _invalid(message: str) -> Response:
    return _google_error(400, message, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
