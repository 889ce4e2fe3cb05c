"""The global frequency cap: N pushes per user per window (contract.md).

Windows are aligned to the epoch, so a one-day window is a calendar day in UTC.
The check and the increment are one conditional upsert: atomic under SQLite's
single writer and under PostgreSQL's row lock on the user's counter alike.
"""

from __future__ import annotations

from pushgate.store.db import Db


def window_start(now: float, window_seconds: int) -> int:
    return int(now // window_seconds) * window_seconds


def take(conn: Db, partner_id: int, profile_id: int, limit: int, window: int, now: float) -> bool:
    """Count one push against the user's cap; False (and nothing counted) when at the cap."""
    if limit <= 0:
        return False
    taken = conn.execute(
        "INSERT INTO gfc_counters (partner_id, profile_id, window_start, count) VALUES (?, ?, ?, 1)"
        " ON CONFLICT (partner_id, profile_id) DO UPDATE SET"
        " count = CASE WHEN gfc_counters.window_start = excluded.window_start"
        " THEN gfc_counters.count + 1 ELSE 1 END, window_start = excluded.window_start"
        " WHERE gfc_counters.window_start != excluded.window_start OR gfc_counters.count < ?"
        " RETURNING count",
        (partner_id, profile_id, window_start(now, window), limit),
    ).fetchone()
    return taken is not None
