"""The idle wait shared by the service's background loops (delivery worker, async requests,
broker relay): sleep until woken by new work or until the poll interval passes."""

from __future__ import annotations

import asyncio
import contextlib


async def idle(wakeup: asyncio.Event, seconds: float) -> None:
    wakeup.clear()
    # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
    # arrives as the event is set (queue/backlog.py says what that costs).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wakeup.wait()
