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
from collections.abc import Awaitable, Callable
from typing import Protocol

from pushgate.delivery import outcome as outcomes
from pushgate.delivery.outcome import DeliveryOutcome
from pushgate.metrics import DeliveryMetrics
from pushgate.providers.verdict import Verdict
from pushgate.queue.base import QUEUED, Job, JobQueue
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
        self.metrics = DeliveryMetrics()
        self.counters = self.metrics.events  # claim_failed, lease_lost, crashed
        self._slots = asyncio.Semaphore(concurrency)
        self._wakeup = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], Job] = {}
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def wake(self) -> None:
        """New jobs were queued: claim now instead of at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        try:
            while not self._stopping:
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
                    self._inflight[task] = job
                    task.add_done_callback(self._done)
                if len(jobs) < self.batch or not free:
                    await idle(self._wakeup, self.idle_poll)
        finally:
            if not self._stopping:  # cancelled, not stopped: the leases run out
                for task in list(self._inflight):
                    task.cancel()

    async def stop(self, grace: float) -> int:
        """Claim nothing more; give the sends under way up to `grace` seconds to finish, then
        cut off the rest and hand their jobs back to the queue at once (due now, lease
        released), so that another worker, or this one restarted, sends them without waiting
        for the lease to run out. Returns how many were handed back."""
        self._stopping = True
        self._wakeup.set()
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace)
        leftover = dict(self._inflight)
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        now = time.time()
        back = DeliveryOutcome(QUEUED, detail="handed back at shutdown", retry_at=now)
        handed = 0
        for job in leftover.values():
            try:
                if await self.record(job, self.name, back):
                    await self.queue.settled(job, back, True)
                    handed += 1
            except Exception:
                # Its lease runs out and the job is claimed again, as after a crash.
                log.warning("handing job %d back failed", job.id, exc_info=True)
        if leftover:
            log.info("stopped: %d sends cut off and handed back to the queue", handed)
        return handed

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._slots.release()
        self._wakeup.set()

    async def _deliver(self, job: Job) -> None:
        try:
            result, why = await self._attempt(job)
            recorded = await self.record(job, self.name, result)
            await self.queue.settled(job, result, recorded)
            if recorded:
                self.metrics.settled(job.platform, result, why)
            else:
                self.counters["lease_lost"] += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the job is claimed again.
            log.exception("delivery of job %d failed unexpectedly", job.id)
            self.counters["crashed"] += 1

    async def _attempt(self, job: Job) -> tuple[DeliveryOutcome, str]:
        """The outcome, and the provider's reason for it (what a retry is counted under)."""
        now = time.time()
        if job.expires_at <= now:
            return outcomes.expired(), ""
        sender = await self.senders.sender_for(job)
        if sender is None:
            failed = DeliveryOutcome(
                "failed", outcomes.INVALID_CERTIFICATE, "no validated credential"
            )
            return failed, ""
        started = time.perf_counter()
        try:
            verdict = await asyncio.wait_for(sender.send(job), SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            verdict = Verdict(kind="retry", reason="Timeout", status=0, detail="send timed out")
        self.metrics.provider_answered(job.platform, time.perf_counter() - started)
        why = ""
        if verdict.kind == "retry":
            why = verdict.reason or (f"HTTP{verdict.status}" if verdict.status else "Unknown")
        return outcomes.decide(
            job,
            verdict.kind,
            verdict.reason,
            now=time.time(),
            retry_after=verdict.retry_after,
            timestamp_ms=verdict.timestamp_ms,
            detail=verdict.detail,
            environment=verdict.environment,
        ), why
