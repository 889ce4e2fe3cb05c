"""The delivery queue's interface, shared by the SQLite job table and broker-backed queues.

The jobs themselves, their states and outcomes are the job model (pushgate/jobs.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pushgate.jobs import Job, Settled


class JobQueue(Protocol):
    """What a delivery worker needs of a queue: the job table (queue/table.py), or JetStream
    in front of it (queue/jetstream.py). Outcomes are recorded in the store either way."""

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]: ...

    async def depth(self) -> int: ...

    async def settled(self, results: Sequence[Settled]) -> None:
        """Outcomes of claimed jobs were recorded, in one batch (each with `recorded`: whether
        this worker still held the job)."""
        ...
