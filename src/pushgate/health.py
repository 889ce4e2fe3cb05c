"""/readyz: whether this process can do its work now, each dependency checked within a second.

The checks run concurrently, so an answer takes at most CHECK_TIMEOUT however many fail. A
failing set is logged when it changes, not at every probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger("pushgate.health")

CHECK_TIMEOUT = 1.0
RETRY_AFTER_SECONDS = 5
Check = Callable[[], Awaitable[Any]]


class Readiness:
    def __init__(self, checks: Mapping[str, Check], timeout: float = CHECK_TIMEOUT) -> None:
        self.checks = dict(checks)
        self.timeout = timeout
        self._last: list[str] = []

    async def failing(self) -> list[str]:
        """The names of the checks that did not succeed in time, in the order they were given."""
        results = await asyncio.gather(*(self._one(check) for check in self.checks.values()))
        failing = [name for name, ok in zip(self.checks, results, strict=True) if not ok]
        if failing != self._last:
            if failing:
                log.warning("not ready: %s", ", ".join(failing))
            else:
                log.info("ready again")
            self._last = failing
        return failing

    async def _one(self, check: Check) -> bool:
        try:
            await asyncio.wait_for(check(), self.timeout)
        except Exception:
            return False
        return True


class RedisPing:
    """A client of its own, with short timeouts, so that a probe never waits behind (or
    disturbs) the rate limiter's connections."""

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self._client = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
        )

    async def __call__(self) -> None:
        if not await self._client.ping():
            raise ConnectionError("Redis did not answer PING")

    async def aclose(self) -> None:
        await self._client.aclose()
