"""Retention of finished delivery jobs: a job keeps the device token and the payload it was sent
with, which nothing needs once it has ended (its counts are in campaign_stats, its failure in
fail_records, an accepted push in the Message Center's inbox). Without a purge the job table,
and the disk under it, grows with every push ever sent.

Every worker process runs the purge; the DELETEs of two at once simply share the work.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pushgate.queue import table
from pushgate.store.db import Executor

log = logging.getLogger("pushgate.retention")

EVERY_SECONDS = 60.0
BATCH = 5000  # rows per transaction: short enough not to hold the writer for long


class JobRetention:
    def __init__(self, db: Executor, days: float, every: float = EVERY_SECONDS) -> None:
        self.db = db
        self.seconds = days * 86400
        self.every = every
        self.purged = 0

    async def purge_once(self, now: float | None = None) -> int:
        """Delete every job finished more than the retention ago, a batch per transaction."""
        before = (now if now is not None else time.time()) - self.seconds
        total = 0
        while True:
            gone = await self.db.run(lambda c: table.purge_finished(c, before, BATCH))
            total += gone
            if gone < BATCH:
                break
            await asyncio.sleep(0)  # let requests in between batches
        self.purged += total
        return total

    async def run(self) -> None:
        while True:
            try:
                if purged := await self.purge_once():
                    log.info("purged %d delivery jobs finished over the retention ago", purged)
            except Exception:
                log.warning("purging finished delivery jobs failed", exc_info=True)
            await asyncio.sleep(self.every)
