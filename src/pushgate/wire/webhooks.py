"""A partner's webhook (contract.md, "Webhooks"; docs/api.md)."""

from __future__ import annotations

import msgspec


class WebhookRequest(msgspec.Struct, kw_only=True):
    """PUT /api/v1/webhook."""

    url: str
    events: list[str] | None = None  # absent or null: every event


class WebhookAnswer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """PUT /api/v1/webhook and POST /api/v1/webhook/rotate-secret. The secret is shown when the
    webhook is created and when it is rotated, only: a PUT that changes an existing webhook
    keeps its secret and answers without it."""

    url: str
    events: list[str]
    secret: str | None = None


class WebhookStatus(msgspec.Struct, kw_only=True):
    """GET /api/v1/webhook."""

    url: str
    events: list[str]
    enabled: bool
    last_error: str | None


class DashboardWebhook(msgspec.Struct, kw_only=True):
    """GET /dashboard/api/webhook: the webhook, or null when the partner has none."""

    webhook: WebhookStatus | None
