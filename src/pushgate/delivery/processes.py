"""Delivery in processes of their own: `pushgate serve --workers N` with N > 1.

One Python process delivers at most what one core allows, so `serve` starts N child processes
that each run a `DeliveryWorker` (their own store connections, provider connections and, with
JetStream, broker connection), while the serving process keeps the HTTP side (the API with
`--role all`; /healthz, /readyz and /metrics either way), the JetStream relay, the dead-letter
watch and the job retention. The workers need no coordination: claims are atomic in the store
(SQLite has one writer at a time; PostgreSQL skips rows another claim has locked; JetStream
hands each message to one of them).

The children live and die with the serving process:

- SIGTERM (or SIGINT) of the serving process stops the children gracefully, each as one worker
  stops (sends under way finish within the grace, the rest is handed back), before it exits;
- if the serving process dies any other way (SIGKILL, a crash), the kernel kills the children
  (Linux: PR_SET_PDEATHSIG), and elsewhere a child exits as soon as its stdin, a pipe from the
  serving process, reaches its end. Their leases run out and the jobs are claimed again, as
  after the death of a single process;
- a child that dies is started again after a pause (1 s, doubling up to 30 s).

The serving process talks to the children over pipes: their stdin carries the start
specification (not argv, which every user of the machine can read: it holds the database URL)
and then one byte per wake-up (new jobs were queued); their stdout carries their counters once
a second, which /metrics adds to the serving process's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pushgate.child_process import die_with_parent
from pushgate.config import Settings
from pushgate.heap import freeze_startup_objects
from pushgate.metrics import DeliveryMetrics, Histogram
from pushgate.providers.senders import Endpoints

log = logging.getLogger("pushgate.delivery")

REPORT_EVERY_SECONDS = 1.0
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
REPORT_BACKLOG_BYTES = 1 << 20  # reports waiting for the parent to read, beyond which none is added
STOP_MARGIN_SECONDS = 5.0  # beyond the grace, before a child that has not exited is killed
CHILD_POOL_SIZE = 4  # PostgreSQL connections per child: a worker runs few units at once
WAKE = b"w"
_FRAME = struct.Struct(">I")


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


def frame(value: object) -> bytes:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(payload)) + payload


def merge_metrics(parts: list[DeliveryMetrics]) -> DeliveryMetrics:
    """The sum of several workers' counters."""
    total = DeliveryMetrics()
    for part in parts:
        for key, n in part.sends.items():
            total.sends[key] = total.sends.get(key, 0) + n
        for retry, n in part.retries.items():
            total.retries[retry] = total.retries.get(retry, 0) + n
        for dead, n in part.invalidations.items():
            total.invalidations[dead] = total.invalidations.get(dead, 0) + n
        for platform, histogram in part.send_seconds.items():
            into = total.send_seconds.get(platform)
            if into is None:
                into = total.send_seconds[platform] = Histogram(histogram.bounds)
            into.counts = [a + b for a, b in zip(into.counts, histogram.counts, strict=True)]
            into.total += histogram.total
        total.events.update(part.events)
    return total


# ---- the serving process's side ----


@dataclass
class _Child:
    index: int
    process: asyncio.subprocess.Process
    report: Report = field(default_factory=Report)


