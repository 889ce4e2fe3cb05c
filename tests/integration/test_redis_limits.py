"""Rate limits and frequency-cap counters in a real Redis (127.0.0.1:6379), shared by every
process that uses the same prefix."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest

from pushgate.limits.redis import RedisLimits

REDIS_URL = os.environ.get("PUSHGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def prefix() -> str:
    return f"test{os.getpid()}x{time.time_ns()}:"


@pytest.fixture
async def limits(prefix: str) -> AsyncIterator[RedisLimits]:
    found = RedisLimits(REDIS_URL, prefix)
    yield found
    await found.aclose()


async def test_rate_limit_allows_the_minutes_burst_then_asks_to_wait(limits: RedisLimits) -> None:
    allowed = [await limits.take("push:1", 10) for _ in range(12)]
    assert allowed[:10] == [0.0] * 10
    assert all(0 < wait <= 6.0 for wait in allowed[10:])


async def test_rate_limit_is_shared_by_two_processes_with_one_prefix(prefix: str) -> None:
    first, second = RedisLimits(REDIS_URL, prefix), RedisLimits(REDIS_URL, prefix)
    try:
        waits = [await (first if i % 2 else second).take("push:7", 6) for i in range(8)]
    finally:
        await first.aclose()
        await second.aclose()
    assert sum(1 for w in waits if w == 0) == 6


async def test_rate_limits_of_two_keys_are_independent(limits: RedisLimits) -> None:
    for _ in range(3):
        assert await limits.take("push:1", 3) == 0
    assert await limits.take("push:1", 3) > 0
    assert await limits.take("push:2", 3) == 0
