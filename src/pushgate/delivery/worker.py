"""Delivery workers: claim jobs with a lease, send, record the outcomes in batches.

A worker killed at any point loses nothing: a job is only settled after its send, by the worker
that still holds its lease; otherwise the lease runs out and another claim picks the job up
again (a send cut off mid-flight, or finished but not yet recorded, is sent again).

Per job the worker does as little as it can: claims and records are one transaction per batch
(outcomes wait a few milliseconds for company, `settle_seconds`), a send is one future (the
sender's `start`: no task, wrapper, semaphore or timer of its own; one watchdog cancels sends
past their time), and a claimed batch looks its senders up once per partner and platform.

The jobs a worker holds (claimed and not yet recorded) are bounded (`concurrency`); claims
stop while it holds that many, so a growing queue waits in the database, not in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from pushgate.delivery import outcome as outcomes
from pushgate.jobs import (
    ACCEPTED,
    FAILED,
    INVALID_CERTIFICATE,
    QUEUED,
    Attempt,
    DeliveryOutcome,
    Job,
    Settled,
    expired,
)
from pushgate.metrics import DeliveryMetrics
from pushgate.providers.verdict import Verdict

log = logging.getLogger("pushgate.delivery")

SEND_TIMEOUT_SECONDS = 12.0  # the provider clients time out at 10 s
WATCHDOG_SECONDS = 1.0  # how often sends past SEND_TIMEOUT_SECONDS are looked for
# Longer than any send can take, so a live worker keeps its jobs; short enough that
# the jobs of a killed worker are sent again within half a minute.
LEASE_SECONDS = 30.0
CLAIM_RETRY = 1.0  # seconds between claims while the queue cannot be reached
CONCURRENCY = 256  # jobs one worker holds at most, by default (PUSHGATE_WORKER_CONCURRENCY)
CLAIM_BATCH = 256  # jobs per claim at most
SETTLE_SECONDS = 0.005  # how long a finished outcome waits for others to share its transaction
# Batches written at once: with a database a round trip away (PostgreSQL), the next batch is
# written while the last one commits.
WRITES_AT_ONCE = 2
IDLE_POLL_SECONDS = 0.25
TIMED_OUT = Verdict(kind="retry", reason="Timeout", status=0, detail="send timed out")
NO_CREDENTIAL = DeliveryOutcome(FAILED, INVALID_CERTIFICATE, "no validated credential")
HANDED_BACK = "handed back at shutdown"


class JobQueue(Protocol):
    """What a worker needs of a queue: the job table (queue/table.py), or JetStream in front of
    it (queue/jetstream.py). Delivery defines it, and the queues fit it without importing
    delivery's code back: outcomes are recorded in the store either way."""

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]: ...

    async def depth(self) -> int: ...

    async def settled(self, results: Sequence[Settled]) -> None:
        """Outcomes of claimed jobs were recorded, in one batch (each with `recorded`: whether
        this worker still held the job)."""
        ...


class Sender(Protocol):
    def start(self, job: Job) -> asyncio.Future[Verdict]:
        """The job's send, started: the future of its verdict (cancelling it stops the
        send)."""
        ...


class SenderDirectory(Protocol):
    async def sender_for(self, job: Job) -> Sender | None:
        """The sender for the job's partner, platform and environment; None when the
        partner has no validated credential for the platform."""
        ...


class DeliveryView(Protocol):
    """What /metrics reads of the delivery side: one worker, or the processes of several."""

    @property
    def metrics(self) -> DeliveryMetrics: ...

    @property
    def in_flight(self) -> int: ...

    @property
    def queue_counters(self) -> dict[str, int]:
        """Broker counters not in this process's own broker (`JetStreamQueue.counters`)."""
        ...


