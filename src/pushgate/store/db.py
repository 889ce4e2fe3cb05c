"""What the store's SQL runs on: a DB-API connection with `?` placeholders.

Every store module is written against this small protocol in the SQL that SQLite and PostgreSQL
share (`ON CONFLICT`, `RETURNING`, window functions), so one implementation of each operation
serves both backends. `sqlite3.Connection` is one; `postgres.PgConnection` adapts psycopg to it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


def is_postgres(conn: Db) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgres"


def counter_shard(conn: Db) -> int:
    """Which of a counter's rows this connection adds to (store/campaign_stats.py): PostgreSQL's pooled
    connections each own one, so concurrent transactions never wait on a counter's row lock;
    SQLite has one writer, hence one row."""
    return int(getattr(conn, "shard", 0))


# psycopg parses a statement with more bound variables than this (or a text longer than 4,096
# characters) anew at every execution (MAX_CACHED_STATEMENT_PARAMS in its _queries.py), a few
# µs per variable.
PG_CACHED_PARAMS = 50


def insert_rows(conn: Db, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
    """`head VALUES (...), ... tail` for `rows`, in their order, by executemany (psycopg
    pipelines the statements: one round trip). On PostgreSQL each statement carries as many
    rows as stay within psycopg's cache of parsed statements (a statement with a variable for
    every value would be parsed anew each time, which costs more than the round trips it
    saves); on SQLite one row each, which its executemany runs without parsing again."""
    if not rows:
        return
    width = len(rows[0])
    per = max(1, PG_CACHED_PARAMS // width) if is_postgres(conn) else 1
    whole = len(rows) - len(rows) % per
    if whole:
        conn.executemany(
            values_sql(head, width, per, tail),
            [tuple(chain.from_iterable(rows[n : n + per])) for n in range(0, whole, per)],
        )
    if rest := rows[whole:]:
        conn.execute(values_sql(head, width, len(rest), tail), list(chain.from_iterable(rest)))


@functools.lru_cache(maxsize=256)
def values_sql(head: str, width: int, rows: int, tail: str = "") -> str:
    """`head VALUES (?, ...), ... tail`: `rows` rows of `width` variables."""
    one = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([one] * rows)}{tail}"


def begin_write(conn: Db) -> None:
    """Start a transaction that holds the write lock from its first statement (SQLite), or a
    plain one (PostgreSQL locks rows as it goes)."""
    conn.execute("BEGIN" if is_postgres(conn) else "BEGIN IMMEDIATE")


# Writes that units hand to the end of their transaction, per connection inside `deferring`:
# each kind is collected into one value (made by its `new`) and written once by its `flush`, so
# a batch of units costs one round trip per kind instead of one per unit (campaign counters
# summed per counter, store/campaign_stats.py; new jobs, queue/table.py).
Flush = Callable[[Any, Any], None]  # (connection, the collected value)
_deferred: dict[int, dict[Flush, Any]] = {}


@contextlib.contextmanager
def deferring(conn: Db) -> Iterator[None]:
    """Hold the deferred writes of this block (the executors wrap each transaction's units in
    it) and write them at its end, before the caller commits; nothing is written if the block
    raises."""
    held: dict[Flush, Any] = {}
    _deferred[id(conn)] = held
    try:
        yield
    finally:
        del _deferred[id(conn)]
    for flush, value in held.items():
        flush(conn, value)


def deferred(conn: Db, flush: Flush, new: Callable[[], T]) -> T | None:
    """What this transaction has collected for `flush` so far (`new()` the first time), to add
    to; None outside `deferring`, where the caller writes at once."""
    held = _deferred.get(id(conn))
    if held is None:
        return None
    value: T | None = held.get(flush)
    if value is None:
        value = held[flush] = new()
    return value


class Executor(Protocol):
    """Runs units of work (functions of a connection) in transactions: store/executor.py for
    SQLite, store/postgres.py for PostgreSQL."""

    units: int
    batches: int
    waiting: int  # units submitted and not yet answered

    def start(self) -> None: ...

    def close(self) -> None: ...

    async def run(self, unit: Callable[[Any], T]) -> T: ...
