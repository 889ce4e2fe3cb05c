"""The child processes of `pushgate serve`: how they are started, watched, talked to and stopped.

Delivery processes (delivery/processes.py) and API processes (api_processes.py) differ only in
what they run and what they say; this module is the rest, once:

- a child is `python -m <module>`, its start specification the first frame on its stdin (not
  argv, which every user of the machine can read: it holds the database URL), and what it says
  comes back as frames on its stdout (a frame: 4 bytes of length, then a pickle);
- it dies with the serving process: SIGKILL or a crash of the parent kills it (Linux:
  PR_SET_PDEATHSIG), and elsewhere it exits as soon as its stdin reaches its end;
- a child that dies is started again after a pause (1 s, doubling up to 30 s); one that ran
  longer than that is not in a crash loop and starts over at 1 s;
- `stop` sends SIGTERM to every child (each stops as its role does within the grace) and kills
  any that has not exited by the grace plus a margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable, Collection, Coroutine
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

if TYPE_CHECKING:
    from pushgate.config import Settings

log = logging.getLogger("pushgate.children")

_PR_SET_PDEATHSIG = 1
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
STOP_MARGIN_SECONDS = 5.0  # beyond the grace, before a child that has not exited is killed
_FRAME = struct.Struct(">I")


def die_with_parent(parent_pid: int) -> None:
    """The kernel kills this process when its parent dies (Linux); checked once after asking,
    in case the parent died before."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def frame(value: object) -> bytes:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(payload)) + payload


async def read_frame(stream: asyncio.StreamReader) -> Any:
    """The next frame's value; IncompleteReadError at the end of the stream."""
    (size,) = _FRAME.unpack(await stream.readexactly(_FRAME.size))
    return pickle.loads(await stream.readexactly(size))


def read_start_frame(stream: BinaryIO) -> Any:
    """A child's first read, blocking: its specification, or exit if the parent is gone."""
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        os._exit(1)  # the parent is gone before saying what to do
    (size,) = _FRAME.unpack(header)
    return pickle.loads(stream.read(size))


def take_report_pipe() -> BinaryIO:
    """The child's original stdout, kept for frames to the parent; anything else printed goes
    to stderr with the logs."""
    reports = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    return reports


class StartSpec(Protocol):
    """What every child's specification holds."""

    @property
    def parent_pid(self) -> int: ...

    @property
    def settings(self) -> Settings: ...


S = TypeVar("S", bound=StartSpec)


def run_child(kind: type[S], main: Callable[[S, BinaryIO], Coroutine[Any, Any, None]]) -> None:
    """A child's entry point: its specification from stdin, then `main` on uvloop, with the
    report pipe."""
    # Ctrl-C in a terminal reaches the whole process group: the parent alone decides, and
    # stops the children with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec = read_start_frame(sys.stdin.buffer)
    assert isinstance(spec, kind)
    die_with_parent(spec.parent_pid)
    reports = take_report_pipe()
    from pushgate import logs

    logs.configure(spec.settings.log_level, spec.settings.log_format)
    try:
        import uvloop

        uvloop.run(main(spec, reports))
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(main(spec, reports))


class Child:
    """One running child: its index among its kind, its process, and what it said last."""

    def __init__(self, index: int, process: asyncio.subprocess.Process) -> None:
        self.index = index
        self.process = process
        self.report: Any = None

    def send(self, data: bytes) -> None:
        """Write to the child's stdin unless it is gone (a dead child is started again)."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing() and self.process.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                stdin.write(data)


class Children:
    """Starts, watches and stops `count` children running `module`."""

    def __init__(
        self,
        kind: str,
        module: str,
        count: int,
        spec: Callable[[int], object],
        grace: float,
        on_frame: Callable[[Child, Any], None],
        on_exit: Callable[[Child], None] = lambda child: None,
        pass_fds: Collection[int] = (),
        new_session: bool = False,
    ) -> None:
        self.kind = kind
        self.count = count
        self._module = module
        self._spec = spec
        self._grace = grace
        self._on_frame = on_frame
        self._on_exit = on_exit
        self._pass_fds = tuple(pass_fds)
        # A child in a session of its own gets no Ctrl-C from the terminal: the parent alone
        # decides, and stops it with SIGTERM.
        self._new_session = new_session
        self.running: dict[int, Child] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        started = await asyncio.gather(*(self._spawn(i) for i in range(self.count)))
        for child in started:
            self._watchers.append(asyncio.create_task(self._watch(child)))

    async def _spawn(self, index: int) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self._module,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            pass_fds=self._pass_fds,
            start_new_session=self._new_session,
        )
        assert process.stdin is not None
        process.stdin.write(frame(self._spec(index)))
        child = self.running[index] = Child(index, process)
        log.info("%s process %d started (pid %d)", self.kind, index, process.pid)
        return child

    async def _watch(self, child: Child) -> None:
        """Read the child's frames until it exits; then start another, unless stopping."""
        pause = RESTART_FIRST_SECONDS
        while True:
            started = time.monotonic()
            await self._read_frames(child)
            code = await child.process.wait()
            self._on_exit(child)
            if self._stopping:
                return
            if time.monotonic() - started > RESTART_MAX_SECONDS:
                pause = RESTART_FIRST_SECONDS  # it ran a while: not a crash loop
            log.error(
                "%s process %d (pid %d) exited with status %s; starting another in %.0f s",
                self.kind,
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

    async def _read_frames(self, child: Child) -> None:
        stream = child.process.stdout
        assert stream is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                self._on_frame(child, await read_frame(stream))

    def send_all(self, data: bytes) -> None:
        for child in self.running.values():
            child.send(data)

    async def stop(self) -> None:
        """Stop every child (within the grace), killing any that has not exited by the grace
        plus a margin."""
        self._stopping = True
        # First, so that no child is started again meanwhile (one being started when its
        # watcher is cancelled reads the end of its stdin and exits).
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        live = [c.process for c in self.running.values() if c.process.returncode is None]
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
                    log.warning("%s process (pid %d) did not stop: killed", self.kind, process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if pending:
                await asyncio.wait(pending)
