"""The delivery queue as a lease-based job table in the service's database (SQLite or PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pushgate.queue.base import DONE, LEASED, QUEUED, Job, NewJob
from pushgate.store.db import Db, Executor, is_postgres

_JOB_COLUMNS = (
    "id, partner_id, camp_id, profile_id, device_id, platform, token, environment, payload,"
    " push_type, priority, created_at, expires_at, attempts, variant_id"
)


def enqueue(conn: Db, jobs: Sequence[NewJob], now: float) -> None:
    """Insert jobs inside the caller's transaction."""
    conn.executemany(
        "INSERT INTO jobs (partner_id, camp_id, profile_id, device_id, platform, token,"
        " environment, payload, push_type, priority, created_at, expires_at, due_at, variant_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                j.partner_id,
                j.camp_id,
                j.profile_id,
                j.device_id,
                j.platform,
                j.token,
                j.environment,
                j.payload,
                j.push_type,
                j.priority,
                now,
                j.expires_at,
                now,
                j.variant_id,
            )
            for j in jobs
        ],
    )


def claim(conn: Db, worker: str, limit: int, lease_seconds: float, now: float) -> list[Job]:
    """Lease up to `limit` due jobs: queued ones whose time has come, and leased ones
    whose worker let the lease run out."""
    # Concurrent workers on PostgreSQL each skip the rows another is leasing right now; SQLite
    # has one writer at a time.
    skip_locked = " FOR UPDATE SKIP LOCKED" if is_postgres(conn) else ""
    rows = conn.execute(
        f"UPDATE jobs SET state = '{LEASED}', lease_owner = ?, due_at = ?, attempts = attempts + 1"
        " WHERE id IN (SELECT id FROM jobs WHERE state IN ('queued', 'leased') AND due_at <= ?"
        f" ORDER BY due_at LIMIT ?{skip_locked})"
        f" RETURNING {_JOB_COLUMNS}",
        (worker, now + lease_seconds, now, limit),
    ).fetchall()
    return sorted((Job(*row) for row in rows), key=lambda j: j.id)


def settle(
    conn: Db,
    job_id: int,
    worker: str,
    state: str,
    error: str | None,
    due_at: float | None,
    now: float,
) -> bool:
    """Move a leased job on, if this worker still holds its lease."""
    cursor = conn.execute(
        "UPDATE jobs SET state = ?, last_error = ?, due_at = COALESCE(?, due_at), lease_owner = NULL,"
        " finished_at = CASE WHEN ? IN ('queued') THEN NULL ELSE ? END"
        " WHERE id = ? AND state = 'leased' AND lease_owner = ?",
        (state, error, due_at, state, now, job_id, worker),
    )
    return cursor.rowcount == 1


def depth(conn: Db) -> int:
    return int(
        conn.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'leased')").fetchone()[0]
    )


class TableJobQueue:
    def __init__(self, executor: Executor) -> None:
        self._db = executor

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        now = time.time()
        return await self._db.run(lambda c: claim(c, worker, limit, lease_seconds, now))

    async def ack(self, job_id: int, worker: str) -> bool:
        return await self.finish(job_id, worker, DONE, None)

    async def retry(self, job_id: int, worker: str, at: float, error: str) -> bool:
        now = time.time()
        return await self._db.run(lambda c: settle(c, job_id, worker, QUEUED, error, at, now))

    async def finish(self, job_id: int, worker: str, state: str, error: str | None) -> bool:
        now = time.time()
        return await self._db.run(lambda c: settle(c, job_id, worker, state, error, None, now))

    async def depth(self) -> int:
        return await self._db.run(depth)
