"""Rate limits and frequency-cap counters in a real Redis (127.0.0.1:6379), shared by every
process that uses the same prefix."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest
import redis

from pushgate import names
from pushgate.limits.frequency_cap import window_start
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


async def test_frequency_cap_counts_up_to_the_limit_and_expires_with_its_window(
    limits: RedisLimits, prefix: str
) -> None:
    now = time.time()
    taken = [limits.take_cap(1, 42, 2, 3600, now) for _ in range(4)]
    assert taken == [True, True, False, False]
    key = names.cap_key(prefix, 1, 42, window_start(now, 3600))
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert int(client.get(key) or 0) == 2
        assert 3600 < client.ttl(key) <= 3660
    finally:
        client.close()


async def test_frequency_cap_starts_again_in_the_next_window(limits: RedisLimits) -> None:
    now = 1_800_000_000.0
    assert limits.take_cap(1, 5, 1, 86400, now)
    assert not limits.take_cap(1, 5, 1, 86400, now + 10)
    assert limits.take_cap(1, 5, 1, 86400, now + 86400)


async def test_a_given_back_take_can_be_taken_again(limits: RedisLimits) -> None:
    now = time.time()
    assert limits.take_cap(3, 9, 1, 3600, now)
    limits.give_back_cap(3, 9, 3600, now)
    assert limits.take_cap(3, 9, 1, 3600, now)
    assert not limits.take_cap(3, 9, 1, 3600, now)
