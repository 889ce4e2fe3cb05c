"""Where the embedded store runs its SQL: group commit, on the event loop or on a thread.

Every unit of work is a plain function of a connection. Units that arrive
together run in one transaction and are answered only after its COMMIT, so
"answered" always means "durable", and under load one commit serves many
requests. If a batch fails, it is rolled back and each unit is run again in a
transaction of its own, so one failing unit cannot take the others down (the
fast path needs no SAVEPOINT per unit).

- `InlineExecutor` (synchronous=NORMAL, the default): units run on the event
  loop itself, batched per loop iteration. In WAL mode with synchronous=NORMAL a
  commit is a write() to the WAL without fsync, which survives a killed process;
  thread hand-offs would cost more than the SQL. Checkpoints (the fsyncs) run
  on a thread of their own.
- `SqliteExecutor` (synchronous=FULL): units run on a writer thread, because
  every commit then waits for an fsync, which must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pushgate.outage import unreachable
from pushgate.store.db import deferring

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's own lock alone
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")
Unit = Callable[[sqlite3.Connection], Any]
Result = tuple[Any, BaseException | None]
_MAX_BATCH = 512
CHECKPOINT_EVERY_SECONDS = 1.0
WAL_RESTART_FRAMES = 16384  # 64 MB of 4 KB pages: start the log over past this
RESTART_WAIT_SECONDS = 1.0
log = logging.getLogger("pushgate.store")


def connect(path: Path | str, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the project's pragmas."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    # The log file is cut back to this size whenever it starts over (it keeps its largest size
    # otherwise).
    conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


def batch_or_each(transaction: Callable[[list[Any]], list[Any]], units: list[Any]) -> list[Result]:
    """Run the units in one transaction; if it fails, each in a transaction of its own, so one
    failing unit cannot take the others down (the fast path needs no SAVEPOINT per unit)."""
    try:
        values = transaction(units)
    except Exception as exc:
        if len(units) == 1 or unreachable(exc) is not None:
            # One at a time would only wait for the database once per unit.
            return [(None, exc)] * len(units)
        return [batch_or_each(transaction, [unit])[0] for unit in units]
    return [(value, None) for value in values]


def run_batch(conn: sqlite3.Connection, units: list[Unit]) -> list[Result]:
    """Run the units in one transaction; on failure, each in a transaction of its own."""

    def transaction(batch: list[Unit]) -> list[Any]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            with deferring(conn):
                values = [unit(conn) for unit in batch]
            conn.execute("COMMIT")
        except Exception:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return values

    return batch_or_each(transaction, units)


def _settle(futures: list[asyncio.Future[Any]], results: list[Result]) -> None:
    for future, (value, exc) in zip(futures, results, strict=True):
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


class WriterLock:
    """An exclusive lock that every pushgate process takes before it writes to the database
    (a file beside it, locked with flock): writers then take turns, each woken as soon as the
    other is done, instead of polling SQLite's lock with sleeps (1 to 100 ms, on the event loop)
    when several processes share the file (`serve --workers N`, an API and a worker process).
    Other writers (the CLI, checkpoints) still meet SQLite's own lock and busy timeout."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def beside(cls, database: Path | str) -> WriterLock | None:
        if fcntl is None or str(database) == ":memory:":
            return None
        return cls(os.open(f"{database}-writer", os.O_RDWR | os.O_CREAT, 0o600))

    def acquire(self, block: bool) -> bool:
        assert fcntl is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        assert fcntl is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class InlineExecutor:
    def __init__(
        self, path: Path | str, synchronous: str = "NORMAL", checkpoints: bool = True
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        # Off where another process on the same database checkpoints (delivery children).
        self._checkpoints = checkpoints
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Unit, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._lock: WriterLock | None = None
        self._lock_waited = False  # a thread waits for the writer lock on the loop's behalf
        self.batches = 0  # commits, for metrics and benchmarks
        self.units = 0
        self.waiting = 0  # units submitted and not yet answered (load shedding reads it)

    def start(self) -> None:
        self._conn = connect(self._path, self._synchronous)
        self._lock = WriterLock.beside(self._path)
        # Checkpoints fsync: they run on their own thread, never inside a commit here.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        if not self._checkpoints:
            return
        self._stop.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
            self._checkpointer = None
        if self._conn is not None:
            if self._pending:
                self._flush(block=True)
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def run(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((unit, future))
        if not self._scheduled:
            self._scheduled = True
            # After the callbacks already due: every request that reached the store in
            # this loop iteration joins the same transaction.
            loop.call_soon(self._flush)
        self.waiting += 1
        try:
            return await future
        finally:
            self.waiting -= 1

    def _flush(self, block: bool = False) -> None:
        self._scheduled = False
        if self._lock_waited or not self._pending:
            return  # the units wait for the writer lock with the others
        lock = self._lock
        if lock is not None and not lock.acquire(block):
            # Another process writes: a thread waits for its turn, so that the loop goes on
            # meanwhile (SQLite's own busy handler would sleep on the loop, and poll); the units
            # that arrive in the meantime join the batch.
            self._lock_waited = True
            loop = asyncio.get_running_loop()
            threading.Thread(
                target=self._wait_for_lock, args=(lock, loop), name="sqlite-lock", daemon=True
            ).start()
            return
        try:
            self._run_pending()
        finally:
            if lock is not None:
                lock.release()

    def _wait_for_lock(self, lock: WriterLock, loop: asyncio.AbstractEventLoop) -> None:
        lock.acquire(True)
        try:
            loop.call_soon_threadsafe(self._locked)
        except RuntimeError:  # the loop has closed
            lock.release()

    def _locked(self) -> None:
        self._lock_waited = False
        lock = self._lock
        try:
            self._run_pending()
        finally:
            if lock is not None:
                lock.release()

    def _run_pending(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._conn is None:
            _settle(
                [f for _, f in batch], [(None, RuntimeError("the store is closed"))] * len(batch)
            )
            return
        results = run_batch(self._conn, [unit for unit, _ in batch])
        self.batches += 1
        self.units += len(batch)
        _settle([f for _, f in batch], results)

    def _checkpoint(self) -> None:
        conn = connect(self._path, self._synchronous)
        # A RESTART waits this long for the writer, then gives up until the next round.
        conn.execute(f"PRAGMA busy_timeout={int(RESTART_WAIT_SECONDS * 1000)}")
        try:
            while not self._stop.wait(CHECKPOINT_EVERY_SECONDS):
                try:
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > WAL_RESTART_FRAMES:
                        # Under a steady stream of commits a PASSIVE checkpoint never finds
                        # the log fully copied when the next commit starts, so the log is never
                        # started over and grows without bound (8.9 GB in a 10-minute soak at
                        # 578 requests/s, reads slowing as it grew). RESTART holds the next
                        # commit back while it copies the last second's frames (the PASSIVE
                        # rounds did the rest), and the log then starts over and is cut back to
                        # journal_size_limit.
                        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                except sqlite3.Error:
                    log.warning("WAL checkpoint failed", exc_info=True)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()


class SqliteExecutor:
    def __init__(self, path: Path | str, synchronous: str = "NORMAL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._units: queue.SimpleQueue[tuple[Unit, asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.batches = 0  # commits, for metrics and benchmarks
        self.units = 0
        self.waiting = 0  # units submitted and not yet answered (load shedding reads it)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._thread is not None:
            self._units.put(None)
            self._thread.join()
            self._thread = None

    async def run(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._units.put((unit, future))
        self.waiting += 1
        try:
            return await future
        finally:
            self.waiting -= 1

    def _run(self) -> None:
        try:
            conn = connect(self._path, self._synchronous)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        lock = WriterLock.beside(self._path)
        self._ready.set()
        try:
            while True:
                first = self._units.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        nxt = self._units.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._run_batch(conn, batch, lock)
                if stop:
                    return
        finally:
            conn.close()
            if lock is not None:
                lock.close()

    def _run_batch(
        self,
        conn: sqlite3.Connection,
        batch: list[tuple[Unit, asyncio.Future[Any]]],
        lock: WriterLock | None = None,
    ) -> None:
        if lock is not None:
            lock.acquire(True)  # this thread may wait: it is not the event loop
        try:
            results = run_batch(conn, [unit for unit, _ in batch])
        finally:
            if lock is not None:
                lock.release()
        self.batches += 1
        self.units += len(batch)
        answer(batch, results)


def answer(batch: list[tuple[Any, asyncio.Future[Any]]], results: list[Result]) -> None:
    """Settle a batch's futures from a worker thread: one call into each event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, tuple[list[asyncio.Future[Any]], list[Result]]] = {}
    for (_, future), result in zip(batch, results, strict=True):
        futures, answers = by_loop.setdefault(future.get_loop(), ([], []))
        futures.append(future)
        answers.append(result)
    for loop, (futures, answers) in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(_settle, futures, answers)
