"""The embedded backend's files: the SQLite database in the data dir."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pushgate.store.executor import InlineExecutor, SqliteExecutor, connect
from pushgate.store.sqlite_schema import create_schema

DB_FILENAME = "pushgate.sqlite3"


def database_path(data_dir: Path) -> Path:
    return data_dir / DB_FILENAME


def open_sync(data_dir: Path) -> sqlite3.Connection:
    """A direct connection (CLI, emulators), with the schema in place."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect(database_path(data_dir))
    create_schema(conn)
    return conn


def executor(data_dir: Path, synchronous: str = "NORMAL") -> InlineExecutor | SqliteExecutor:
    """NORMAL (the default) commits on the event loop; FULL waits for fsyncs on a thread."""
    open_sync(data_dir).close()
    kind = InlineExecutor if synchronous.upper() in ("NORMAL", "OFF") else SqliteExecutor
    return kind(database_path(data_dir), synchronous)
