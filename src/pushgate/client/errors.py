"""The client's exceptions: one class per documented error, built from the server's answer.

Endpoint families answer errors in three shapes: `{"error": "<code>", "message": "<text>"}`
(the Targeted Push API and pushgate's own endpoints), `{"error": "<text>"}` (user data,
credential uploads, get_statistics' bad key) and plain text (Message Center). Every exception
keeps what the server said: `status`, `code` (the `error` value, or the text, verbatim) and
`message`; the class is chosen by the code first, then by the HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

from pushgate.retry_after import parse_retry_after
from pushgate.targeting.errors import ApiError
from pushgate.wire.errors import ErrorBody

if TYPE_CHECKING:
    from pushgate.wire.push import Notification, TargetedPushResponse


class PushgateError(Exception):
    """Any failure of a client call. `status` is None when no HTTP answer was received."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after  # seconds, from `Retry-After`
        # Set when a chunked `send`/`submit` stops at this error: the merged answers of the
        # requests that succeeded before it (`send` only), and the notifications not sent.
        self.completed: TargetedPushResponse | None = None
        self.not_sent: tuple[Notification, ...] = ()

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        if self.code and self.code != self.message:
            return f"{where}{self.code}: {self.message}"
        return f"{where}{self.message}"


class ConnectionFailed(PushgateError):
    """No answer: the connection failed or timed out (the httpx error is the `__cause__`).
    Never retried, since the server may have handled the request."""


class UnexpectedResponse(PushgateError):
    """A success status whose body is not the documented shape."""


class InvalidRequest(PushgateError):
    """400: the request breaks a rule; nothing was done."""


class InvalidJson(InvalidRequest):
    pass


class InvalidType(InvalidRequest):
    pass


class MissingField(InvalidRequest):
    pass


class InvalidValue(InvalidRequest):
    pass


class InvalidNotifications(InvalidRequest):
    """`notifications` is empty, or has more than 20 objects."""


class EmptyIdentifiers(InvalidRequest):
    """A notification has no identifier (`empty_insider_identifiers`)."""


class TooManyIdentifiers(InvalidRequest):
    """More than 50 identifier values in one request."""


class NegativeInteger(InvalidRequest):
    pass


class InvalidTtl(InvalidRequest):
    pass


class BlacklistedDeeplink(InvalidRequest):
    pass


class InvalidDeeplink(InvalidRequest):
    pass


class InvalidAdvancedPushType(InvalidRequest):
    pass


class InvalidAdvancedPushItems(InvalidRequest):
    pass


class PayloadTooLarge(InvalidRequest):
    """A built provider payload would exceed 4096 bytes."""


class InvalidSendAt(InvalidRequest):
    """`send_at` or `local_time` is not in a form the server reads, `send_at` is more than 30
    days ahead, or a notification has both."""


class InvalidSession(InvalidRequest):
    pass


class InvalidEvents(InvalidRequest):
    pass


class InvalidEvent(InvalidRequest):
    pass


class InvalidTimestamp(InvalidRequest):
    pass


class InvalidParameter(InvalidRequest):
    pass


class InvalidCertificate(PushgateError):
    """The partner has no validated credential (400 on a push), or an uploaded credential is
    unusable (406: it is kept, but not used)."""


class AuthenticationError(PushgateError):
    """401/403: the key, token or caller's address is not accepted."""


class BadApiKey(AuthenticationError):
    pass


class BadSdkKey(AuthenticationError):
    pass


class BadRequestToken(AuthenticationError):
    """User data: wrong partner name or request token (403)."""


class IpNotAllowed(AuthenticationError):
    pass


class NotFound(PushgateError):
    pass


class CampaignNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    pass


class RequestTooLarge(PushgateError):
    """413: the body is over 5,000,000 bytes."""


class TemporaryError(PushgateError):
    """The request was refused before anything was done and may be sent again after
    `retry_after` seconds; the client retries these (429, 503) within its `RetryPolicy`."""


class RateLimited(TemporaryError):
    pass


class Unavailable(TemporaryError):
    """503."""


class Overloaded(Unavailable):
    """503 `overloaded`: the server sheds load (docs/operations.md)."""


class IdempotencyKeyInUse(TemporaryError):
    """409: a request with the same Idempotency-Key is still being handled; sent again, it
    gets that request's answer (docs/api.md, "Idempotency keys")."""


