"""HMS Push Kit v1: the pure parts (no I/O).

- `HmsCredential.parse`: the uploaded `{"app_id", "client_id", "client_secret"}`, with an
  optional default `category` and `importance` (Huawei's message classification).
- `token_request_body`: the client-credentials grant's form body.
- `prepare_message`: the message as Huawei accepts it: `android.ttl` at most 15 days, the
  credential's default category and importance where the message has none.
- `build_send`: the path and body of one send, with `message.token = [token]`.
- `classify`: an HMS answer as a `Verdict`.

Answers (providers.md, "Which failures change a device"), by the result `code` of the JSON
body, else by HTTP status:

==========  =======================================  ==========================
code        meaning                                  verdict (reason)
==========  =======================================  ==========================
80000000    success                                  ok
80100000    partial success; `msg` is JSON with      dead_token (NotRegistered) when
            success/failure counts, illegal_tokens   our token is illegal; ok when
                                                     success > 0; else rejected
80300007    all tokens invalid                       dead_token (NotRegistered)
80200001    authentication error                     credential, refresh_auth
80200003    access token expired                     credential, refresh_auth
80300002    no push permission for the app           rejected (configuration: the
                                                     device stays)
80100001    parameter error                          rejected (payload)
80100003    bad message structure                    rejected (payload)
80300008    body too large                           rejected (payload)
80300010    too many tokens                          rejected
81000001    internal error                           retry
HTTP 503    flow control                             retry (Retry-After honoured)
other       5xx / 429 / 81xxxxxx: retry; 401: credential + refresh_auth; else rejected
==========  =======================================  ==========================

`refresh_auth` with `credential`: the sender fetches a new access token and tries once
more; only a second refusal makes the credential invalid (an access token can be revoked
or expire early on Huawei's side while the app's secret is still good).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

import msgspec

from pushgate.jobs import VerdictKind
from pushgate.providers.errors import CredentialError
from pushgate.providers.verdict import Verdict, header
from pushgate.retry_after import parse_retry_after

HMS_URL = "https://push-api.cloud.huawei.com"
HMS_TOKEN_URL = "https://oauth-login.cloud.huawei.com/oauth2/v3/token"

SUCCESS = "80000000"
PARTIAL_SUCCESS = "80100000"
PARAMETER_ERROR = "80100001"
BAD_MESSAGE = "80100003"
AUTH_ERROR = "80200001"
TOKEN_EXPIRED = "80200003"
NO_PERMISSION = "80300002"
ALL_TOKENS_INVALID = "80300007"
BODY_TOO_LARGE = "80300008"
TOO_MANY_TOKENS = "80300010"
INTERNAL_ERROR = "81000001"

_REJECTED = frozenset(
    {PARAMETER_ERROR, BAD_MESSAGE, BODY_TOO_LARGE, TOO_MANY_TOKENS, NO_PERMISSION}
)

# Huawei keeps a message for an offline device at most 15 days (`android.ttl`).
MAX_TTL_SECONDS: Final = 15 * 24 * 3600
# `android.category`, Huawei's self-classification of a message (apps granted the right);
# without one Huawei counts a notification as information and marketing, capped per day.
CATEGORIES: Final = frozenset(
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
# `android.notification.importance`: NORMAL (service and communication), LOW (silent).
IMPORTANCES: Final = frozenset({"NORMAL", "LOW"})
# Huawei's `ttl` strings: seconds, optionally with up to nine decimals and an `s`.
_TTL = re.compile(r"^(\d+)(\.\d{1,9})?[sS]?$")


@dataclass(frozen=True, slots=True)
class HmsCredential:
    app_id: str
    client_id: str
    client_secret: str = field(repr=False)
    category: str | None = None  # the default `android.category`
    importance: str | None = None  # the default `android.notification.importance`

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> HmsCredential:
        """From the uploaded JSON object; `client_id` defaults to `app_id` (HMS apps use
        the app id as OAuth client id). Raises `CredentialError`, also for a default
        `category` or `importance` Huawei would refuse in every message."""
        values: dict[str, str] = {}
        for name in ("app_id", "client_id", "client_secret"):
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # app ids are numeric and often sent as numbers
            if value is None and name == "client_id":
                value = values.get("app_id")
            if not isinstance(value, str) or not value.strip():
                raise CredentialError(f"huawei credential lacks {name}")
            values[name] = value.strip()
        return cls(
            **values,
            category=_choice(data, "category", CATEGORIES),
            importance=_choice(data, "importance", IMPORTANCES),
        )


def _choice(data: Mapping[str, Any], name: str, allowed: frozenset[str]) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise CredentialError(
            f"huawei {name} {value!r} is not one of Huawei's values: {', '.join(sorted(allowed))}"
        )
    return value


def ttl_seconds(value: object) -> float | None:
    """The seconds of an `android.ttl` string as Huawei reads it; None if malformed."""
    if not isinstance(value, str):
        return None
    match = _TTL.match(value)
    if match is None:
        return None
    return float(match.group(1) + (match.group(2) or ""))


def ttl_field(seconds: float) -> str:
    """`android.ttl` for a lifetime of `seconds`, cut to Huawei's 15 days."""
    return f"{min(MAX_TTL_SECONDS, max(0, int(seconds)))}s"


