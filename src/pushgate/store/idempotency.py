"""Idempotency keys (contract.md, "Idempotent requests"): a request's key, its body's hash and
its answer, per partner.

A request with a key first claims it (`claim`, a transaction of its own, so that every process
on the database sees a request in flight), then runs; its 2xx answer is written by the unit of
work that holds its changes (`remember`), so a crash leaves either both or neither. A claim
whose request died before committing is taken over once its lease runs out; a request that ends
without changing anything (a 4xx) gives its claim up (`release`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pushgate.store.db import Db

LEASE_SECONDS = 60.0  # longer than any request takes; a dead request's key is free after it

Verdict = Literal["run", "replay", "reused", "in_use"]


@dataclass(frozen=True, slots=True)
class Key:
    """A request's idempotency key, claimed, and how long its answer is kept."""

    value: str
    keep_seconds: float


@dataclass(frozen=True, slots=True)
class Claimed:
    verdict: Verdict
    status: int = 0  # "replay": the stored answer
    body: bytes = b""


def claim(
    conn: Db, partner_id: int, key: str, body_hash: bytes, now: float, keep_seconds: float
) -> Claimed:
    row = conn.execute(
        "SELECT body_hash, status, body, locked_until, expires_at FROM idempotency_keys"
        " WHERE partner_id = ? AND key = ?",
        (partner_id, key),
    ).fetchone()
    if row is not None and row[4] <= now and row[1] is not None:
        conn.execute(
            "DELETE FROM idempotency_keys WHERE partner_id = ? AND key = ?", (partner_id, key)
        )
        row = None
    if row is None:
        conn.execute(
            "INSERT INTO idempotency_keys (partner_id, key, body_hash, status, body, locked_until,"
            " expires_at) VALUES (?, ?, ?, NULL, NULL, ?, ?)",
            (partner_id, key, body_hash, now + LEASE_SECONDS, now + keep_seconds),
        )
        return Claimed("run")
    stored_hash, status, body, locked_until = bytes(row[0]), row[1], row[2], row[3]
    if stored_hash != body_hash:
        return Claimed("reused")
    if status is not None:
        return Claimed("replay", int(status), bytes(body))
    if locked_until is not None and locked_until > now:
        return Claimed("in_use")
    conn.execute(
        "UPDATE idempotency_keys SET locked_until = ? WHERE partner_id = ? AND key = ?",
        (now + LEASE_SECONDS, partner_id, key),
    )
    return Claimed("run")


def remember(
    conn: Db,
    partner_id: int,
    key: str,
    status: int,
    body: bytes,
    now: float,
    keep_seconds: float,
) -> None:
    """The answer, in the transaction of the request's changes."""
    conn.execute(
        "UPDATE idempotency_keys SET status = ?, body = ?, locked_until = NULL, expires_at = ?"
        " WHERE partner_id = ? AND key = ?",
        (status, body, now + keep_seconds, partner_id, key),
    )


def release(conn: Db, partner_id: int, key: str) -> None:
    """The request ended without changing anything: its key may be used again."""
    conn.execute(
        "DELETE FROM idempotency_keys WHERE partner_id = ? AND key = ? AND status IS NULL",
        (partner_id, key),
    )


def purge(conn: Db, now: float, limit: int) -> int:
    """Forget up to `limit` keys past their time; returns how many."""
    return conn.execute(
        "DELETE FROM idempotency_keys WHERE (partner_id, key) IN (SELECT partner_id, key FROM"
        " idempotency_keys WHERE expires_at < ? AND status IS NOT NULL LIMIT ?)",
        (now, limit),
    ).rowcount
