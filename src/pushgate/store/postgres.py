"""The PostgreSQL backend: psycopg 3 connections adapted to the store's `Db` protocol, and an
executor that runs each unit of work in its own transaction on a pooled connection.

Units are the same plain functions of a connection that the SQLite executors run; here they run
on a small thread pool (psycopg's blocking API keeps each unit a straight-line function), with
the transaction retried when PostgreSQL reports a conflict between concurrent writers.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from pushgate.config import ENV_PREFIX, ConfigError
from pushgate.store.db import deferring
from pushgate.store.executor import Result, answer, batch_or_each

T = TypeVar("T")
Unit = Callable[["PgConnection"], Any]
log = logging.getLogger("pushgate.store")
RETRIES = 8
# How long a unit waits for a pooled connection. Each executor thread holds at most one of the
# pool's connections, so a wait means the pool is (re)connecting: with the database away, a
# request is answered 503 after this long (api/app.py), not after psycopg_pool's 30 s.
CONNECTION_WAIT_SECONDS = 3.0
# How long psycopg_pool keeps trying to replace a lost connection before it gives up (the next
# unit that finds no connection starts over at once). Its delay between attempts doubles
# without a ceiling (1, 2, 4, 8 s ...) until then: with its default of 5 minutes, a database
# back after 8 s was used again only 5.6 s later (bench/run_faults.py); a short round keeps
# the wait for the next attempt under a second or two.
RECONNECT_ROUND_SECONDS = 2.0
# What concurrent transactions may run into and a fresh attempt resolves.
RETRYABLE = (
    pg_errors.UniqueViolation,
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
)
# Rows per campaign counter (store/campaign_stats.py): each executor thread adds to its own, from a
# random start per process, so processes sharing the database rarely share one.
COUNTER_SHARDS = 64
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DATABASE_URL = f"{ENV_PREFIX}DATABASE_URL"


def terse(exc: BaseException) -> BaseException:
    """A database error as its callers, and so the logs, see it: the primary message only.
    PostgreSQL's DETAIL quotes the values of the row at fault (`Key (kind, value)=(email,
    ada@example.com) already exists`), personal data that must not reach a log; `exc.diag`
    keeps every field for code that needs one, and the type is unchanged."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        exc.args = (exc.diag.message_primary,)
    return exc


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (a literal `%` is doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgCursor:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        return self._cursor.description

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection speaking the store's `?`-placeholder SQL."""

    dialect = "postgres"

    def __init__(self, raw: psycopg.Connection[Any], shard: int = 0) -> None:
        self.raw = raw
        self.shard = shard

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        return PgCursor(self.raw.execute(translate(sql), tuple(parameters)))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> PgCursor:
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), [tuple(p) for p in parameters])
        return PgCursor(cursor)

    def commit(self) -> None:
        self.raw.commit()

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PgTarget:
    """Where to connect, and the schema that holds pushgate's tables."""

    conninfo: str
    schema: str


def parse_url(url: str) -> PgTarget:
    """A libpq URL; pushgate's own `schema=` parameter (default `public`) picks the schema, so
    that several installations, or test runs, can share one database."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise ConfigError(
            f"{DATABASE_URL} must be a PostgreSQL URL: postgresql://user@host:5432/db[?schema=name]"
        )
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", "public")
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"{DATABASE_URL}: schema name {schema!r}: lower-case letters, digits and _ only"
        )
    rest = urlunsplit(
        (parts.scheme.replace("postgres+", ""), parts.netloc, parts.path, urlencode(query), "")
    )
    return PgTarget(rest, schema)


def connect(target: PgTarget, autocommit: bool = True) -> PgConnection:
    raw = psycopg.connect(target.conninfo, autocommit=autocommit)
    raw.execute(f"SET search_path TO {target.schema}")
    return PgConnection(raw)


def unusable(error: psycopg.Error) -> ConfigError:
    """A database that cannot be used as configured, as one line naming the setting."""
    return ConfigError(f"{DATABASE_URL}: {' '.join(str(error).split())}")


def reach(target: PgTarget) -> PgConnection:
    """A process's first connection: what stops it (no server there, a refused login, no such
    database, a URL libpq cannot read) is a ConfigError, not a traceback."""
    try:
        return connect(target)
    except psycopg.Error as error:
        raise unusable(error) from None


class PgExecutor:
    """Units of work on pooled connections and worker threads, with group commit: each thread
    takes every unit waiting (up to `max_batch`) and runs them in one transaction, as the
    SQLite executors do, so under load one BEGIN/COMMIT pair and one counter write serve many
    units. A batch that fails is rolled back and its units run again one by one, so one
    failing unit cannot take the others down; conflicts between concurrent writers (unique,
    serialization, deadlock) are retried."""

    def __init__(self, target: PgTarget, size: int = 8, max_batch: int = 16) -> None:
        self.target = target
        self.size = size
        self.max_batch = max_batch
        self.units = 0
        self.batches = 0  # commits, for metrics and benchmarks
        self.waiting = 0  # units submitted and not yet answered (load shedding reads it)

        def configure(raw: psycopg.Connection[Any]) -> None:
            raw.execute(f"SET search_path TO {target.schema}")

        self._pool = ConnectionPool(
            target.conninfo,
            min_size=1,
            max_size=size,
            open=False,
            reconnect_timeout=RECONNECT_ROUND_SECONDS,
            configure=configure,
            kwargs={"autocommit": True},
        )
        self._queue: queue.SimpleQueue[tuple[Unit, asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._next_shard = itertools.count(random.randrange(COUNTER_SHARDS))
        self._thread = threading.local()

    def start(self) -> None:
        self._pool.open(wait=True, timeout=30)
        for n in range(self.size):
            thread = threading.Thread(target=self._work, name=f"pushgate-pg-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._pool.close()

    async def run(self, unit: Callable[[PgConnection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((unit, future))
        self.waiting += 1
        try:
            return await future
        finally:
            self.waiting -= 1

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # another thread's stop: leave it for that thread
                    break
                batch.append(more)
            answer(batch, self._run_batch([unit for unit, _ in batch]))

    def _shard(self) -> int:
        shard: int | None = getattr(self._thread, "shard", None)
        if shard is None:
            shard = self._thread.shard = next(self._next_shard) % COUNTER_SHARDS
        return shard

    def _run_batch(self, units: list[Unit]) -> list[Result]:
        return [
            (value, None if exc is None else terse(exc))
            for value, exc in batch_or_each(self._transaction, units)
        ]

    def run_sync(self, unit: Callable[[PgConnection], T]) -> T:
        """One unit in a transaction of its own, on the calling thread."""
        try:
            value: T = self._transaction([unit])[0]
        except Exception as exc:
            terse(exc)
            raise
        return value

    def _transaction(self, units: list[Unit]) -> list[Any]:
        shard = self._shard()
        for attempt in range(RETRIES):
            with self._pool.connection(timeout=CONNECTION_WAIT_SECONDS) as raw:
                try:
                    conn = PgConnection(raw, shard)
                    with raw.transaction(), deferring(conn):
                        values = [unit(conn) for unit in units]
                except RETRYABLE as exc:
                    if attempt == RETRIES - 1:
                        raise
                    log.debug("retrying a transaction after %s", type(exc).__name__)
                else:
                    self.units += len(units)
                    self.batches += 1
                    return values
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")
