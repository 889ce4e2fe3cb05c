"""One SQLite connection on its own thread, with group commit.

Every unit of work is a plain function of a connection. The thread takes all
units that are waiting, runs each inside its own SAVEPOINT (a failing unit
rolls back alone), and commits them in one transaction: under load one fsync
serves many requests, and a unit's future is resolved only after its commit,
so "answered" always means "durable". One hop per unit, not per statement,
keeps the event loop free of per-query thread round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Unit = Callable[[sqlite3.Connection], Any]
_MAX_BATCH = 512


def connect(path: Path | str, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the project's pragmas."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


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
        return await future

    def _run(self) -> None:
        try:
            conn = connect(self._path, self._synchronous)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
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
                self._run_batch(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[tuple[Unit, asyncio.Future[Any]]]
    ) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for unit, future in batch:
                conn.execute("SAVEPOINT unit")
                try:
                    value = unit(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    results.append((future, None, exc))
                else:
                    conn.execute("RELEASE unit")
                    results.append((future, value, None))
            conn.execute("COMMIT")
        except Exception as exc:  # the commit itself failed: nothing in the batch is durable
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            results = [(future, None, exc) for _, future in batch]
        self.batches += 1
        self.units += len(batch)
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
        ] = {}
        for item in results:
            by_loop.setdefault(item[0].get_loop(), []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(_resolve, items)


def _resolve(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, exc in items:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