# Records a batch of outcomes in one transaction: (worker name, attempts) -> per attempt,
# whether this worker still held the job's lease.
Recorder = Callable[[str, Sequence[Attempt]], Awaitable[list[bool]]]


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
        concurrency: int = CONCURRENCY,
        batch: int = CLAIM_BATCH,
        settle_batch: int | None = None,
        settle_seconds: float = SETTLE_SECONDS,
        idle_poll_seconds: float = IDLE_POLL_SECONDS,
    ) -> None:
        self.queue = queue
        self.record = record
        self.senders = senders
        self.name = name or worker_name()
        self.concurrency = concurrency
        self.batch = min(batch, concurrency)
        # Outcomes written at once without waiting for more: half the slots, so that the other
        # half keeps sending while a batch is written.
        self.settle_batch = settle_batch or max(1, concurrency // 2)
        self.settle_seconds = settle_seconds
        self.idle_poll = idle_poll_seconds
        self.metrics = DeliveryMetrics()
        self.counters = self.metrics.events  # claim_failed, lease_lost, crashed
        self._held = 0  # jobs claimed and not yet recorded: the leases this worker holds
        self._held_ids: set[int] = set()
        # Sends under way, oldest first, with when each started (perf_counter).
        self._sending: dict[asyncio.Future[Verdict], tuple[Job, float]] = {}
        self._timed_out: set[asyncio.Future[Verdict]] = set()
        self._finished: list[tuple[Job, DeliveryOutcome, str]] = []  # outcomes not yet written
        self._wakeup = asyncio.Event()  # claim now: jobs were queued, or slots freed
        self._unflushed = asyncio.Event()  # the first outcome waits to be written
        self._full = asyncio.Event()  # settle_batch outcomes wait: write them now
        self._write_slots = asyncio.Semaphore(WRITES_AT_ONCE)
        self._writes: set[asyncio.Task[None]] = set()
        self._claiming: asyncio.Event | None = None  # set when the claim loop has ended
        self._helpers: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def in_flight(self) -> int:
        """Jobs this worker holds: sends under way and outcomes being recorded."""
        return self._held

    @property
    def queue_counters(self) -> dict[str, int]:
        return {}  # its queue is this process's own broker, counted there

    def wake(self) -> None:
        """New jobs were queued: claim now instead of at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        ended = self._claiming = asyncio.Event()
        self._helpers = [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._watchdog()),
        ]
        try:
            await self._claim_loop()
        finally:
            ended.set()
            if not self._stopping:  # cancelled, not stopped: the leases run out
                for sending in list(self._sending):
                    sending.cancel()
                for helper in self._helpers:
                    helper.cancel()

    async def stop(self, grace: float) -> int:
        """Claim nothing more; give the sends under way up to `grace` seconds to finish and
        record their outcomes, then cut off the rest and hand their jobs back to the queue at
        once (due now, lease released), so that another worker, or this one restarted, sends
        them without waiting for the lease to run out. Returns how many were handed back."""
        self._stopping = True
        self._wakeup.set()
        if self._claiming is not None:
            await self._claiming.wait()  # a claim under way brings its jobs in first
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=grace)
        cut = [
            (sending, job) for sending, (job, _) in list(self._sending.items()) if sending.cancel()
        ]
        await asyncio.gather(*(sending for sending, _ in cut), return_exceptions=True)
        for helper in self._helpers:
            helper.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        # The outcomes known by now: the batches being written, then the rest.
        await asyncio.gather(*self._writes, return_exceptions=True)
        await self._write_slots.acquire()
        await self._write(self._take())
        if not cut:
            return 0
        back = DeliveryOutcome(QUEUED, detail=HANDED_BACK, retry_at=time.time())
        attempts = [(job, back) for _, job in cut]
        try:
            recorded = await self.record(self.name, attempts)
            await self.queue.settled(
                [(job, back, ok) for (job, _), ok in zip(attempts, recorded, strict=True)]
            )
        except Exception:
            # Their leases run out and the jobs are claimed again, as after a crash.
            log.warning("handing %d jobs back failed", len(cut), exc_info=True)
            return 0
        finally:
            self._release([job for _, job in cut])
        handed = sum(recorded)
        log.info("stopped: %d sends cut off and handed back to the queue", handed)
        return handed

    # ---- claims ----

    async def _claim_loop(self) -> None:
        # Below this many free slots a claim waits for more: a claim per freed job would cost
        # a transaction per job.
        refill = max(1, self.batch // 4)
        while not self._stopping:
            self._wakeup.clear()
            free = self.concurrency - self._held
            if free < refill and self._held:
                await self._idle()  # a batch of outcomes written frees slots, and wakes this
                continue
            want = min(self.batch, free)
            try:
                jobs = await self.queue.claim(self.name, want, LEASE_SECONDS)
            except Exception:
                # The database or the broker is away: keep trying, the jobs wait there.
                log.exception("claiming jobs failed; trying again in %s s", CLAIM_RETRY)
                self.counters["claim_failed"] += 1
                await asyncio.sleep(CLAIM_RETRY)
                continue
            if jobs:
                await self._dispatch(jobs)
            if len(jobs) < want:  # nothing more is due now
                await self._idle()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.idle_poll):
                await self._wakeup.wait()

    async def _dispatch(self, jobs: Sequence[Job]) -> None:
        """Start the batch's sends; jobs that need none (expired, no credential) go straight
        to be recorded."""
        self._held += len(jobs)
        held = self._held_ids
        now = time.time()
        senders: dict[tuple[int, str], Sender | None] = {}
        started = time.perf_counter()
        for job in jobs:
            if job.id in held:
                # Its lease ran out while this worker still had it (its outcome waits to be
                # written): the claim renewed the lease, and that outcome settles it.
                self._held -= 1
                continue
            held.add(job.id)
            if job.expires_at <= now:
                self._finish(job, expired(), "")
                continue
            key = (job.partner_id, job.platform)
            if key in senders:
                sender = senders[key]
            else:
                try:
                    sender = senders[key] = await self.senders.sender_for(job)
                except Exception:
                    # Its lease runs out and the job is claimed again.
                    log.exception("no sender for job %d", job.id)
                    self.counters["crashed"] += 1
                    self._release([job])
                    continue
            if sender is None:
                self._finish(job, NO_CREDENTIAL, "")
                continue
            sending = sender.start(job)
            self._sending[sending] = (job, started)
            sending.add_done_callback(self._sent)

    def _sent(self, sending: asyncio.Future[Verdict]) -> None:
        job, started = self._sending.pop(sending)
        if sending.cancelled():
            if sending not in self._timed_out:
                return  # cut off at shutdown: stop() hands the job back
            self._timed_out.discard(sending)
            verdict = TIMED_OUT
        elif (error := sending.exception()) is not None:
            self._timed_out.discard(sending)
            # Its lease runs out and the job is claimed again.
            log.error("delivery of job %d failed unexpectedly", job.id, exc_info=error)
            self.counters["crashed"] += 1
            self._release([job])
            return
        else:
            self._timed_out.discard(sending)
            verdict = sending.result()
        self.metrics.provider_answered(job.platform, time.perf_counter() - started)
        if verdict.kind == "ok" and verdict.environment is None:
            self._finish(job, ACCEPTED, "")
            return
        why = ""
        if verdict.kind == "retry":
            why = verdict.reason or (f"HTTP{verdict.status}" if verdict.status else "Unknown")
        result = outcomes.decide(
            job,
            verdict.kind,
            verdict.reason,
            now=time.time(),
            retry_after=verdict.retry_after,
            timestamp_ms=verdict.timestamp_ms,
            detail=verdict.detail,
            environment=verdict.environment,
        )
        self._finish(job, result, why)

    async def _watchdog(self) -> None:
        """Cancel sends past SEND_TIMEOUT_SECONDS (a backstop: the provider clients time out
        first); they are recorded as retries."""
        while True:
            await asyncio.sleep(WATCHDOG_SECONDS)
            limit = time.perf_counter() - SEND_TIMEOUT_SECONDS
            # No copy: cancelling schedules the callbacks that change the dict, nothing more.
            for sending, (_, started) in self._sending.items():
                if started > limit:
                    break  # oldest first: the rest are younger
                if sending not in self._timed_out and sending.cancel():
                    self._timed_out.add(sending)

    # ---- records ----

    def _finish(self, job: Job, outcome: DeliveryOutcome, why: str) -> None:
        finished = self._finished
        finished.append((job, outcome, why))
        if len(finished) == 1:
            self._unflushed.set()
        elif len(finished) >= self.settle_batch:
            self._full.set()

    async def _flush_loop(self) -> None:
        while True:
            if not self._finished:
                self._unflushed.clear()
                await self._unflushed.wait()
                continue
            if len(self._finished) < self.settle_batch:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settle_seconds):
                        await self._full.wait()
            # The batch is taken when a write can start: it grows while the others commit.
            await self._write_slots.acquire()
            write = asyncio.create_task(self._write(self._take()))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)

    def _take(self) -> list[tuple[Job, DeliveryOutcome, str]]:
        batch, self._finished = self._finished, []
        return batch

    async def _write(self, batch: list[tuple[Job, DeliveryOutcome, str]]) -> None:
        """Record the batch in one transaction; then tell the queue (JetStream acknowledges
        the messages) and free the slots. Holds a write slot, which it gives back."""
        try:
            if not batch:
                return
            attempts = [(job, outcome) for job, outcome, _ in batch]
            try:
                recorded: list[bool | None] = list(await self.record(self.name, attempts))
            except Exception:
                recorded = await self._record_each(attempts)
            try:
                settled = []
                for (job, outcome, why), ok in zip(batch, recorded, strict=True):
                    if ok:
                        self.metrics.settled(job.platform, outcome, why)
                    elif ok is not None:
                        self.counters["lease_lost"] += 1
                    settled.append((job, outcome, bool(ok)))
                await self.queue.settled(settled)
            except Exception:
                # The outcomes are recorded; a message not acknowledged comes back and is
                # skipped (its job is settled).
                log.exception("settling %d jobs with the queue failed", len(batch))
            finally:
                self._release([job for job, _, _ in batch])
        finally:
            self._write_slots.release()

    async def _record_each(self, attempts: Sequence[Attempt]) -> list[bool | None]:
        """The batch failed: each attempt alone (the store's executors still share
        transactions among them, and run them one by one if that fails), so that one bad
        record cannot take the batch down. None: not recorded; the lease runs out and the
        job is claimed again."""
        results = await asyncio.gather(
            *(self.record(self.name, [attempt]) for attempt in attempts), return_exceptions=True
        )
        answers: list[bool | None] = []
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(result)
                answers.append(None)
            else:
                answers.append(result[0])
        if errors:
            self.counters["crashed"] += len(errors)
            log.error("recording %d outcomes failed", len(errors), exc_info=errors[0])
        return answers

    def _release(self, jobs: Sequence[Job]) -> None:
        self._held -= len(jobs)
        self._held_ids.difference_update(job.id for job in jobs)
        self._wakeup.set()
