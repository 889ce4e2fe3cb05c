"""HMS Push Kit v1: the pure parts (no I/O).

- `HmsCredential.parse`: the uploaded `{"app_id", "client_id", "client_secret"}`.
- `token_request_body`: the client-credentials grant's form body.
- `build_send`: the path and body of one send, with `message.token = [token]`.
- `classify`: an HMS answer as a `Verdict`.

Answers (providers.md), by the result `code` of the JSON body, else by HTTP status:

==========  =======================================  ==========================
code        meaning                                  verdict (reason)
==========  =======================================  ==========================
80000000    success                                  ok
80100000    partial success; `msg` is JSON with      dead_token (NotRegistered) when
            success/failure counts, illegal_tokens   our token is illegal; ok when
                                                     success > 0; else rejected
80300007    all tokens invalid                       dead_token (NotRegistered)
80200001    authentication error                     credential
80300002    no push permission for the app           credential (nothing sent with
                                                     this credential can succeed)
80200003    access token expired                     retry, refresh_auth,
                                                     detail "token_expired"
80100001    parameter error                          rejected
80100003    bad message structure                    rejected
80300008    body too large                           rejected
80300010    too many tokens                          rejected
81000001    internal error                           retry
HTTP 503    flow control                             retry (Retry-After honoured)
other       5xx / 429 / 81xxxxxx: retry; 401: credential + refresh_auth; else rejected
==========  =======================================  ==========================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import msgspec

from pushgate.providers.errors import CredentialError
from pushgate.providers.verdict import Verdict, VerdictKind, header, parse_retry_after

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

_REJECTED = frozenset({PARAMETER_ERROR, BAD_MESSAGE, BODY_TOO_LARGE, TOO_MANY_TOKENS})


@dataclass(frozen=True, slots=True)
class HmsCredential:
    app_id: str
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> HmsCredential:
        """From the uploaded JSON object; `client_id` defaults to `app_id` (HMS apps use
        the app id as OAuth client id). Raises `CredentialError`."""
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
        return cls(**values)


def token_request_body(client_id: str, client_secret: str) -> bytes:
    """`grant_type=client_credentials&client_id=...&client_secret=...`, form-encoded."""
    return urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    ).encode()


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
    retry_after = parse_retry_after(header(headers, "retry-after"), now)
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
            retry_after=retry_after,
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
    if code in (AUTH_ERROR, NO_PERMISSION):
        return verdict("credential")
    if code == TOKEN_EXPIRED:
        return verdict("retry", detail="token_expired", refresh_auth=True)
    if code in _REJECTED:
        return verdict("rejected")
    if code == INTERNAL_ERROR or code.startswith("81") or status == 429 or status >= 500:
        return verdict("retry", code or f"HTTP{status}")
    if status == 401:
        return verdict("credential", code or "HTTP401", refresh_auth=True)
    if 200 <= status < 300 and not code:
        return verdict("rejected", "BadResponse", detail="2xx answer without a result code")
    return verdict("rejected", code or f"HTTP{status}")
