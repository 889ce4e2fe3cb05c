"""GET /healthz and /readyz (docs/operations.md, "Monitoring")."""

from __future__ import annotations

import msgspec


class HealthStatus(msgspec.Struct, kw_only=True):
    status: str  # "ok" (200), or "starting" (503)


class ReadyStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    status: str  # "ready" (200), or "unavailable" (503)
    # The checks that failed: "store", "queue", "redis", "service".
    failing: list[str] = msgspec.field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.status == "ready"
