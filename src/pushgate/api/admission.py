"""Load shedding: a request the service cannot serve soon is answered 503 with `Retry-After`
at once, before its body is read, instead of waiting in memory until its client times out.

A request is refused when taking it would pass one of these bounds:
- requests being handled by this process (`max_requests`), and the bytes of their bodies
  (`max_body_bytes`, by `Content-Length`; a body without one is bounded while it is read);
- units of work waiting for the store (`max_store_backlog`): the database is saturated;
- jobs waiting in the delivery queue (`max_queue_depth`, read every few seconds): the workers
  cannot keep up, and what is accepted now would be sent late.

Refusal happens before anything is stored, so a refused request changed nothing and is safe
to send again. The health, readiness and metrics endpoints are never refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pushgate.api.http import MAX_BODY_BYTES, Response, error_json, scope_header
from pushgate.api.types import Scope

RETRY_AFTER_SECONDS = 1
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True)
class Limits:
    max_requests: int = 1024
    max_body_bytes: int = 256 * 2**20
    max_store_backlog: int = 4096
    max_queue_depth: int = 10_000_000  # 0: no bound


def overloaded(reason: str, retry_after: int = RETRY_AFTER_SECONDS) -> Response:
    return error_json(
        503,
        "overloaded",
        f"the service is overloaded ({reason}); retry after {retry_after} seconds",
        headers=((b"retry-after", str(retry_after).encode()),),
    )


class Admission:
    """Counts what this process holds; `store_backlog` and `queue_depth` tell the rest."""

    def __init__(
        self,
        limits: Limits,
        store_backlog: Callable[[], int],
        queue_depth: Callable[[], int | None],
    ) -> None:
        self.limits = limits
        self._store_backlog = store_backlog
        self._queue_depth = queue_depth
        self.requests = 0
        self.body_bytes = 0
        self.refused: dict[str, int] = {}

    def refuse(self, scope: Scope) -> Response | None:
        """A 503 to answer instead of handling the request; None: it is admitted, and
        `release(scope)` must follow when it has been answered."""
        if scope["path"] in EXEMPT:
            return None
        limits = self.limits
        size = _content_length(scope)
        reason = None
        if self.requests >= limits.max_requests:
            reason = "too many requests in progress"
        elif size and self.body_bytes + size > limits.max_body_bytes:
            reason = "too many request bytes in progress"
        elif self._store_backlog() >= limits.max_store_backlog:
            reason = "the database is saturated"
        elif limits.max_queue_depth and (self._queue_depth() or 0) >= limits.max_queue_depth:
            reason = "the delivery queue is full"
        if reason is not None:
            self.refused[reason] = self.refused.get(reason, 0) + 1
            return overloaded(reason)
        self.requests += 1
        self.body_bytes += size
        return None

    def release(self, scope: Scope) -> None:
        if scope["path"] not in EXEMPT:
            self.requests -= 1
            self.body_bytes -= _content_length(scope)


def _content_length(scope: Scope) -> int:
    """The body's size as announced; a body sent without a length may grow to the limit."""
    length = scope_header(scope, b"content-length")
    if length is None:
        return 0 if scope["method"] in ("GET", "HEAD") else MAX_BODY_BYTES
    try:
        return min(max(0, int(length)), MAX_BODY_BYTES)
    except ValueError:
        return MAX_BODY_BYTES
