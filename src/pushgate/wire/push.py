"""POST /api/v2/notification/user (targeted-push-api.txt, insider-ecosystem.md §1).

The request Structs are the ones the server decodes with (`pushgate.targeting.schema`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from pushgate.targeting.schema import (
    AdvancedPushItem,
    AdvancedPushPayload,
    AndroidOptions,
    IosOptions,
    Notification,
    TargetedPushRequest,
)

__all__ = [
    "AdvancedPushItem",
    "AdvancedPushPayload",
    "AndroidOptions",
    "AsyncAccepted",
    "IosOptions",
    "Notification",
    "TargetedPushRequest",
    "TargetedPushResponse",
]


class TargetedPushResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The 200 answer: one entry of `successes` per user sent to (`INSIDER.<attribute>` keys:
    the device token, or the `report_attributes` asked for), and per exclusion reason
    (`NoUserFound`, `OptOut`, `Unregistered`, `UserGloballyCapped`, `InvalidCertificate`) the
    identifier objects of the users excluded, exactly as sent."""

    successes: list[dict[str, Any]]
    errors: dict[str, list[dict[str, Any]]]
    # Present when a notification had `check_optin: true`: the users those were sent to.
    optin_delivery_count: int | None = None


class AsyncAccepted(msgspec.Struct, kw_only=True):
    """The 202 answer to a request with `"async": true`."""

    message: str  # "Async request accepted"
