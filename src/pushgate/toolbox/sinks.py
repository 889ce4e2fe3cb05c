"""Where imported rows go: the store on the data dir (or PUSHGATE_DATABASE_URL), one
transaction per batch with its checkpoint; or a server's user and SDK endpoints."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from pushgate.store import bulk_import, profiles
from pushgate.store import partners as partner_ops
from pushgate.store.backend import ClosableDb
from pushgate.store.db import begin_write
from pushgate.targeting.users import MAX_USERS
from pushgate.toolbox import checkpoint as cp
from pushgate.toolbox.checkpoint import Checkpoint
from pushgate.toolbox.reader import Row
from pushgate.toolbox.rows import Checked, Reason

if TYPE_CHECKING:
    from pushgate.client import PushgateClient

RETRIES = 8  # of a batch that met a concurrent writer (a server sharing the database)


class SinkError(Exception):
    """The import cannot go on as asked (nothing of the batch at hand is checkpointed)."""


@dataclass(frozen=True, slots=True)
class ValidRow:
    row: Row
    checked: Checked


@dataclass(slots=True)
class Stored:
    """What one batch did."""

    imported: int = 0
    updated: int = 0
    stored: int = 0
    devices: int = 0
    failed: list[tuple[Row, Reason]] = field(default_factory=list)


# Called inside the batch's transaction with its result; returns the checkpoint to commit.
Finish = Callable[[Stored], Checkpoint]


class Sink(Protocol):
    def load(self) -> Checkpoint | None: ...

    def commit(self, rows: Sequence[ValidRow], now: float, finish: Finish) -> Checkpoint: ...

    def close(self) -> None: ...


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    try:
        from pushgate.store.postgres import RETRYABLE
    except ImportError:  # psycopg is an optional dependency
        return False
    return isinstance(exc, RETRYABLE)


def _error_text(exc: BaseException) -> str:
    from_pg = getattr(getattr(exc, "diag", None), "message_primary", None)
    return f"{type(exc).__name__}: {from_pg or exc}"


class DirectSink:
    """The store's own operations on a direct connection, one transaction per batch that also
    holds the checkpoint. New users that share nothing with the rest of the batch are stored
    set-based (store/bulk_import.py), the other rows one by one as the endpoints store them
    (`profiles.upsert_user`, `profiles.record_session`), in file order. `bulk=False` stores
    every row one by one (the reference the set-based path is tested against)."""

    def __init__(self, conn: ClosableDb, partner_id: int, path: Path, bulk: bool = True) -> None:
        self.conn = conn
        self.partner_id = partner_id
        self.key = cp.meta_key(partner_id, path)
        self.bulk = bulk

    def load(self) -> Checkpoint | None:
        found = partner_ops.get_meta(self.conn, self.key)
        return None if found is None else cp.decode(found)

    def close(self) -> None:
        self.conn.close()

    def commit(self, rows: Sequence[ValidRow], now: float, finish: Finish) -> Checkpoint:
        careful = False  # one savepoint per row, to find rows the database refuses
        attempt = 0
        while True:
            try:
                begin_write(self.conn)  # SQLite: waits up to busy_timeout for the write lock
                stored = self._apply(rows, now, careful)
                checkpoint = finish(stored)
                partner_ops.set_meta(self.conn, self.key, cp.encode(checkpoint).decode())
                self.conn.execute("COMMIT")
                return checkpoint
            except BaseException as exc:
                self._rollback()
                if not isinstance(exc, Exception):
                    raise  # KeyboardInterrupt: the batch is undone, the checkpoint stands
                if _retryable(exc) and attempt < RETRIES:
                    attempt += 1
                    time.sleep(random.uniform(0, 0.01 * 2**attempt))
                    continue
                if careful:
                    raise
                careful = True

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):  # no transaction left to roll back
            self.conn.execute("ROLLBACK")

    def _apply(self, rows: Sequence[ValidRow], now: float, careful: bool) -> Stored:
        # Profiles created by this batch have ids above every id before it: that tells
        # new users from updated ones without a lookup per row.
        (before,) = self.conn.execute("SELECT COALESCE(max(id), 0) FROM profiles").fetchone()
        batch = _Applied(before)
        new = self._new_users(rows, careful)
        run: list[ValidRow] = []  # new users since the last row stored alone
        for valid, is_new in zip(rows, new, strict=True):
            if is_new:
                run.append(valid)
                continue
            # Rows go in file order: ids rise as they would row by row, and a later row's
            # lookups see what an earlier one stored.
            self._insert_new(run, now, batch)
            run = []
            self._store_row(valid, now, careful, batch)
        self._insert_new(run, now, batch)
        return batch.stored

    def _new_users(self, rows: Sequence[ValidRow], careful: bool) -> list[bool]:
        """Which rows go set-based: none once the batch is applied carefully (a batch
        that failed is rare, and the per-row path alone tells which row the database refuses)."""
        if careful or not self.bulk:
            return [False] * len(rows)
        return bulk_import.select_new(self.conn, self.partner_id, [_entry(v) for v in rows])

    def _insert_new(self, run: Sequence[ValidRow], now: float, batch: _Applied) -> None:
        ids = bulk_import.insert_new(self.conn, self.partner_id, [_entry(v) for v in run], now)
        batch.created.update(ids)
        batch.stored.imported += len(run)
        batch.stored.devices += sum(len(v.checked.sessions) for v in run)

    def _store_row(self, valid: ValidRow, now: float, careful: bool, batch: _Applied) -> None:
        conn, partner_id, checked, stored = self.conn, self.partner_id, valid.checked, batch.stored
        if careful:
            conn.execute("SAVEPOINT import_row")
        try:
            touched: list[int] = []
            if checked.user is not None:
                touched.append(profiles.upsert_user(conn, partner_id, checked.user, now))
            for session in checked.sessions:
                touched.append(profiles.record_session(conn, partner_id, session, now))
        except Exception as exc:
            if not careful or _retryable(exc):
                raise
            conn.execute("ROLLBACK TO SAVEPOINT import_row")
            conn.execute("RELEASE SAVEPOINT import_row")
            stored.failed.append((valid.row, Reason("store", _error_text(exc))))
            return
        if careful:
            conn.execute("RELEASE SAVEPOINT import_row")
        new = {pid for pid in touched if pid > batch.before} - batch.created
        batch.created |= new
        if new:
            stored.imported += 1
        else:
            stored.updated += 1
        stored.devices += len(checked.sessions)


@dataclass(slots=True)
class _Applied:
    """A batch being applied: what it stored, and the profiles it created."""

    before: int  # the highest profile id before the batch
    created: set[int] = field(default_factory=set)
    stored: Stored = field(default_factory=Stored)


def _entry(valid: ValidRow) -> bulk_import.Entry:
    return bulk_import.Entry(valid.checked.user, valid.checked.sessions)


class HttpSink:
    """A running server's `/api/user/v1/upsert` (1,000 users per request) and
    `/api/sdk/v1/session` (one request per device). The state file is the checkpoint."""

    def __init__(self, client: PushgateClient, state: Path) -> None:
        self.client = client
        self.state = state

    def load(self) -> Checkpoint | None:
        return cp.read_file(self.state)

    def close(self) -> None:
        self.client.close()

    def commit(self, rows: Sequence[ValidRow], now: float, finish: Finish) -> Checkpoint:
        from pushgate.client import InvalidSession
        from pushgate.wire.sdk import Device
        from pushgate.wire.users import UserRecord

        if not self.client.endpoints.credentials.sdk_key and any(
            v.checked.session_bodies for v in rows
        ):
            raise SinkError("rows with devices need the partner's --sdk-key with --url")
        stored = Stored()
        failed: dict[int, Reason] = {}
        upserts: list[tuple[ValidRow, UserRecord]] = []
        for valid in rows:
            if valid.checked.record is None:
                continue
            try:
                upserts.append((valid, msgspec.convert(valid.checked.record, UserRecord)))
            except msgspec.ValidationError as exc:
                failed[valid.row.number] = Reason("record", str(exc))
        for start in range(0, len(upserts), MAX_USERS):
            chunk = upserts[start : start + MAX_USERS]
            answer = self.client.upsert([record for _, record in chunk])
            for rule, messages in answer.data.fail.errors.items():
                _, index, rest = rule.split(".", 2)
                failed.setdefault(chunk[int(index)][0].row.number, Reason(rest, messages[0]))
        for valid in rows:
            if valid.row.number in failed:
                continue
            for body in valid.checked.session_bodies:
                try:
                    self.client.session(
                        msgspec.convert(body["device"], Device),
                        identifiers=body.get("identifiers"),
                        attributes=body.get("attributes"),
                        insider_id=body.get("insider_id"),
                    )
                except (InvalidSession, msgspec.ValidationError) as exc:
                    failed[valid.row.number] = Reason("device", str(exc))
                    break
                stored.devices += 1
        stored.failed = [(v.row, failed[v.row.number]) for v in rows if v.row.number in failed]
        stored.stored = len(rows) - len(stored.failed)
        return finish(stored)
