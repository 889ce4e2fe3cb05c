"""What one provider answer means for the notification and for the device token.

Every provider client turns its answer (or its failure to get one) into a `Verdict`, so
that delivery decides retries, token invalidation and fail records the same way for
APNs, FCM and HMS.

kind (`pushgate.jobs.VerdictKind`; providers.md "Which failures change a device")
    ``ok``          accepted by the provider.
    ``retry``       transient: 429, 5xx, connection loss, timeouts, GOAWAY. Retry with backoff
                    (never sooner than `retry_after`) until the notification's TTL.
    ``dead_token``  the token is proven dead (APNs 410, APNs BadDeviceToken on both
                    environments, FCM UNREGISTERED or INVALID_ARGUMENT naming `message.token`,
                    HMS illegal tokens): retire the device (APNs 410: only when `timestamp_ms`
                    is later than the token's last registration). The only kind that retires one.
    ``credential``  the partner's credential does not work, after a refreshed token was refused
                    too or when the answer leaves no doubt: record it, stop sending with the
                    credential, report `InvalidCertificate`.
    ``rejected``    this push fails for good and nothing else changes: a payload problem
                    (`PayloadTooLarge`, FCM INVALID_ARGUMENT about a field of the message) or
                    the partner's configuration (`DeviceTokenNotForTopic`, `SENDER_ID_MISMATCH`,
                    `BadCertificateEnvironment`...), which fixing the configuration must undo,
                    so the device stays.

reason
    The name used in fail records: APNs reasons as-is (`Unregistered`, `BadDeviceToken`...),
    FCM error codes mapped to their legacy names (`NotRegistered`, `InvalidRegistration`,
    `MismatchSenderId`...), HMS illegal tokens as `NotRegistered`, otherwise the provider's
    code. Empty when the provider accepted the push.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pushgate.jobs import VerdictKind


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str = ""
    status: int = 0  # HTTP status of the answer; 0 when there was no answer
    detail: str = ""
    retry_after: float | None = None  # seconds, from Retry-After (pushgate/retry_after.py)
    timestamp_ms: int | None = None  # APNs 410: when the token stopped being valid
    # The access token (FCM/HMS) or provider token (APNs) must be renewed before the retry.
    refresh_auth: bool = False
    # APNs: the token was refused on its recorded environment and accepted on this one
    # ("production" or "sandbox"), which the device is corrected to.
    environment: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def permanent(self) -> bool:
        """True when retrying the same request cannot succeed."""
        return self.kind not in ("ok", "retry")


def retry_verdict(detail: str, *, reason: str = "", status: int = 0) -> Verdict:
    """A transient failure without a provider answer (connection loss, timeout)."""
    return Verdict(kind="retry", reason=reason, status=status, detail=detail)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value by lower-case name, tolerating mixed-case keys."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None
