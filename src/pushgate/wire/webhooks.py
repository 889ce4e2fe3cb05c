"""A partner's webhook (contract.md, "Webhooks"; docs/api.md)."""

from __future__ import annotations

import msgspec


class WebhookRequest(msgspec.Struct, kw_only=True):
    """PUT /api/v1/webhook."""

    url: str
    events: list[str] | None = None  # absent or null: every event


class WebhookSecret(msgspec.Struct, kw_only=True):
    """PUT on creation, and POST /api/v1/webhook/rotate-secret: the secret, shown only here."""

    url: str
    events: list[str]
    secret: str


class WebhookSettings(msgspec.Struct, kw_only=True):
    """PUT replacing a webhook's URL or events: its secret stays as it was."""

    url: str
    events: list[str]


class WebhookStatus(msgspec.Struct, kw_only=True):
    """GET /api/v1/webhook."""

    url: str
    events: list[str]
    enabled: bool
    last_error: str | None
