"""The delivery queue's backlog as /metrics reports it: jobs by state, their age, the lag.

Read from the job table (the truth with either queue), on a connection of its own and on a
thread: the counts scan every unsettled job, which must neither stall the event loop (the
embedded store runs its units there) nor ride in a group-commit transaction with the hot
path's writes. Every process reports the same figures; aggregate them with max, not sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pushgate.jobs import LEASED, QUEUED
from pushgate.store.db import Db

log = logging.getLogger("pushgate.queue")
SCHEDULED = "scheduled"  # the gauge's label for queued jobs not yet due
READ_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Backlog:
    queued: int  # due, waiting for a worker
    leased: int
    oldest_age: float  # seconds since the oldest due or leased job was created; 0 when none
    lag: float  # seconds the most overdue job has been due; 0 when none is
    outbox: int | None = None  # jobs not yet published to JetStream; None without it
    scheduled: int = 0  # queued, never tried and not yet due: waiting for their time


def read(conn: Db, now: float, outbox: bool = False) -> Backlog:
    counts = {QUEUED: 0, LEASED: 0, SCHEDULED: 0}
    oldest: float | None = None
    # Both reads go through the partial index of unsettled jobs (jobs_due). A leased job's
    # due time is its lease's end; a queued one's, when it may be sent: a job never tried and
    # not yet due is scheduled (a retry waiting for its next attempt is work under way).
    for state, waiting, count, created in conn.execute(
        "SELECT state, CASE WHEN state = 'queued' AND attempts = 0 AND due_at > ? THEN 1"
        " ELSE 0 END,"
        " count(*), min(created_at) FROM jobs WHERE state IN ('queued', 'leased') GROUP BY 1, 2",
        (now,),
    ):
        if waiting:
            counts[SCHEDULED] += int(count)
            continue
        counts[str(state)] = int(count)
        oldest = float(created) if oldest is None else min(oldest, float(created))
    (due,) = conn.execute(
        "SELECT min(due_at) FROM jobs WHERE state IN ('queued', 'leased')"
    ).fetchone()
    waiting = None
    if outbox:
        waiting = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    return Backlog(
        queued=counts[QUEUED],
        leased=counts[LEASED],
        oldest_age=max(0.0, now - oldest) if oldest is not None else 0.0,
        lag=max(0.0, now - float(due)) if due is not None else 0.0,
        outbox=waiting,
        scheduled=counts[SCHEDULED],
    )


class Connection(Db, Protocol):
    def close(self) -> None: ...


class BacklogReader:
    """One connection, opened on first use and again after a failure; one read at a time (a
    scrape that arrives while another read is still under way reports no queue figures, rather
    than queueing threads behind a slow database)."""

    def __init__(self, connect: Callable[[], Connection], outbox: bool = False) -> None:
        self._connect = connect
        self.outbox = outbox
        self._conn: Connection | None = None
        self._reading: asyncio.Future[Backlog] | None = None

    async def read(self) -> Backlog | None:
        if self._reading is not None and not self._reading.done():
            return None
        reading = self._reading = asyncio.get_running_loop().run_in_executor(None, self._read)
        reading.add_done_callback(_retrieve)
        try:
            # Shielded: a read that outlives the timeout still finishes with the connection.
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when the
            # read ends as the task is cancelled, and the cancellation is lost (the loop then
            # never ends, and neither does the shutdown that awaits it).
            async with asyncio.timeout(READ_TIMEOUT_SECONDS + 1):
                return await asyncio.shield(reading)
        except Exception:
            log.warning("reading the queue's backlog failed", exc_info=True)
            return None

    def _read(self) -> Backlog:
        if self._conn is None:
            self._conn = self._connect()
        try:
            return read(self._conn, time.time(), self.outbox)
        except Exception:
            self._drop()
            raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        """At shutdown; a read still under way keeps its connection (the process is ending)."""
        if self._reading is None or self._reading.done():
            self._drop()


def _retrieve(future: asyncio.Future[Backlog]) -> None:
    """Mark a late read's failure as seen (it was logged, or given up on, already)."""
    if not future.cancelled():
        future.exception()


class QueueWatch:
    """The number of queued jobs, read every `every` seconds, for load shedding: a cheap
    attribute to look at on every request instead of a count per request."""

    def __init__(self, reader: BacklogReader, every: float = 5.0) -> None:
        self.reader = reader
        self.every = every
        self.queued: int | None = None  # None until read, or while the database is away

    async def run(self) -> None:
        try:
            while True:
                found = await self.reader.read()
                self.queued = found.queued if found is not None else self.queued
                await asyncio.sleep(self.every)
        finally:
            self.reader.close()
