"""What the store's SQL runs on: a DB-API connection with `?` placeholders.

Every store module is written against this small protocol in the SQL that SQLite and PostgreSQL
share (`ON CONFLICT`, `RETURNING`, window functions), so one implementation of each operation
serves both backends. `sqlite3.Connection` is one; `postgres.PgConnection` adapts psycopg to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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
    """Which of a counter's rows this connection adds to (store/stats.py): PostgreSQL's pooled
    connections each own one, so concurrent transactions never wait on a counter's row lock;
    SQLite has one writer, hence one row."""
    return int(getattr(conn, "shard", 0))


def begin_write(conn: Db) -> None:
    """Start a transaction that holds the write lock from its first statement (SQLite), or a
    plain one (PostgreSQL locks rows as it goes)."""
    conn.execute("BEGIN" if is_postgres(conn) else "BEGIN IMMEDIATE")


class Executor(Protocol):
    """Runs units of work (functions of a connection) in transactions: store/executor.py for
    SQLite, store/postgres.py for PostgreSQL."""

    units: int
    batches: int
    waiting: int  # units submitted and not yet answered

    def start(self) -> None: ...

    def close(self) -> None: ...

    async def run(self, unit: Callable[[Any], T]) -> T: ...
