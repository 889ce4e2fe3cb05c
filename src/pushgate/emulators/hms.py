"""The HMS Push Kit emulator: the OAuth token endpoint and `messages:send` (v1).

- `POST /oauth2/v3/token`, form `grant_type=client_credentials&client_id=..&client_secret=..`
  -> `{"access_token", "expires_in": 3600, "token_type": "Bearer"}`.
- `POST /v1/{app_id}/messages:send` with `Authorization: Bearer <access token>`, body
  `{"validate_only": bool, "message": {"token": [...], ...}}` (1-1000 tokens) ->
  `{"code": "80000000", "msg": "Success", "requestId": "..."}`; 80100000 partial success (`msg` a
  JSON string with the success and failure counts and the illegal tokens), 80300007 all tokens
  invalid, 80200001 bad access token, 80200003 expired access token, 80300002 token of another
  app, 80100001/80100003 bad parameters or structure, 80300008 message too large, 80300010 too many
  tokens; HTTP 503 (and 500, 429) for injected faults.

The message fields Huawei documents are checked as Huawei does (its send API reference and
message classification guide, and the checks of its server demos): an object that is not an
object is 80100003; a value of the wrong type or outside its enum (`android.urgency`,
`android.category`, `android.notification.importance`, `click_action.type`...), an
`android.ttl` that is not a duration or is longer than 15 days, an `android.notification`
without `click_action` are 80100001, with `msg` naming the field. Fields it does not know are
let through. Each delivery records the request's HTTP version (`http_version`).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

from pushgate.emulators.exchange import Request, Response
from pushgate.emulators.outcomes import HMS_INVALID
from pushgate.emulators.state import EmulatorState

PLATFORM: Final = "huawei"
TOKEN_PATH: Final = "/oauth2/v3/token"
ACCESS_TOKEN_TTL: Final = 3600
MAX_TOKENS: Final = 1000
MAX_MESSAGE_BYTES: Final = 4096
_SEND = re.compile(r"^/v1/([^/]+)/messages:send$")
# Huawei's own values, kept apart from pushgate's client so that the emulator checks the
# client rather than repeating it.
MAX_TTL_SECONDS: Final = 15 * 24 * 3600
_TTL = re.compile(r"^(\d+)(\.\d{1,9})?[sS]?$")
_URGENCIES: Final = frozenset({"HIGH", "NORMAL"})
_CATEGORIES: Final = frozenset(
    {
        "IM",
        "VOIP",
        "SUBSCRIPTION",
        "TRAVEL",
        "HEALTH",
        "WORK",
        "ACCOUNT",
        "EXPRESS",
        "FINANCE",
        "DEVICE_REMINDER",
        "MAIL",
        "MARKETING",
    }
)
_IMPORTANCES: Final = frozenset({"NORMAL", "LOW"})
_VISIBILITIES: Final = frozenset({"VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"})
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_NOTIFICATION_TEXTS: Final = ("title", "body", "image")
_ANDROID_NOTIFICATION_TEXTS: Final = (
    "title",
    "body",
    "icon",
    "sound",
    "tag",
    "body_loc_key",
    "title_loc_key",
    "channel_id",
    "notify_summary",
    "image",
    "big_title",
    "big_body",
    "group",
    "ticker",
    "when",
)
_ANDROID_NOTIFICATION_FLAGS: Final = (
    "default_sound",
    "auto_cancel",
    "use_default_vibrate",
    "use_default_light",
    "foreground_show",
)
_JSON: Final = ("content-type", "application/json;charset=UTF-8")

SUCCESS: Final = "80000000"
PARTIAL_SUCCESS: Final = "80100000"
PARAMETER_ERROR: Final = "80100001"
BAD_STRUCTURE: Final = "80100003"
AUTH_ERROR: Final = "80200001"
TOKEN_EXPIRED: Final = "80200003"
NO_PERMISSION: Final = "80300002"
ALL_TOKENS_INVALID: Final = "80300007"
BODY_TOO_LARGE: Final = "80300008"
TOO_MANY_TOKENS: Final = "80300010"
INTERNAL_ERROR: Final = "81000001"

_HTTP_STATUS: Final[dict[str, int]] = {
    SUCCESS: 200,
    PARTIAL_SUCCESS: 200,
    PARAMETER_ERROR: 400,
    BAD_STRUCTURE: 400,
    AUTH_ERROR: 401,
    TOKEN_EXPIRED: 401,
    NO_PERMISSION: 403,
    ALL_TOKENS_INVALID: 400,
    BODY_TOO_LARGE: 413,
    TOO_MANY_TOKENS: 400,
    INTERNAL_ERROR: 500,
}
_MESSAGES: Final[dict[str, str]] = {
    SUCCESS: "Success",
    PARAMETER_ERROR: "Some request parameters are incorrect",
    BAD_STRUCTURE: "Incorrect message structure",
    AUTH_ERROR: "Oauth authentication error",
    TOKEN_EXPIRED: "Oauth Token expired",
    NO_PERMISSION: "The current app does not have the permission to send messages",
    ALL_TOKENS_INVALID: "All the tokens are invalid",
    BODY_TOO_LARGE: "The message body size exceeds the default value",
    TOO_MANY_TOKENS: "The number of tokens in the message body exceeds the default value",
    INTERNAL_ERROR: "System internal error",
}


@dataclass(frozen=True, slots=True)
class HmsGrant:
    app_id: str
    client_id: str
    expires_at: float


class HmsEmulator:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._grants: dict[str, HmsGrant] = {}

    async def handle(self, request: Request) -> Response:
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        match = _SEND.match(request.path)
        if match is None or request.method != "POST":
            return Response(404, b'{"error": "not found"}', [_JSON])
        return await self._send(request, match.group(1))

    def issue(self, app_id: str, client_id: str) -> tuple[str, int]:
        token = "CV" + secrets.token_urlsafe(48)
        now = self.state.now()
        self._grants[token] = HmsGrant(app_id, client_id, now + ACCESS_TOKEN_TTL)
        if len(self._grants) > 10_000:
            self._grants = {k: g for k, g in self._grants.items() if g.expires_at > now}
        return token, ACCESS_TOKEN_TTL

    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(1102, 20001, "unsupported grant_type")
        app = self.state.credentials.hms_app(form.get("client_id", ""))
        if app is None:
            return _oauth_error(1101, 20152, "invalid client_id")
        if not secrets.compare_digest(
            app.client_secret.encode(), form.get("client_secret", "").encode()
        ):
            return _oauth_error(1101, 20155, "invalid client_secret")
        token, ttl = self.issue(app.app_id, app.client_id)
        body = {"access_token": token, "expires_in": ttl, "token_type": "Bearer"}
        return Response(200, json.dumps(body).encode(), [_JSON])

    async def _send(self, request: Request, app_id: str) -> Response:
        fault = self.state.draw_fault(PLATFORM)
        if fault is not None:
            if fault.latency > 0:
                await asyncio.sleep(fault.latency)
            # A goaway or drop fault: handled as usual, then the server acts on the connection.
            request.connection_fault = fault.connection
            if fault.status is not None:
                extra = (
                    [] if fault.retry_after is None else [("retry-after", str(fault.retry_after))]
                )
                text = "System internal error" if fault.status == 500 else "Flow control"
                return _answer(INTERNAL_ERROR, text, status=fault.status, extra=extra)
        scheme, _, access_token = (request.header("authorization") or "").partition(" ")
        grant = self._grants.get(access_token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            return _answer(AUTH_ERROR)
        if grant.expires_at <= self.state.now():
            return _answer(TOKEN_EXPIRED)
        if grant.app_id != app_id:
            return _answer(NO_PERMISSION)
        try:
            body = json.loads(request.body)
        except ValueError:
            return _answer(BAD_STRUCTURE)
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            return _answer(BAD_STRUCTURE)
        message: dict[str, Any] = body["message"]
        validate_only = body.get("validate_only", False)
        if not isinstance(validate_only, bool):
            return _answer(PARAMETER_ERROR)
        targets = [t for t in ("token", "topic", "condition") if message.get(t) is not None]
        if len(targets) != 1:
            return _answer(PARAMETER_ERROR)
        tokens: list[str] = []
        if targets[0] == "token":
            raw = message["token"]
            if (
                not isinstance(raw, list)
                or not raw
                or not all(isinstance(t, str) and t for t in raw)
            ):
                return _answer(PARAMETER_ERROR)
            if len(raw) > MAX_TOKENS:
                return _answer(TOO_MANY_TOKENS)
            tokens = list(raw)
        elif not isinstance(message[targets[0]], str):
            return _answer(PARAMETER_ERROR)
        data = message.get("data")
        if data is not None and not isinstance(data, str):
            return _answer(PARAMETER_ERROR)
        refused = check_message(message)
        if refused is not None:
            code, field = refused
            return _answer(code, f"{_MESSAGES[code]}: {field}")
        content = {k: v for k, v in message.items() if k != "token"}
        if len(json.dumps(content, separators=(",", ":")).encode()) > MAX_MESSAGE_BYTES:
            return _answer(BODY_TOO_LARGE)
        illegal = [
            t
            for t in tokens
            if (o := self.state.token_outcome(PLATFORM, t)) and o.outcome == HMS_INVALID
        ]
        if tokens and len(illegal) == len(tokens):
            return _answer(ALL_TOKENS_INVALID)
        if not validate_only:
            rejected = set(illegal)
            version = request.http_version
            for token in tokens:
                if token not in rejected:
                    self.state.record_delivery(PLATFORM, token, request.headers, body, version)
            if not tokens:
                self.state.record_delivery(PLATFORM, None, request.headers, body, version)
        if illegal:
            summary = {
                "success": len(tokens) - len(illegal),
                "failure": len(illegal),
                "illegal_tokens": illegal,
            }
            return _answer(PARTIAL_SUCCESS, json.dumps(summary, separators=(",", ":")))
        return _answer(SUCCESS)


def check_message(message: dict[str, Any]) -> tuple[str, str] | None:
    """The result code and the field Huawei would refuse `message` for, or None."""
    notification = message.get("notification")
    if notification is not None:
        if not isinstance(notification, dict):
            return BAD_STRUCTURE, "message.notification"
        for name in _NOTIFICATION_TEXTS:
            if not isinstance(notification.get(name, ""), str):
                return PARAMETER_ERROR, f"message.notification.{name}"
    android = message.get("android")
    if android is None:
        return None
    if not isinstance(android, dict):
        return BAD_STRUCTURE, "message.android"
    return _check_android(android)


def _check_android(android: dict[str, Any]) -> tuple[str, str] | None:
    collapse_key = android.get("collapse_key", -1)
    if not _integer(collapse_key) or not -1 <= collapse_key <= 100:
        return PARAMETER_ERROR, "message.android.collapse_key"
    for name, allowed in (("urgency", _URGENCIES), ("category", _CATEGORIES)):
        if name in android and android[name] not in allowed:
            return PARAMETER_ERROR, f"message.android.{name}"
    if "ttl" in android:
        ttl = android["ttl"]
        match = _TTL.match(ttl) if isinstance(ttl, str) else None
        if match is None or float(match.group(1) + (match.group(2) or "")) > MAX_TTL_SECONDS:
            return PARAMETER_ERROR, "message.android.ttl"
    for name in ("bi_tag", "data"):
        if not isinstance(android.get(name, ""), str):
            return PARAMETER_ERROR, f"message.android.{name}"
    if android.get("fast_app_target", 1) not in (1, 2):
        return PARAMETER_ERROR, "message.android.fast_app_target"
    notification = android.get("notification")
    if notification is None:
        return None
    if not isinstance(notification, dict):
        return BAD_STRUCTURE, "message.android.notification"
    return _check_android_notification(notification)


def _check_android_notification(notification: dict[str, Any]) -> tuple[str, str] | None:
    where = "message.android.notification"
    for name in _ANDROID_NOTIFICATION_TEXTS:
        if not isinstance(notification.get(name, ""), str):
            return PARAMETER_ERROR, f"{where}.{name}"
    for name in _ANDROID_NOTIFICATION_FLAGS:
        if not isinstance(notification.get(name, False), bool):
            return PARAMETER_ERROR, f"{where}.{name}"
    if "importance" in notification and notification["importance"] not in _IMPORTANCES:
        return PARAMETER_ERROR, f"{where}.importance"
    if "visibility" in notification and notification["visibility"] not in _VISIBILITIES:
        return PARAMETER_ERROR, f"{where}.visibility"
    color = notification.get("color")
    if color is not None and not (isinstance(color, str) and _COLOR.match(color)):
        return PARAMETER_ERROR, f"{where}.color"
    if notification.get("style", 0) not in (0, 1, 3):
        return PARAMETER_ERROR, f"{where}.style"
    if not _integer(notification.get("notify_id", 0)):
        return PARAMETER_ERROR, f"{where}.notify_id"
    click = notification.get("click_action")
    if not isinstance(click, dict):
        return PARAMETER_ERROR, f"{where}.click_action"
    kind = click.get("type")
    needed = {1: ("intent", "action"), 2: ("url",), 3: (), 4: ("rich_resource",)}
    if not _integer(kind) or kind not in needed:
        return PARAMETER_ERROR, f"{where}.click_action.type"
    fields = needed[kind]
    if fields and not any(isinstance(click.get(f), str) and click[f] for f in fields):
        return PARAMETER_ERROR, f"{where}.click_action.{fields[0]}"
    return None


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _request_id() -> str:
    return f"{secrets.randbelow(10**18):018d}{secrets.randbelow(10**6):06d}"


def _answer(
    code: str,
    message: str | None = None,
    *,
    status: int | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> Response:
    body = {"code": code, "msg": message or _MESSAGES[code], "requestId": _request_id()}
    return Response(
        status or _HTTP_STATUS[code], json.dumps(body).encode(), [_JSON, *(extra or [])]
    )


def _oauth_error(error: int, sub_error: int, description: str) -> Response:
    body = {"error": error, "sub_error": sub_error, "error_description": description}
    return Response(400, json.dumps(body).encode(), [_JSON])
