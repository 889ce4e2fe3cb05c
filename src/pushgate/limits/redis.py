"""Rate limits and frequency-cap counters in Redis, shared by every API process.

Both are single Lua scripts, so each check-and-update is atomic on the Redis server, O(1) per
key, and uses Redis's clock (rate limits), so processes on several machines agree.
"""

from __future__ import annotations

import redis
import redis.asyncio

from pushgate import names
from pushgate.config import ENV_PREFIX, ConfigError
from pushgate.limits.frequency_cap import window_start
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

# One push against a user's cap: counted only while under the limit.
CAP = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
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
        # The frequency cap is taken inside the store's unit of work, which is synchronous.
        self._sync = redis.Redis.from_url(url)
        self._gcra = self._async.register_script(GCRA)
        self._cap = self._sync.register_script(CAP)

    async def take(self, key: str, per_minute: int) -> float:
        """Count one request; 0 when allowed, else seconds until one would be."""
        if per_minute <= 0:
            return PERIOD
        wait = await self._gcra(
            keys=[names.rate_key(self.prefix, key)], args=[PERIOD / per_minute, PERIOD]
        )
        return float(wait)

    def take_cap(
        self, partner_id: int, profile_id: int, limit: int, window: int, now: float
    ) -> bool:
        if limit <= 0:
            return False
        key = names.cap_key(self.prefix, partner_id, profile_id, window_start(now, window))
        return bool(self._cap(keys=[key], args=[limit, window + 60]))

    def give_back_cap(self, partner_id: int, profile_id: int, window: int, now: float) -> None:
        """Undo a take whose sends were not committed."""
        key = names.cap_key(self.prefix, partner_id, profile_id, window_start(now, window))
        self._sync.decr(key)

    async def aclose(self) -> None:
        await self._async.aclose()
        self._sync.close()


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
