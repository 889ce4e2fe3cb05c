"""Rate limits and bad-key counts in Redis, shared by every API process.

Not the global frequency cap: it is counted in the database, in the send's own transaction
(limits/frequency_cap.py), because a cap must survive Redis coming back empty (issue 19): a
rate limit may start again, a user's cap may not.

Both are single Lua scripts, so each check-and-update is atomic on the Redis server, O(1) per
key, and uses Redis's clock (rate limits), so processes on several machines agree.
"""

from __future__ import annotations

import redis
import redis.asyncio

from pushgate import names
from pushgate.config import ENV_PREFIX, ConfigError
from pushgate.limits.rate import PERIOD

# GCRA: the key holds the theoretical arrival time. Replies are strings because Redis would
# truncate a Lua number to an integer.
GCRA = """
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - period
if wait > 1e-9 then return tostring(wait) end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return '0'
"""

# One failed key check of a client (limits/bad_keys.py): the window opens with the first failure
# and its key expires with it. Replies: the failures so far and the window's milliseconds left.
BAD_KEY = """
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
"""


REDIS_URL = f"{ENV_PREFIX}REDIS_URL"


def check_url(url: str) -> None:
    """Before serving: a URL that is not Redis's is a ConfigError naming PUSHGATE_REDIS_URL. A
    Redis that does not answer is not: the process starts, and /readyz answers 503 until it
    does (health.py), as when it goes away later."""
    try:
        redis.Redis.from_url(url).close()
    except ValueError as error:
        raise ConfigError(f"{REDIS_URL} is not a Redis URL: {error}") from None


class RedisLimits:
    def __init__(self, url: str, prefix: str = names.DEFAULT_REDIS_PREFIX) -> None:
        self.prefix = prefix
        self._async = redis.asyncio.Redis.from_url(url)
        self._gcra = self._async.register_script(GCRA)

    async def take(self, key: str, per_minute: int) -> float:
        """Count one request; 0 when allowed, else seconds until one would be."""
        if per_minute <= 0:
            return PERIOD
        wait = await self._gcra(
            keys=[names.rate_key(self.prefix, key)], args=[PERIOD / per_minute, PERIOD]
        )
        return float(wait)

    async def aclose(self) -> None:
        await self._async.aclose()


class RedisBadKeyCounter:
    """Failed key checks per client address, shared by every API process."""

    def __init__(self, url: str, prefix: str = names.DEFAULT_REDIS_PREFIX) -> None:
        self.prefix = prefix
        self._redis = redis.asyncio.Redis.from_url(url)
        self._count = self._redis.register_script(BAD_KEY)

    async def add_failure(self, client: str, window: float) -> tuple[int, float]:
        failures, left_ms = await self._count(
            keys=[names.bad_key_key(self.prefix, client)], args=[max(1, int(window * 1000))]
        )
        return int(failures), int(left_ms) / 1000

    async def aclose(self) -> None:
        await self._redis.aclose()
