"""Per-key request rate limits with GCRA (the generic cell rate algorithm), in memory.

One float per key: the theoretical arrival time. A key may burst up to its whole
per-minute allowance, then is held to the steady rate. The embedded default
runs one API process, so process memory is the right place; a Redis-backed
limiter with the same interface serves several processes.
"""

from __future__ import annotations

import time
from typing import Protocol

PERIOD = 60.0
_EPSILON = 1e-9  # float sums of intervals must not cost the last request of a burst


class GcraLimiter:
    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    def hit(self, key: str, per_minute: int, now: float) -> float:
        """Count one request; returns 0 when allowed, else seconds until one would be."""
        if per_minute <= 0:
            return PERIOD
        interval = PERIOD / per_minute
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + interval
        wait = new_tat - now - PERIOD
        if wait > _EPSILON:
            return wait
        self._tat[key] = new_tat
        return 0.0


class MemoryRateLimiter:
    """The embedded limiter behind the interface the Redis one shares (`take`)."""

    def __init__(self) -> None:
        self.gcra = GcraLimiter()

    async def take(self, key: str, per_minute: int) -> float:
        return self.gcra.hit(key, per_minute, time.monotonic())


class RateLimiter(Protocol):
    async def take(self, key: str, per_minute: int) -> float: ...
