"""Choosing the backend: SQLite in the data dir by default, PostgreSQL when a database URL is
set (`PUSHGATE_DATABASE_URL=postgresql://...`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pushgate.config import usable_data_dir
from pushgate.crypto import box_for
from pushgate.store import sqlite
from pushgate.store.db import Db, Executor
from pushgate.store.store import Store

if TYPE_CHECKING:
    pass


class ClosableDb(Db, Protocol):
    def close(self) -> None: ...


def open_store(
    data_dir: Path,
    database_url: str | None = None,
    synchronous: str = "NORMAL",
    count_stats: bool = True,
    pool_size: int = 8,
    checkpoints: bool = True,
) -> Store:
    if database_url:
        from pushgate.store import pg_schema, postgres

        target = postgres.parse_url(database_url)
        pg_schema.ensure_schema(target)
        usable_data_dir(data_dir)  # the sealing key may live there
        executor: Executor = postgres.PgExecutor(target, pool_size)
    else:
        executor = sqlite.executor(data_dir, synchronous, checkpoints)
    return Store(executor, box_for(data_dir), count_stats)


def connect_sync(data_dir: Path, database_url: str | None = None) -> ClosableDb:
    """A direct connection with the schema in place, in autocommit mode: transactions are
    explicit (`db.begin_write`)."""
    if database_url:
        from pushgate.store import pg_schema, postgres

        target = postgres.parse_url(database_url)
        pg_schema.ensure_schema(target)
        return postgres.connect(target)
    return sqlite.open_sync(data_dir)


def reader_connector(
    data_dir: Path, database_url: str | None, timeout_seconds: float
) -> Callable[[], ClosableDb]:
    """Connections for a reader beside the store (queue/backlog.py: the /metrics gauges): to the
    same database, with short timeouts, and no schema work (the store did that)."""
    if database_url:
        import psycopg.conninfo

        from pushgate.store import postgres

        target = postgres.parse_url(database_url)
        conninfo = psycopg.conninfo.make_conninfo(target.conninfo, connect_timeout=2)
        bounded = dataclasses.replace(target, conninfo=conninfo)

        def connect_pg() -> ClosableDb:
            conn = postgres.connect(bounded)
            conn.execute(f"SET statement_timeout = {int(timeout_seconds * 1000)}")
            return conn

        return connect_pg

    from pushgate.store.executor import connect

    return lambda: connect(sqlite.database_path(data_dir))