class DeliveryProcesses:
    """Starts, watches and stops the delivery children; reads like one worker to /metrics."""

    def __init__(self, count: int, spec: Callable[[int], ChildSpec], grace: float) -> None:
        self.count = count
        self._spec = spec
        self._grace = grace
        self._children: dict[int, _Child] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._retired = Report()  # counters of children that have exited, so sums never drop
        self._stopping = False
        self._wake_scheduled = False

    async def start(self) -> None:
        started = await asyncio.gather(*(self._spawn(i) for i in range(self.count)))
        for child in started:
            self._watchers.append(asyncio.create_task(self._watch(child)))

    async def _spawn(self, index: int) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pushgate.delivery.processes",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None
        process.stdin.write(frame(self._spec(index)))
        child = self._children[index] = _Child(index, process)
        log.info("delivery process %d started (pid %d)", index, process.pid)
        return child

    async def _watch(self, child: _Child) -> None:
        """Read the child's reports until it exits; then start another, unless stopping."""
        pause = RESTART_FIRST_SECONDS
        while True:
            started = time.monotonic()
            await self._read_reports(child)
            code = await child.process.wait()
            self._retire(child)
            if self._stopping:
                return
            if time.monotonic() - started > RESTART_MAX_SECONDS:
                pause = RESTART_FIRST_SECONDS  # it ran a while: not a crash loop
            log.error(
                "delivery process %d (pid %d) exited with status %s; starting another in %.0f s",
                child.index,
                child.process.pid,
                code,
                pause,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX_SECONDS)
            if self._stopping:
                return
            child = await self._spawn(child.index)

    async def _read_reports(self, child: _Child) -> None:
        stream = child.process.stdout
        assert stream is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (size,) = _FRAME.unpack(await stream.readexactly(_FRAME.size))
                report = pickle.loads(await stream.readexactly(size))
                if isinstance(report, Report):
                    child.report = report

    def _retire(self, child: _Child) -> None:
        report = child.report
        self._retired.metrics = merge_metrics([self._retired.metrics, report.metrics])
        for key, n in report.queue_counters.items():
            self._retired.queue_counters[key] = self._retired.queue_counters.get(key, 0) + n
        child.report = Report()

    def wake(self) -> None:
        """New jobs were queued: the children claim now instead of at their next poll (one
        byte per child per event-loop iteration, however many requests queued jobs in it)."""
        if not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_wakes)

    def _send_wakes(self) -> None:
        self._wake_scheduled = False
        for child in self._children.values():
            stdin = child.process.stdin
            if stdin is not None and not stdin.is_closing() and child.process.returncode is None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    stdin.write(WAKE)

    @property
    def metrics(self) -> DeliveryMetrics:
        return merge_metrics(
            [self._retired.metrics, *(c.report.metrics for c in self._children.values())]
        )

    @property
    def in_flight(self) -> int:
        return sum(c.report.in_flight for c in self._children.values())

    @property
    def queue_counters(self) -> dict[str, int]:
        total = dict(self._retired.queue_counters)
        for child in self._children.values():
            for key, n in child.report.queue_counters.items():
                total[key] = total.get(key, 0) + n
        return total

    async def stop(self) -> None:
        """Stop every child as a worker stops (within the grace), killing any that has not
        exited by the grace plus a margin."""
        self._stopping = True
        # First, so that no child is started again meanwhile (one being started when its
        # watcher is cancelled reads the end of its stdin and exits).
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        live = [c.process for c in self._children.values() if c.process.returncode is None]
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if live:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in live],
                timeout=self._grace + STOP_MARGIN_SECONDS,
            )
            for process in live:
                if process.returncode is None:
                    log.warning("delivery process (pid %d) did not stop: killed", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if pending:
                await asyncio.wait(pending)


# ---- the child's side ----


def _read_frame(stream: BinaryIO) -> Any:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        os._exit(1)  # the parent is gone before saying what to do
    (size,) = _FRAME.unpack(header)
    return pickle.loads(stream.read(size))


def child_main() -> None:
    """Entry point of a delivery child (`python -m pushgate.delivery.processes`)."""
    # Ctrl-C in a terminal reaches the whole process group: the parent alone decides, and
    # stops the children with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec = _read_frame(sys.stdin.buffer)
    assert isinstance(spec, ChildSpec)
    die_with_parent(spec.parent_pid)
    # Reports go on the original stdout; anything else printed goes to stderr with the logs.
    reports = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    from pushgate import logs

    logs.configure(spec.settings.log_level)
    try:
        import uvloop

        uvloop.run(_child(spec, reports))
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(_child(spec, reports))


async def _child(spec: ChildSpec, reports: BinaryIO) -> None:
    from pushgate.delivery.senders import ProviderDirectory
    from pushgate.delivery.worker import DeliveryWorker
    from pushgate.providers.tls import make_ssl_context
    from pushgate.queue.base import JobQueue
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
