"""Request-level errors of the Targeted Push API, with the exact bodies of the spec."""

from __future__ import annotations


class ApiError(Exception):
    """An answer of the form {"error": code, "message": message} with an HTTP status.

    A plain exception class: a frozen dataclass would refuse the `__traceback__`
    that the interpreter and contextlib assign to exceptions.
    """

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


# Bodies fixed by targeted-push-api.txt; the texts are kept byte for byte,
# including the unbalanced quote of NEGATIVE_INTEGER.
EMPTY_IDENTIFIERS = ApiError(
    400,
    "empty_insider_identifiers",
    "'insider_identifiers' object need to have at least one identifier",
)
EMPTY_NOTIFICATIONS = ApiError(
    400, "invalid_notifications", "'notifications' is empty, add some notification objects"
)
TOO_MANY_NOTIFICATIONS = ApiError(
    400, "invalid_notifications", "'notifications' can't have more than 20 objects"
)
NEGATIVE_INTEGER = ApiError(
    400, "negative_integer", "camp_id' and/or 'channel_id' must be greater than zero"
)
INVALID_ADVANCED_PUSH_TYPE = ApiError(
    400, "invalid_advanced_push_type", "'advanced_push_type' must be either Carousel or Slider"
)
INVALID_CERTIFICATE = ApiError(
    400,
    "invalid_certificate",
    "You do not have a validated certificate. Please check Certificate section under "
    "Insider's Settings.",
)
BAD_API_KEY = ApiError(
    401,
    "bad_api_key",
    "'api_key' is either empty or wrong. You can get your API key from Insider Dashboard",
)
IP_NOT_ALLOWED = ApiError(
    403, "ip_not_allowed", "requests with this API key are not accepted from this address"
)
# Decided in insider-ecosystem.md §1.
TOO_MANY_IDENTIFIERS = ApiError(
    400, "too_many_identifiers", "a request can target at most 50 user identifiers"
)


def too_many_requests(wait: float) -> ApiError:
    """429 with `Retry-After`: a partner over its rate limit, or a client address over its
    allowance of bad keys (limits/bad_keys.py); one body for both, so neither tells more."""
    seconds = max(1, int(wait + 0.999))
    return ApiError(
        429,
        "too_many_requests",
        f"rate limit exceeded; retry after {seconds} seconds",
        retry_after=seconds,
    )


def blacklisted_deeplink(key: str) -> ApiError:
    return ApiError(400, "blacklisted_deeplink", f"deepLink can't contain '{key}' key")


def invalid_json(detail: str) -> ApiError:
    return ApiError(400, "invalid_json", f"request body is not valid JSON: {detail}")


def missing_field(field: str, where: str) -> ApiError:
    return ApiError(400, "missing_field", f"'{field}' is required{_at(where)}")


def invalid_type(detail: str, where: str) -> ApiError:
    return ApiError(400, "invalid_type", f"{detail}{_at(where)}")


def invalid_deeplink(key: str, rule: str) -> ApiError:
    return ApiError(400, "invalid_deeplink", f"deep link '{key}' {rule}")


def invalid_ttl(ttl: int, maximum: int) -> ApiError:
    return ApiError(400, "invalid_ttl", f"'ttl' must be between 1 and {maximum} seconds, got {ttl}")


def payload_too_large(platform: str, size: int, limit: int) -> ApiError:
    return ApiError(
        400,
        "payload_too_large",
        f"the {platform} push payload would be {size} bytes; providers accept at most {limit}",
    )


def _at(where: str) -> str:
    return f" (at {where})" if where else ""


def invalid_value(detail: str, where: str) -> ApiError:
    return ApiError(400, "invalid_value", f"{detail}{_at(where)}")


def invalid_advanced_push_items(detail: str) -> ApiError:
    return ApiError(400, "invalid_advanced_push_items", detail)


def invalid_send_at(message: str) -> ApiError:
    return ApiError(400, "invalid_send_at", message)
