"""When to send a refused request again: only 429 and 503, after their `Retry-After`.

Both answers come before the server does anything (a rate limit, or load shedding), so the
same request may be sent again. Nothing else is retried: a 4xx would be refused again, a 500
or a lost connection may have happened after the push was queued.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushgate.client.errors import PushgateError, TemporaryError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per HTTP request: at most `attempts` sends (the first included), and at most
    `max_wait` seconds asleep between them in all. A wait the server asks for that would pass
    `max_wait` is not started: the error is raised at once."""

    attempts: int = 3
    max_wait: float = 60.0
    default_delay: float = 1.0  # for a 429/503 without `Retry-After`

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.max_wait < 0 or self.default_delay < 0:
            raise ValueError("max_wait and default_delay must not be negative")

    def delay(self, error: PushgateError, attempt: int, waited: float) -> float | None:
        """Seconds to sleep before sending again after `attempt` (1-based) failed with
        `error`, having slept `waited` seconds so far; None: give up and raise `error`."""
        if not isinstance(error, TemporaryError) or attempt >= self.attempts:
            return None
        delay = self.default_delay if error.retry_after is None else error.retry_after
        if waited + delay > self.max_wait:
            return None
        return delay


NO_RETRY = RetryPolicy(attempts=1)
