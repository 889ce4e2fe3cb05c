"""A notification after validation: one spelling per field, values normalised.

This is what the rest of the pipeline (targeting decisions, payload builders,
the queue) consumes; the wire shapes stay in `schema.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_TTL_SECONDS = 2_419_200  # 28 days, contract.md


@dataclass(frozen=True, slots=True)
class Identifier:
    """One identifier as used for lookup: `kind` without the INSIDER. prefix."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class PlatformPush:
    sound: str | None = None
    deep_links: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AndroidPush(PlatformPush):
    channel_id: str | None = None


@dataclass(frozen=True, slots=True)
class IosPush(PlatformPush):
    thread_id: str | None = None
    badge: int | None = None
    content_available: bool = False
    mutable_content: bool = False


@dataclass(frozen=True, slots=True)
class AdvancedItem:
    id: int
    headline: str
    description: str
    image_url: str
    deep_links: dict[str, str]


@dataclass(frozen=True, slots=True)
class AdvancedPush:
    type: str  # "carousel" or "slider"
    items: tuple[AdvancedItem, ...]


@dataclass(frozen=True, slots=True)
class Push:
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
