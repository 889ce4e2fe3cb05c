"""A notification after validation: one spelling per field, values normalised.

This is what the rest of the pipeline (targeting decisions, payload builders,
the queue) consumes; the wire shapes stay in `schema.py`.
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_TTL_SECONDS = 2_419_200  # 28 days, contract.md


class Identifier(msgspec.Struct, frozen=True):
    """One identifier as used for lookup: `kind` without the INSIDER. prefix."""

    kind: str
    value: str


class PlatformPush(msgspec.Struct, frozen=True):
    sound: str | None = None
    deep_links: dict[str, str] = msgspec.field(default_factory=dict)


class AndroidPush(PlatformPush, frozen=True):
    channel_id: str | None = None


class IosPush(PlatformPush, frozen=True):
    thread_id: str | None = None
    badge: int | None = None
    content_available: bool = False
    mutable_content: bool = False


class AdvancedItem(msgspec.Struct, frozen=True):
    id: int
    headline: str
    description: str
    image_url: str
    deep_links: dict[str, str]


class AdvancedPush(msgspec.Struct, frozen=True):
    type: str  # "carousel" or "slider"
    items: tuple[AdvancedItem, ...]


class Push(msgspec.Struct, frozen=True):
    index: int
    identifiers_sent: dict[str, Any]  # echoed back in `errors`, exactly as sent
    identifiers: tuple[Identifier, ...]
    camp_id: int
    camp_name: str
    title: str
    message: str
    image_url: str
    ttl: int
    check_optin: bool
    send_single_user: bool
    gfc_enabled: bool
    silent: bool
    android: AndroidPush
    ios: IosPush
    advanced: AdvancedPush | None
    # The notification without its identifiers, encoded: equal keys mean equal content,
    # so validation and payloads are reused across requests of one campaign.
    content_key: bytes = b""
    # When to send (targeting/timing.py; contract.md): at most one of the two; neither: now.
    send_at: float | None = None  # epoch seconds
    local_time: int | None = None  # minute of the user's local day
    ignore_quiet_hours: bool = False