def prepare_message(
    message: Mapping[str, Any],
    *,
    ttl: float | None = None,
    category: str | None = None,
    importance: str | None = None,
    ttl_text: str | None = None,
) -> dict[str, Any]:
    """`message` as Huawei accepts it (a copy; the input is not changed).

    `ttl` (seconds) replaces `android.ttl`, as does `ttl_text`, a value already made by
    `ttl_field`; without either a ttl longer than 15 days is cut.
    `category` and `importance` (the credential's defaults) fill `android.category` and
    `android.notification.importance` where the message has none; importance only on a
    notification (a data message has no `android.notification` to put it in).
    """
    result = dict(message)
    raw = result.get("android")
    if raw is not None and not isinstance(raw, Mapping):
        return result  # Huawei refuses it as it is; nothing here can mend it
    android = dict(raw or {})
    if ttl_text is not None:
        android["ttl"] = ttl_text
    elif ttl is not None:
        android["ttl"] = ttl_field(ttl)
    elif (seconds := ttl_seconds(android.get("ttl"))) is not None and seconds > MAX_TTL_SECONDS:
        android["ttl"] = ttl_field(MAX_TTL_SECONDS)
    if category is not None and android.get("category") is None:
        android["category"] = category
    notification = android.get("notification")
    if (
        importance is not None
        and isinstance(notification, Mapping)
        and notification.get("importance") is None
    ):
        android["notification"] = {**notification, "importance": importance}
    if android or raw is not None:
        result["android"] = android
    return result


def token_request_body(client_id: str, client_secret: str) -> bytes:
    """`grant_type=client_credentials&client_id=...&client_secret=...`, form-encoded."""
    return urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    ).encode()


@functools.lru_cache(maxsize=256)  # the same few apps' paths, once per push
def send_path(app_id: str) -> str:
    return f"/v1/{quote(app_id, safe='')}/messages:send"


def build_send(app_id: str, body: Mapping[str, Any], token: str) -> tuple[str, bytes]:
    """The path and JSON body sending `body` (`{"validate_only", "message"}`, the message
    without a target) to the one `token`."""
    if not token:
        raise ValueError("token is empty")
    message = body.get("message", {})
    if not isinstance(message, Mapping):
        raise ValueError("body.message must be an object")
    if "topic" in message or "condition" in message:
        raise ValueError("message already has a topic or condition target")
    full = {
        "validate_only": bool(body.get("validate_only", False)),
        **{k: v for k, v in body.items() if k not in ("validate_only", "message")},
        "message": {**message, "token": [token]},
    }
    return send_path(app_id), msgspec.json.encode(full)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data: Any = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _partial(msg: object) -> tuple[int, int, list[str]] | None:
    """(success, failure, illegal_tokens) from a partial-success `msg`, None if unreadable."""
    data: Any = msg
    if isinstance(msg, str):
        try:
            data = msgspec.json.decode(msg)
        except msgspec.DecodeError:
            return None
    if not isinstance(data, dict):
        return None
    success = data.get("success", 0)
    failure = data.get("failure", 0)
    illegal = data.get("illegal_tokens") or data.get("illegalTokens") or []
    return (
        success if isinstance(success, int) else 0,
        failure if isinstance(failure, int) else 0,
        [t for t in illegal if isinstance(t, str)] if isinstance(illegal, list) else [],
    )


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    token: str | None = None,
    now: float | None = None,
) -> Verdict:
    """An HMS answer as a Verdict (see the module table).

    `token`: the token sent, to find it among a partial success's illegal tokens (without
    it any illegal token counts, which is right for one-token requests).
    """
    data = _decode(body)
    raw_code = data.get("code")
    code = str(raw_code) if isinstance(raw_code, str | int) else ""
    msg = data.get("msg")
    text = msg if isinstance(msg, str) else ""
    detail = f"{code}: {text}" if code and text else code or text

    def verdict(
        kind: VerdictKind,
        reason: str = code,
        *,
        detail: str = detail,
        refresh_auth: bool = False,
    ) -> Verdict:
        return Verdict(
            kind=kind,
            reason=reason,
            status=status,
            detail=detail,
            # Read only for a refusal: most answers are successes.
            retry_after=None
            if kind == "ok"
            else parse_retry_after(header(headers, "retry-after"), now),
            refresh_auth=refresh_auth,
        )

    if status == 503:
        return verdict("retry", code or "FlowControl")
    if code == SUCCESS and 200 <= status < 300:
        return verdict("ok", "", detail=str(data.get("requestId") or ""))
    if code == PARTIAL_SUCCESS:
        counts = _partial(msg)
        if counts is not None:
            success, _failure, illegal = counts
            if illegal and (token is None or token in illegal):
                return verdict("dead_token", "NotRegistered")
            if success > 0:
                return verdict("ok", "")
        return verdict("rejected")
    if code == ALL_TOKENS_INVALID:
        return verdict("dead_token", "NotRegistered")
    if code in (AUTH_ERROR, TOKEN_EXPIRED):
        return verdict("credential", refresh_auth=True)
    if code in _REJECTED:
        return verdict("rejected")
    if code == INTERNAL_ERROR or code.startswith("81") or status == 429 or status >= 500:
        return verdict("retry", code or f"HTTP{status}")
    if status == 401:
        return verdict("credential", code or "HTTP401", refresh_auth=True)
    if 200 <= status < 300 and not code:
        return verdict("rejected", "BadResponse", detail="2xx answer without a result code")
    return verdict("rejected", code or f"HTTP{status}")
