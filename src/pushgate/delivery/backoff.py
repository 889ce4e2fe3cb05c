"""When to try a failed send again (pure).

Exponential backoff with "equal" jitter per job (a delay drawn between half the
exponential ceiling and the ceiling, so a retry never comes back at once), never sooner than the provider's
Retry-After, and never past the notification's expiry: a job that cannot be
retried before it expires is expired now rather than sent late. Jobs told to wait
the same Retry-After (a whole credential paused after FCM QUOTA_EXCEEDED) are spread
over a tenth of it beyond that time, so they do not all come back at once.
"""

from __future__ import annotations

import random

BASE_SECONDS = 1.0
CAP_SECONDS = 300.0
RETRY_AFTER_SPREAD = 0.1
_CAPPED_EXPONENT = 63  # 2 ** 63 s is far beyond any cap


def next_attempt(
    attempts: int,
    now: float,
    expires_at: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """The time of the next try after `attempts` tries, or None if it would be too late."""
    # The exponent stops growing once the cap is reached: 2 ** 1024 is past a float's range,
    # and a push that keeps failing for weeks gets that many attempts.
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** min(max(0, attempts - 1), _CAPPED_EXPONENT))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        spread = (rng or random).uniform(0, retry_after * RETRY_AFTER_SPREAD)
        delay = max(delay, retry_after + spread)
    at = now + delay
    return at if at < expires_at else None
