"""The providers' error vocabularies: APNs reasons, FCM error codes, HMS token outcomes.

`normalize_outcome` turns what the control route `POST /emulator/v1/tokens` receives into the
canonical name an emulator answers with (case-insensitive; FCM also takes the legacy names).
"""

from __future__ import annotations

from typing import Final, Literal

Platform = Literal["ios", "android", "huawei"]
PLATFORMS: Final = ("ios", "android", "huawei")
OK: Final = "ok"

APNS_REASONS: Final[dict[str, int]] = {
    **dict.fromkeys(
        (
            "BadCollapseId",
            "BadDeviceToken",
            "BadExpirationDate",
            "BadMessageId",
            "BadPriority",
            "BadTopic",
            "DeviceTokenNotForTopic",
            "DuplicateHeaders",
            "IdleTimeout",
            "InvalidPushType",
            "MissingDeviceToken",
            "MissingTopic",
            "PayloadEmpty",
            "TopicDisallowed",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "BadCertificate",
            "BadCertificateEnvironment",
            "ExpiredProviderToken",
            "Forbidden",
            "InvalidProviderToken",
            "MissingProviderToken",
        ),
        403,
    ),
    "BadPath": 404,
    "MethodNotAllowed": 405,
    "Unregistered": 410,
    "ExpiredToken": 410,
    "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "Shutdown": 503,
}
"""Every APNs reason and its HTTP status."""

APNS_FAULT_REASONS: Final[dict[int, str]] = {
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


FCM_ERRORS: Final[dict[str, tuple[int, str, str]]] = {
    "INVALID_ARGUMENT": (
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "QUOTA_EXCEEDED": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Messages' of service 'fcm.googleapis.com'.",
    ),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    # The APNs certificate or web-push key stored in Firebase, not the access token (that is a
    # 401 without an FcmError).
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}
"""FCM `errorCode` -> (HTTP status, `status`, message)."""

FCM_FAULT_CODES: Final[dict[int, str]] = {
    429: "QUOTA_EXCEEDED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

_FCM_LEGACY: Final[dict[str, str]] = {
    "notregistered": "UNREGISTERED",
    "mismatchsenderid": "SENDER_ID_MISMATCH",
    "invalidregistration": "INVALID_ARGUMENT",
}

HMS_INVALID: Final = "invalid"
_HMS_OUTCOMES: Final[dict[str, str]] = {
    "invalid": HMS_INVALID,
    "illegal": HMS_INVALID,
    "illegal_token": HMS_INVALID,
    "invalid_token": HMS_INVALID,
    "80300007": HMS_INVALID,
}

FAULT_STATUSES: Final = (429, 500, 503)


def normalize_outcome(platform: str, outcome: str) -> str | None:
    """The canonical outcome for `platform`, `ok` for ok, or None if the provider has no such one."""
    key = outcome.strip().lower()
    if key == OK:
        return OK
    if platform == "ios":
        return next((reason for reason in APNS_REASONS if reason.lower() == key), None)
    if platform == "android":
        upper = key.upper()
        if upper in FCM_ERRORS:
            return upper
        return _FCM_LEGACY.get(key)
    if platform == "huawei":
        return _HMS_OUTCOMES.get(key)
    return None


def known_outcomes(platform: str) -> list[str]:
    if platform == "ios":
        return [OK, *APNS_REASONS]
    if platform == "android":
        return [OK, *FCM_ERRORS]
    if platform == "huawei":
        return [OK, HMS_INVALID]
    return []