class IdempotencyKeyReused(InvalidRequest):
    """422: the Idempotency-Key was used with another body."""


class InvalidIdempotencyKey(InvalidRequest):
    """400: the Idempotency-Key is not 1 to 255 printable ASCII characters."""


class ServerError(PushgateError):
    """5xx other than 503."""


# The `error` values of every family: snake_case codes, and the texts of the families that
# answer in prose (insider-ecosystem.md, docs/decisions.md, docs/statistics.md).
_BY_CODE: dict[str, type[PushgateError]] = {
    "invalid_json": InvalidJson,
    "request body is not valid JSON: bad request": InvalidJson,
    "invalid_type": InvalidType,
    "missing_field": MissingField,
    "invalid_value": InvalidValue,
    "invalid_notifications": InvalidNotifications,
    "empty_insider_identifiers": EmptyIdentifiers,
    "too_many_identifiers": TooManyIdentifiers,
    "negative_integer": NegativeInteger,
    "invalid_ttl": InvalidTtl,
    "blacklisted_deeplink": BlacklistedDeeplink,
    "invalid_deeplink": InvalidDeeplink,
    "invalid_advanced_push_type": InvalidAdvancedPushType,
    "invalid_advanced_push_items": InvalidAdvancedPushItems,
    "payload_too_large": PayloadTooLarge,
    "invalid_send_at": InvalidSendAt,
    "invalid_session": InvalidSession,
    "invalid_events": InvalidEvents,
    "invalid_event": InvalidEvent,
    "invalid_timestamp": InvalidTimestamp,
    "invalid_parameter": InvalidParameter,
    "invalid_certificate": InvalidCertificate,
    "bad_api_key": BadApiKey,
    "invalid_api_key": BadApiKey,
    "Bad Api Key.": BadApiKey,
    "bad api key": BadApiKey,
    "Invalid api key": BadApiKey,
    "No api key provided": BadApiKey,
    "bad_sdk_key": BadSdkKey,
    "invalid partner name or request token: forbidden": BadRequestToken,
    "ip_not_allowed": IpNotAllowed,
    "ip not allowed": IpNotAllowed,
    "not_found": NotFound,
    "campaign_not_found": CampaignNotFound,
    "user_not_found": UserNotFound,
    "no such user for these identifiers: no data": UserNotFound,
    "request_too_large": RequestTooLarge,
    "overloaded": Overloaded,
    "idempotency_key_in_use": IdempotencyKeyInUse,
    "idempotency_key_reused": IdempotencyKeyReused,
    "invalid_idempotency_key": InvalidIdempotencyKey,
    "invalid_webhook_url": InvalidRequest,
    "invalid_webhook_events": InvalidRequest,
    "webhook_not_found": NotFound,
}
_BY_STATUS: dict[int, type[PushgateError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFound,
    406: InvalidCertificate,
    413: RequestTooLarge,
    429: RateLimited,
    503: Unavailable,
}
_ERROR_BODY = msgspec.json.Decoder(ErrorBody)


def error_class(status: int, code: str) -> type[PushgateError]:
    # 429 and 503 decide alone: whatever a family calls them, they are what may be retried.
    if status == 429:
        return RateLimited
    if status == 503:
        return Overloaded if code == "overloaded" else Unavailable
    found = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if found is not None:
        return found
    return ServerError if status >= 500 else PushgateError


def error_from_answer(status: int, headers: Mapping[str, str], body: bytes) -> PushgateError:
    """The exception for an error answer, whichever family's shape its body has."""
    try:
        parsed = _ERROR_BODY.decode(body)
        code, message = parsed.error, parsed.message or parsed.error
    except (msgspec.DecodeError, msgspec.ValidationError):
        code = message = body.decode("utf-8", "replace").strip()
    cls = error_class(status, code)
    return cls(message, status=status, code=code, retry_after=retry_after(headers))


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """`Retry-After` in seconds (pushgate/retry_after.py: the rule the provider clients use)."""
    return parse_retry_after(headers.get("retry-after"), now)


def from_api_error(error: ApiError) -> PushgateError:
    """The exception for an answer the server's own rules give before any request is sent
    (`chunks.precheck`), with the status the server would have answered."""
    cls = error_class(error.status, error.code)
    return cls(error.message, status=error.status, code=error.code, retry_after=error.retry_after)
