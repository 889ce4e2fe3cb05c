"""The idle wait shared by the service's background loops (delivery worker, async requests,
broker relay): sleep until woken by new work or until the poll interval passes."""

from __future__ import annotations

import asyncio
import contextlib


async def idle(wakeup: asyncio.Event, seconds: float) -> None:
    wakeup.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wakeup.wait(), seconds)
