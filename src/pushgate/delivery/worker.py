"""Delivery workers: claim jobs with a lease, send, record the outcome.

A worker killed at any point loses nothing: a job is only settled after its
send, by the worker that still holds its lease; otherwise the lease runs out
and another claim picks the job up again (a send cut off mid-flight is retried).
Concurrency is bounded per worker; claims stop while all slots are busy, so
a growing queue waits in the database, not in memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol

from pushgate.delivery import outcome as outcomes
from pushgate.delivery.outcome import DeliveryOutcome
from pushgate.providers.verdict import Verdict
from pushgate.queue.base import Job, JobQueue
from pushgate.wakeup import idle

log = logging.getLogger("pushgate.delivery")

SEND_TIMEOUT_SECONDS = 12.0  # the provider clients time out at 10 s
# Longer than any send can take, so a live worker keeps its jobs; short enough that
# the jobs of a killed worker are sent again within half a minute.
LEASE_SECONDS = 30.0
CLAIM_RETRY = 1.0  # seconds between claims while the queue cannot be reached


class Sender(Protocol):
    async def send(self, job: Job) -> Verdict: ...


class SenderDirectory(Protocol):
    async def sender_for(self, job: Job) -> Sender | None:
        """The sender for the job's partner, platform and environment; None when the
        partner has no validated credential for the platform."""
        ...


Recorder = Callable[[Job, str, DeliveryOutcome], Awaitable[bool]]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(object()):x}"


class DeliveryWorker:
    def __init__(
        self,
        queue: JobQueue,
        record: Recorder,
        senders: SenderDirectory,
        *,
        name: str | None = None,
        concurrency: int = 256,
        batch: int = 64,
        idle_poll_seconds: float = 0.25,
    ) -> None:
        self.queue = queue
        self.record = record
        self.senders = senders
        self.name = name or worker_name()
        self.concurrency = concurrency
        self.batch = batch
        self.idle_poll = idle_poll_seconds
        self.counters: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(concurrency)
        self._wakeup = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """New jobs were queued: claim now instead of at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        try:
            while True:
                free = self.concurrency - len(self._inflight)
                try:
                    jobs = (
                        await self.queue.claim(self.name, min(self.batch, free), LEASE_SECONDS)
                        if free
                        else []
                    )
                except Exception:
                    # The database or the broker is away: keep trying, the jobs wait there.
                    log.exception("claiming jobs failed; trying again in %s s", CLAIM_RETRY)
                    self.counters["claim_failed"] += 1
                    await asyncio.sleep(CLAIM_RETRY)
                    continue
                for job in jobs:
                    await self._slots.acquire()
                    task = asyncio.create_task(self._deliver(job))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                if len(jobs) < self.batch or not free:
                    await idle(self._wakeup, self.idle_poll)
        finally:
            for task in list(self._inflight):
                task.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()
        self._wakeup.set()

    async def _deliver(self, job: Job) -> None:
        try:
            result = await self._attempt(job)
            recorded = await self.record(job, self.name, result)
            await self.queue.settled(job, result, recorded)
            if recorded:
                self.counters[result.state] += 1
                if result.reason:
                    self.counters[f"reason:{result.reason}"] += 1
            else:
                self.counters["lease_lost"] += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the job is claimed again.
            log.exception("delivery of job %d failed unexpectedly", job.id)
            self.counters["crashed"] += 1

    async def _attempt(self, job: Job) -> DeliveryOutcome:
        now = time.time()
        if job.expires_at <= now:
            return outcomes.expired()
        sender = await self.senders.sender_for(job)
        if sender is None:
            return DeliveryOutcome(
                "failed", outcomes.INVALID_CERTIFICATE, "no validated credential"
            )
        try:
            verdict = await asyncio.wait_for(sender.send(job), SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            verdict = Verdict(kind="retry", reason="Timeout", status=0, detail="send timed out")
        self.counters[f"verdict:{verdict.kind}"] += 1
        return outcomes.decide(
            job,
            verdict.kind,
            verdict.reason,
            now=time.time(),
            retry_after=verdict.retry_after,
            timestamp_ms=verdict.timestamp_ms,
            detail=verdict.detail,
        )
