"""One `send`/`submit` as the Targeted Push API requests it takes (shared by both clients)."""

from __future__ import annotations

from collections.abc import Sequence

from pushgate.client import chunks
from pushgate.client.errors import PushgateError, from_api_error
from pushgate.client.timing import Timing
from pushgate.targeting.errors import ApiError
from pushgate.wire.push import Notification, TargetedPushRequest


class Sending:
    """The requests of one send, the answers merged so far, and what a failure leaves."""

    def __init__(
        self,
        api_key: str,
        notifications: Sequence[Notification],
        report_attributes: Sequence[str] | None,
        is_async: bool,
        timing: Timing,
    ) -> None:
        self.is_async = is_async
        # The call's timing is written into the notifications first, so that `not_sent`
        # holds them as they were to be sent.
        self.chunks = chunks.plan(timing.apply(notifications))
        self.merged = chunks.Merged()
        if len(self.chunks) > 1:
            try:
                chunks.precheck(self.chunks, report_attributes)
            except ApiError as exc:
                raise self.failed(0, from_api_error(exc)) from None
        self.requests: list[TargetedPushRequest] = [
            chunks.request(api_key, chunk, report_attributes, is_async) for chunk in self.chunks
        ]

    def failed(self, index: int, error: PushgateError) -> PushgateError:
        """`error`, noting what was done before it: the merged answers of the requests before
        `index` (for a sync send) and the notifications of that request and the rest."""
        error.completed = None if self.is_async else self.merged.result()
        error.not_sent = tuple(n for chunk in self.chunks[index:] for n in chunk)
        return error


def request_key(idempotency_key: str | None, index: int) -> str | None:
    """The Idempotency-Key of the `index`-th request of one call: the key itself for the first,
    `key.N` for the others, so that the call made again maps each request to its own key."""
    if idempotency_key is None or index == 0:
        return idempotency_key
    return f"{idempotency_key}.{index}"
