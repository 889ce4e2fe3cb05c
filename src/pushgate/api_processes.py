"""The HTTP API in several processes: `pushgate serve --api-processes N` with N > 1.

One Python process answers at most what one core allows, so the serving process binds the
listening socket before it starts and N - 1 children inherit it: the kernel hands each new
connection to whichever process accepts it first. A child is the API of `--role api`, nothing
else (no delivery, no emulators, no JetStream relay); the serving process keeps those. They share
what one process kept in memory:

- the store, as separate `serve` commands do (SQLite: WAL, one writer at a time, each
  process's group commit; PostgreSQL: its own pool each);
- rate limits and bad-key counts: Redis when configured, else a table in a file of the data
  dir that every process maps (limits/shared_table.py);
- wake-ups: a child that queued jobs says so, and the serving process wakes its workers and
  relay as for its own requests;
- /metrics: any process may take the scrape, and the serving process renders every one of
  them: it asks each child for its counters at that moment (waiting at most
  FRESH_REPORT_SECONDS) and adds them to its own, so that counters never go down from one
  scrape to the next, whichever process answers (a child that dies keeps its last counters in
  the sum).

Children live and die with the serving process like the delivery processes
(child_process.py), in a session of their own so that Ctrl-C reaches only the serving process,
which stops them with SIGTERM: each then stops accepting, answers the requests under way
(within the grace), and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pushgate.child_process import (
    Child,
    Children,
    frame,
    read_frame,
    run_child,
)
from pushgate.config import Settings
from pushgate.metrics import PushMetrics, RequestMetrics, merge_pushes, merge_requests
from pushgate.providers.senders import Endpoints

log = logging.getLogger("pushgate.api")

REPORT_EVERY_SECONDS = 1.0  # so that a child that dies leaves its counters to the sum
FRESH_REPORT_SECONDS = 1.0  # a scrape waits this long at most for the children's counters
SCRAPE_SECONDS = 5.0  # a child's scrape waits this long at most for the serving process
START_SECONDS = 30.0  # the serving process waits this long at most for its children to start
READY = "ready"  # child -> parent: started, accepting from now on
QUEUED = "queued"  # child -> parent: jobs were queued
REPORT_NOW = "report"  # parent -> child: send your counters


@dataclass(frozen=True)
class ApiChildSpec:
    """What an API child needs to answer as the serving process would."""

    settings: Settings
    index: int
    parent_pid: int
    fd: int  # the listening socket, inherited
    endpoints: Endpoints  # for certificate checks (HMS's token endpoint)
    ca_pem: str | None = None
    emulator_control_url: str | None = None


@dataclass
class ApiReport:
    """A child's counters since it started."""

    requests: RequestMetrics = field(default_factory=RequestMetrics)
    pushes: PushMetrics = field(default_factory=PushMetrics)
    store_units: int = 0
    store_commits: int = 0


def merge_reports(parts: list[ApiReport]) -> ApiReport:
    return ApiReport(
        merge_requests([p.requests for p in parts]),
        merge_pushes([p.pushes for p in parts]),
        sum(p.store_units for p in parts),
        sum(p.store_commits for p in parts),
    )


@dataclass(frozen=True)
class ScrapeRequest:
    id: int


@dataclass(frozen=True)
class ScrapeAnswer:
    id: int
    body: bytes


# ---- the serving process's side ----


