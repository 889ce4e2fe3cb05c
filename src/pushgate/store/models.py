"""Records the store hands out."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RATE_LIMIT = 10_000  # requests per minute, targeted-push-api.txt
DEFAULT_ADVANCED_RATE_LIMIT = 1_000  # requests per minute carrying advanced_push_payload
DEFAULT_GFC_LIMIT = 0  # no cap until the operator sets one
DEFAULT_GFC_WINDOW = 86_400  # one calendar day in UTC
PLATFORMS = ("ios", "android", "huawei")


@dataclass(frozen=True, slots=True)
class Partner:
    id: int
    name: str
    rate_limit: int
    advanced_rate_limit: int
    gfc_limit: int
    gfc_window: int
    allow_ips: tuple[str, ...]
    validated_platforms: frozenset[str]
    timezone: str | None = None  # IANA name: users whose own zone is not known
    quiet_hours: tuple[int, int] | None = None  # (start, end) minute of the user's local day


@dataclass(frozen=True, slots=True)
class PartnerSecrets:
    partner: str
    api_key: str
    request_token: str
    sdk_key: str
