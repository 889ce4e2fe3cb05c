"""Dashboard sign-in sessions: only the hash of the cookie's token is stored."""

from __future__ import annotations

from pushgate.store import partners
from pushgate.store.db import Db
from pushgate.store.models import Partner


def create(conn: Db, token_hash: bytes, partner_id: int, now: float, ttl: float) -> None:
    conn.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now,))
    conn.execute(
        "INSERT INTO dashboard_sessions (token_hash, partner_id, created_at, expires_at)"
        " VALUES (?, ?, ?, ?)",
        (token_hash, partner_id, now, now + ttl),
    )


def partner_of(conn: Db, token_hash: bytes, now: float) -> Partner | None:
    """The signed-in partner, while the session lasts."""
    row = conn.execute(
        "SELECT p.name FROM dashboard_sessions s JOIN partners p ON p.id = s.partner_id"
        " WHERE s.token_hash = ? AND s.expires_at > ?",
        (token_hash, now),
    ).fetchone()
    return None if row is None else partners.partner_by_name(conn, str(row[0]))


def delete(conn: Db, token_hash: bytes) -> None:
    conn.execute("DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,))
