"""Delivery in processes of their own: `pushgate serve --workers N` with N > 1.

One Python process delivers at most what one core allows, so `serve` starts N child processes
that each run a `DeliveryWorker` (their own store connections, provider connections and, with
JetStream, broker connection), while the serving process keeps the HTTP side (the API with
`--role all`; /healthz, /readyz and /metrics either way), the JetStream relay, the dead-letter
watch and the job retention. The workers need no coordination: claims are atomic in the store
(SQLite has one writer at a time; PostgreSQL skips rows another claim has locked; JetStream
hands each message to one of them).

The children live and die with the serving process (child_process.py): SIGTERM (or SIGINT) of
the serving process stops them gracefully, each as one worker stops (sends under way finish
within the grace, the rest is handed back); if the serving process dies any other way, they die
too, their leases run out and the jobs are claimed again, as after the death of a single
process; a child that dies is started again.

After the start specification, their stdin carries one byte per wake-up (new jobs were queued);
their stdout carries their counters once a second, which /metrics adds to the serving process's
own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pushgate.child_process import (
    Child,
    Children,
    frame,
    run_child,
)
from pushgate.config import Settings
from pushgate.heap import freeze_startup_objects
from pushgate.metrics import DeliveryMetrics, add_counts, merge_delivery
from pushgate.providers.senders import Endpoints

log = logging.getLogger("pushgate.delivery")

REPORT_EVERY_SECONDS = 1.0
REPORT_BACKLOG_BYTES = 1 << 20  # reports waiting for the parent to read, beyond which none is added
CHILD_POOL_SIZE = 4  # PostgreSQL connections per child: a worker runs few units at once
WAKE = b"w"


@dataclass(frozen=True)
class ChildSpec:
    """What a child needs to deliver as the serving process would."""

    settings: Settings
    index: int
    parent_pid: int
    endpoints: Endpoints
    ca_pem: str | None = None
    emulator_token_url: str | None = None


@dataclass
class Report:
    """A child's counters since it started."""

    metrics: DeliveryMetrics = field(default_factory=DeliveryMetrics)
    in_flight: int = 0
    queue_counters: dict[str, int] = field(default_factory=dict)


# ---- the serving process's side ----


class DeliveryProcesses:
    """Starts, watches and stops the delivery children; reads like one worker to /metrics."""

    def __init__(self, count: int, spec: Callable[[int], ChildSpec], grace: float) -> None:
        self.children = Children(
            "delivery", __name__, count, spec, grace, self._heard, on_exit=self._retire
        )
        self._retired = Report()  # counters of children that have exited, so sums never drop
        self._wake_scheduled = False

    async def start(self) -> None:
        await self.children.start()

    @staticmethod
    def _heard(child: Child, said: Any) -> None:
        if isinstance(said, Report):
            child.report = said

    def _reports(self) -> list[Report]:
        return [c.report for c in self.children.running.values() if c.report is not None]

    def _retire(self, child: Child) -> None:
        report = child.report
        if report is None:
            return
        self._retired.metrics = merge_delivery([self._retired.metrics, report.metrics])
        add_counts(self._retired.queue_counters, report.queue_counters)
        child.report = None

    def wake(self) -> None:
        """New jobs were queued: the children claim now instead of at their next poll (one
        byte per child per event-loop iteration, however many requests queued jobs in it)."""
        if not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_wakes)

    def _send_wakes(self) -> None:
        self._wake_scheduled = False
        self.children.send_all(WAKE)

    @property
    def metrics(self) -> DeliveryMetrics:
        return merge_delivery([self._retired.metrics, *(r.metrics for r in self._reports())])

    @property
    def in_flight(self) -> int:
        return sum(r.in_flight for r in self._reports())

    @property
    def queue_counters(self) -> dict[str, int]:
        total = dict(self._retired.queue_counters)
        for report in self._reports():
            add_counts(total, report.queue_counters)
        return total

    async def stop(self) -> None:
        """Stop every child as a worker stops (within the grace)."""
        await self.children.stop()


# ---- the child's side ----


def child_main() -> None:
    """Entry point of a delivery child (`python -m pushgate.delivery.processes`)."""
    run_child(ChildSpec, _child)


async def _child(spec: ChildSpec, reports: BinaryIO) -> None:
    from pushgate.delivery.directory import ProviderDirectory
    from pushgate.delivery.worker import DeliveryWorker, JobQueue
    from pushgate.providers.tls import make_ssl_context
    from pushgate.store.backend import open_store

    settings = spec.settings
    loop = asyncio.get_running_loop()
    store = open_store(
        settings.data_dir,
        settings.database_url,
        settings.sqlite_synchronous,
        settings.campaign_stats,
        pool_size=CHILD_POOL_SIZE,
        checkpoints=False,  # the serving process checkpoints the SQLite log
    )
    store.start()
    broker = None
    queue: JobQueue = store.queue
    if settings.queue_url:
        from pushgate.queue.jetstream import JetStreamQueue

        broker = JetStreamQueue(settings.queue_url, store.db, settings.queue_prefix)
        await broker.start()
        queue = broker
    ca_pem = spec.ca_pem

    def ssl_context() -> Any:
        return make_ssl_context(ca_pem) if ca_pem else None

    directory = ProviderDirectory(
        store.credential, spec.endpoints, ssl_context, spec.emulator_token_url
    )
    # The serving process's pid in the name, as a worker in that process would have it, so a
    # lease shows which `serve` holds it.
    name = f"{socket.gethostname()}:{spec.parent_pid}:w{spec.index}-{os.getpid()}"
    worker = DeliveryWorker(
        queue,
        store.record_deliveries,
        directory,
        name=name,
        concurrency=settings.worker_concurrency,
    )
    stopping = asyncio.Event()
    # Written through the loop, so that a parent slow to read never blocks the worker; a
    # report is cumulative, so one skipped while earlier ones wait is no loss.
    pipe, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, reports)

    def report() -> None:
        if pipe.is_closing() or pipe.get_write_buffer_size() > REPORT_BACKLOG_BYTES:
            return
        counters = dict(broker.counters) if broker is not None else {}
        pipe.write(frame(Report(worker.metrics, worker.in_flight, counters)))

    def parent_says() -> None:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except BlockingIOError:
            return
        if not data:  # the parent is gone (killed where PR_SET_PDEATHSIG does not exist)
            os._exit(1)
        worker.wake()

    os.set_blocking(sys.stdin.fileno(), False)
    loop.add_reader(sys.stdin.fileno(), parent_says)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    freeze_startup_objects()
    task = asyncio.create_task(worker.run())

    async def reporting() -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_SECONDS)
            report()

    reporter = asyncio.create_task(reporting())
    try:
        await stopping.wait()
        await worker.stop(settings.shutdown_grace)
    finally:
        for running in (task, reporter):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        report()
        if broker is not None:
            await broker.close()
        await directory.aclose()
        store.close()
        deadline = loop.time() + 1.0  # for the last report to reach the parent
        while pipe.get_write_buffer_size() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        pipe.close()


if __name__ == "__main__":
    # From the module itself, not this `__main__` copy of it: the classes of what the pipes
    # carry must be the ones pickle finds by name.
    from pushgate.delivery.processes import child_main as main

    main()