class ApiProcesses:
    """The API children: started once the serving process knows its providers' endpoints."""

    def __init__(
        self,
        count: int,
        spec: Callable[[int], ApiChildSpec],
        grace: float,
        listening: socket.socket,
        on_queued: Callable[[], None],
        render: Callable[[], Awaitable[bytes]],
    ) -> None:
        self.children = Children(
            "API",
            __name__,
            count,
            spec,
            grace,
            self._heard,
            on_exit=self._retire,
            pass_fds=(listening.fileno(),),
            new_session=True,
        )
        self._on_queued = on_queued
        self._render = render
        self._retired = ApiReport()
        self._fresh: dict[int, asyncio.Future[None]] = {}
        self._started = asyncio.Event()
        self._starting = set(range(count))
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the children and wait until each accepts (or START_SECONDS pass: a child that
        fails to start is started again meanwhile), so that the service is whole when it
        reports ready."""
        await self.children.start()
        try:
            async with asyncio.timeout(START_SECONDS):
                await self._started.wait()
        except TimeoutError:
            log.error("API processes %s did not start in time", sorted(self._starting))

    async def stop(self) -> None:
        await self.children.stop()
        for task in list(self._tasks):
            task.cancel()

    def _heard(self, child: Child, said: Any) -> None:
        if said == QUEUED:
            self._on_queued()
        elif said == READY:
            self._starting.discard(child.index)
            if not self._starting:
                self._started.set()
        elif isinstance(said, ApiReport):
            child.report = said
            self._stop_waiting(child)
        elif isinstance(said, ScrapeRequest):
            task = asyncio.create_task(self._answer_scrape(child, said.id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer_scrape(self, child: Child, scrape_id: int) -> None:
        child.send(frame(ScrapeAnswer(scrape_id, await self._render())))

    def _retire(self, child: Child) -> None:
        if child.report is not None:
            self._retired = merge_reports([self._retired, child.report])
            child.report = None
        self._stop_waiting(child)

    def _stop_waiting(self, child: Child) -> None:
        """A scrape waiting for this child's counters has them (or the child is gone)."""
        waiting = self._fresh.pop(child.index, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def totals(self) -> ApiReport:
        """Every child's counters as of now (or as of its last report, for a child that does
        not answer within FRESH_REPORT_SECONDS), with those of children that have exited."""
        loop = asyncio.get_running_loop()
        waits = []
        for child in self.children.running.values():
            if child.process.returncode is None:
                waiting = self._fresh.get(child.index)
                if waiting is None:
                    waiting = self._fresh[child.index] = loop.create_future()
                    child.send(frame(REPORT_NOW))
                waits.append(waiting)
        if waits:
            await asyncio.wait(waits, timeout=FRESH_REPORT_SECONDS)
        reports = [c.report for c in self.children.running.values() if c.report is not None]
        return merge_reports([self._retired, *reports])


# ---- the child's side ----


class ParentLink:
    """A child's line to the serving process: wake-ups and reports out, scrapes both ways."""

    def __init__(self, spec: ApiChildSpec) -> None:
        self.spec = spec
        self.report: Callable[[], ApiReport] = ApiReport
        self._pipe: asyncio.WriteTransport | None = None
        self._queued_scheduled = False
        self._ids = itertools.count()
        self._scrapes: dict[int, asyncio.Future[bytes]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, reports: BinaryIO) -> None:
        loop = asyncio.get_running_loop()
        self._pipe, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, reports)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._tasks = [
            asyncio.create_task(self._listen(reader)),
            asyncio.create_task(self._report_regularly()),
        ]

    def _say(self, value: object) -> None:
        if self._pipe is not None and not self._pipe.is_closing():
            self._pipe.write(frame(value))

    def queued(self) -> None:
        """Jobs were queued (once per event-loop iteration, however many requests did)."""
        if not self._queued_scheduled:
            self._queued_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_queued)

    def _send_queued(self) -> None:
        self._queued_scheduled = False
        self._say(QUEUED)

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                said = await read_frame(reader)
                if said == REPORT_NOW:
                    self._say(self.report())
                elif isinstance(said, ScrapeAnswer):
                    waiting = self._scrapes.pop(said.id, None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(said.body)
        except (asyncio.IncompleteReadError, ConnectionError):
            os._exit(1)  # the parent is gone (killed where PR_SET_PDEATHSIG does not exist)

    async def _report_regularly(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_SECONDS)
            self._say(self.report())

    async def scrape(self) -> bytes:
        scrape_id = next(self._ids)
        waiting: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._scrapes[scrape_id] = waiting
        self._say(ScrapeRequest(scrape_id))
        try:
            async with asyncio.timeout(SCRAPE_SECONDS):
                return await waiting
        finally:
            self._scrapes.pop(scrape_id, None)

    def ready(self) -> None:
        """Started: uvicorn accepts as soon as the application's start-up returns."""
        self._say(READY)

    def last_words(self) -> None:
        """The final counters, as the child stops."""
        self._say(self.report())


def child_main() -> None:
    """Entry point of an API child (`python -m pushgate.api_processes`)."""
    run_child(ApiChildSpec, _child)


async def _child(spec: ApiChildSpec, reports: BinaryIO) -> None:
    import uvicorn

    from pushgate.server import create_app, uvicorn_config

    link = ParentLink(spec)
    await link.open(reports)
    listening = socket.socket(fileno=spec.fd)
    app = create_app(spec.settings, parent=link)
    server = uvicorn.Server(uvicorn_config(app, spec.settings))
    # uvicorn answers SIGTERM (the serving process stopping this one) with its graceful
    # shutdown, then raises the signal again for the handler it found: this one, so that the
    # last report still goes out. SIGINT, from a terminal, never reaches this session.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    with contextlib.suppress(asyncio.CancelledError):
        await server.serve(sockets=[listening])
    link.last_words()
    await asyncio.sleep(0.05)  # for the last report to leave the pipe's buffer


if __name__ == "__main__":
    # From the module itself, not this `__main__` copy of it: the classes of what the pipes
    # carry must be the ones pickle finds by name.
    from pushgate.api_processes import child_main as main

    main()
