"""Per-key request rate limits with GCRA (the generic cell rate algorithm), in memory.

One float per key: the theoretical arrival time. A key may burst up to its whole
per-minute allowance, then is held to the steady rate. The embedded default
runs one API process, so process memory is the right place; a Redis-backed
limiter with the same interface serves several processes, and so does the shared
memory-mapped table (limits/shared_table.py) for several processes on one machine.
All of them run the arithmetic of `gcra_step` (the Redis one as a Lua copy of it).
"""

from __future__ import annotations

import time
from typing import Protocol

PERIOD = 60.0
_EPSILON = 1e-9  # float sums of intervals must not cost the last request of a burst


def gcra_step(tat: float | None, per_minute: int, now: float) -> tuple[float, float | None]:
    """One request against a key whose theoretical arrival time is `tat` (None: a new key).

    Returns (0, the TAT to store) when allowed, else (seconds until one would be, None): a
    refused request changes nothing, so it does not use up allowance."""
    if per_minute <= 0:
        return PERIOD, None
    interval = PERIOD / per_minute
    start = now if tat is None else max(tat, now)
    new_tat = start + interval
    wait = new_tat - now - PERIOD
    if wait > _EPSILON:
        return wait, None
    return 0.0, new_tat


class GcraLimiter:
    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    def hit(self, key: str, per_minute: int, now: float) -> float:
        """Count one request; returns 0 when allowed, else seconds until one would be."""
        wait, new_tat = gcra_step(self._tat.get(key), per_minute, now)
        if new_tat is not None:
            self._tat[key] = new_tat
        return wait


class MemoryRateLimiter:
    """The embedded limiter behind the interface the Redis one shares (`take`)."""

    def __init__(self) -> None:
        self.gcra = GcraLimiter()

    async def take(self, key: str, per_minute: int) -> float:
        return self.gcra.hit(key, per_minute, time.monotonic())


class RateLimiter(Protocol):
    async def take(self, key: str, per_minute: int) -> float: ...
