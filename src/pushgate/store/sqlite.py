"""The embedded backend's files: the SQLite database in the data dir."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pushgate.config import ENV_PREFIX, ConfigError, usable_data_dir
from pushgate.store.executor import InlineExecutor, SqliteExecutor, connect
from pushgate.store.sqlite_schema import create_schema

DB_FILENAME = "pushgate.sqlite3"


def database_path(data_dir: Path) -> Path:
    return data_dir / DB_FILENAME


def open_sync(data_dir: Path) -> sqlite3.Connection:
    """A direct connection (CLI, emulators), with the schema in place."""
    usable_data_dir(data_dir)
    path = database_path(data_dir)
    try:
        conn = connect(path)
    except sqlite3.Error as error:  # not a database, not readable
        raise _unusable(path, error) from None
    try:
        create_schema(conn)
    except sqlite3.DatabaseError as error:
        conn.close()
        raise _unusable(path, error) from None
    return conn


def _unusable(path: Path, error: sqlite3.Error) -> ConfigError:
    return ConfigError(
        f"the database {str(path)!r} cannot be used: {error} (--data-dir or {ENV_PREFIX}DATA_DIR)"
    )


def executor(
    data_dir: Path, synchronous: str = "NORMAL", checkpoints: bool = True
) -> InlineExecutor | SqliteExecutor:
    """NORMAL (the default) commits on the event loop; FULL waits for fsyncs on a thread.
    `checkpoints`: False where another process checkpoints the log (FULL's writer thread
    checkpoints as it commits, either way)."""
    open_sync(data_dir).close()
    if synchronous.upper() in ("NORMAL", "OFF"):
        return InlineExecutor(database_path(data_dir), synchronous, checkpoints)
    return SqliteExecutor(database_path(data_dir), synchronous)
