"""A worker whose queue cannot be reached keeps trying; it does not die."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from pushgate.delivery import worker as worker_module
from pushgate.delivery.worker import DeliveryWorker
from pushgate.jobs import Attempt, Job, Settled
from pushgate.providers.verdict import Verdict


def job(job_id: int) -> Job:
    now = time.time()
    return Job(job_id, 1, 7, 1, 1, "ios", "tok", "production", b"{}", "alert", 10, now, now + 60, 1)


class FlakyQueue:
    """Fails its first claims (a broker or database away), then hands out one job."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.handed = False
        self.settled_ids: list[int] = []

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("queue unreachable")
        if self.handed:
            return []
        self.handed = True
        return [job(1)]

    async def depth(self) -> int:
        return 0

    async def settled(self, results: Sequence[Settled]) -> None:
        self.settled_ids += [job.id for job, _, _ in results]


class OkSender:
    def start(self, job: Job) -> asyncio.Future[Verdict]:
        verdict: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        verdict.set_result(Verdict(kind="ok", reason="", status=200))
        return verdict


class Senders:
    async def sender_for(self, job: Job) -> OkSender:
        return OkSender()


async def test_a_worker_keeps_claiming_after_its_queue_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "CLAIM_RETRY", 0.01)
    queue = FlakyQueue(failures=3)
    recorded: list[str] = []

    async def record(name: str, attempts: Sequence[Attempt]) -> list[bool]:
        recorded.extend(outcome.state for _, outcome in attempts)
        return [True] * len(attempts)

    worker = DeliveryWorker(queue, record, Senders(), idle_poll_seconds=0.01)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if queue.settled_ids:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert queue.settled_ids == [1]
    assert recorded == ["done"]
    assert worker.counters["claim_failed"] == 3
