"""The FCM HTTP v1 emulator: an OAuth2 token endpoint and `messages:send`.

- `POST /token`, form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`:
  the assertion must be RS256-signed by a known service account (`kid` = private_key_id,
  `iss` = client_email), for Google's token audience (or this endpoint's own URL), with the
  messaging scope (or cloud-platform, which Google accepts for FCM and firebase-admin asks for),
  short-lived (exp - iat <= 3600) and unexpired. Answer `{"access_token", "expires_in",
  "token_type"}`; errors as Google's `{"error", "error_description"}` with 400.
- `POST /v1/projects/{project}/messages:send` with `Authorization: Bearer <access token>` issued for
  an account of that project; body `{"message": {...}, "validate_only": bool}`, checked against
  Google's published schema as fcm.googleapis.com checks it (`fcm_schema`: names, JSON types,
  enums, durations, string-only `data`, reserved keys, one target: `token`, `fid` (a Firebase
  installation id, which newer firebase-admin sends), `topic` or `condition`; 4096 bytes).
- Answers in Google's error envelope: a missing, unknown or expired access token is 401
  UNAUTHENTICATED with an ErrorInfo and no FcmError (the client fetches a new token); a token of
  another project's account is 403 PERMISSION_DENIED; a body Google's parse refuses is 400
  INVALID_ARGUMENT with a `google.rpc.BadRequest` detail only; what FCM itself refuses (no
  recipient, a reserved data key, a malformed registration token, ...) adds the `FcmError`
  detail; a token outcome set through the control routes answers with its `errorCode`. A
  malformed token's BadRequest names `message.token`, which is how a client tells a dead token
  from a bad payload.
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

from pushgate.emulators import fcm_schema
from pushgate.emulators.credentials import signature_valid
from pushgate.emulators.exchange import Request, Response
from pushgate.emulators.outcomes import FCM_ERRORS, FCM_FAULT_CODES
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
MAX_MESSAGE_BYTES: Final = fcm_schema.MAX_MESSAGE_BYTES
FCM_ERROR_TYPE: Final = fcm_schema.FCM_ERROR_TYPE
ERROR_INFO_TYPE: Final = "type.googleapis.com/google.rpc.ErrorInfo"
SEND_PERMISSION: Final = "cloudmessaging.messages.create"
CREDENTIALS_MISSING: Final = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID_CREDENTIALS: Final = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_SEND_METHOD: Final = {
    "method": "google.firebase.fcm.v1.FcmService.SendMessage",
    "service": "fcm.googleapis.com",
}
_SEND = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_JSON: Final = ("content-type", "application/json; charset=UTF-8")
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
            # A goaway or drop fault: handled as usual, then the server acts on the connection.
            request.connection_fault = fault.connection
            if fault.status is not None:
                code = FCM_FAULT_CODES.get(fault.status, "UNAVAILABLE")
                extra = (
                    [] if fault.retry_after is None else [("retry-after", str(fault.retry_after))]
                )
                return _fcm_error(code, extra=extra)
        refused = self._authenticate(request, project_id)
        if refused is not None:
            return refused
        try:
            body = json.loads(request.body)
        except ValueError as error:
            return _rejected(fcm_schema.invalid_json(f"Unexpected token. ({error})"))
        rejection = fcm_schema.check_send_request(body)
        if rejection is not None:
            return _rejected(rejection)
        target = fcm_schema.target_of(body["message"])
        if target is None:  # unreachable: the check refuses a message without a recipient
            return _rejected(fcm_schema.no_recipient())
        target_name, target_value = target
        token = target_value if target_name in _DEVICE_TARGETS else None
        if token is not None:
            outcome = self.state.token_outcome(PLATFORM, token) if token else None
            if not token or (outcome is not None and outcome.outcome == "INVALID_ARGUMENT"):
                return _rejected(fcm_schema.invalid_token(target_name))
            if outcome is not None:
                return _fcm_error(outcome.outcome)
        validate_only = body.get("validate_only", body.get("validateOnly")) is True
        if validate_only:
            name = f"projects/{project_id}/messages/fake_message_id"
        else:
            name = (
                f"projects/{project_id}/messages/0:{int(time.time() * 1e6)}%{secrets.token_hex(8)}"
            )
            self.state.record_delivery(PLATFORM, token, request.headers, body)
        return Response(200, json.dumps({"name": name}).encode(), [_JSON])

    def _authenticate(self, request: Request, project_id: str) -> Response | None:
        """Google's answers for the access token: 401 UNAUTHENTICATED without an FcmError when
        it is missing, unknown or expired (an ErrorInfo says which); 403 PERMISSION_DENIED
        when it is valid but its account has no right to send for `project_id`."""
        authorization = request.header("authorization")
        scheme, _, access_token = (authorization or "").partition(" ")
        if authorization is None or scheme.lower() != "bearer" or not access_token.strip():
            return _unauthenticated(CREDENTIALS_MISSING, "CREDENTIALS_MISSING")
        grant = self._grants.get(access_token.strip())
        if grant is None:
            return _unauthenticated(INVALID_CREDENTIALS, "ACCESS_TOKEN_TYPE_UNSUPPORTED")
        if grant.expires_at <= self.state.now():
            return _unauthenticated(INVALID_CREDENTIALS, "ACCESS_TOKEN_EXPIRED")
        if grant.project_id != project_id:
            return _permission_denied(project_id)
        return None


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


def _rejected(rejection: fcm_schema.Rejection) -> Response:
    return Response(400, json.dumps(rejection.body()).encode(), [_JSON])


def _error_info(reason: str, domain: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {"@type": ERROR_INFO_TYPE, "reason": reason, "domain": domain, "metadata": metadata}


def _unauthenticated(message: str, reason: str) -> Response:
    error = {
        "code": 401,
        "message": message,
        "status": "UNAUTHENTICATED",
        "details": [_error_info(reason, "googleapis.com", dict(_SEND_METHOD))],
    }
    headers = [_JSON, ("www-authenticate", 'Bearer realm="https://accounts.google.com/"')]
    return Response(401, json.dumps({"error": error}).encode(), headers)


def _permission_denied(project_id: str) -> Response:
    resource = f"projects/{project_id}"
    error = {
        "code": 403,
        "message": (
            f"Permission '{SEND_PERMISSION}' denied on resource "
            f"'//cloudresourcemanager.googleapis.com/{resource}' (or it may not exist)."
        ),
        "status": "PERMISSION_DENIED",
        "details": [
            _error_info(
                "IAM_PERMISSION_DENIED",
                "cloudresourcemanager.googleapis.com",
                {"resource": resource, "permission": SEND_PERMISSION},
            )
        ],
    }
    return Response(403, json.dumps({"error": error}).encode(), [_JSON])
