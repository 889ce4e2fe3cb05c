"""The global frequency cap: N pushes per user per window (contract.md).

Windows are aligned to the epoch, so a one-day window is a calendar day in UTC.
The check and the increment happen in one statement sequence inside the
store's transaction, which the single writer makes atomic.
"""

from __future__ import annotations

import sqlite3


def window_start(now: float, window_seconds: int) -> int:
    return int(now // window_seconds) * window_seconds


def take(
    conn: sqlite3.Connection, partner_id: int, profile_id: int, limit: int, window: int, now: float
) -> bool:
    """Count one push against the user's cap; False (and nothing counted) when at the cap."""
    start = window_start(now, window)
    row = conn.execute(
        "SELECT window_start, count FROM gfc_counters WHERE partner_id = ? AND profile_id = ?",
        (partner_id, profile_id),
    ).fetchone()
    used = row[1] if row is not None and row[0] == start else 0
    if used >= limit:
        return False
    conn.execute(
        "INSERT INTO gfc_counters (partner_id, profile_id, window_start, count) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (partner_id, profile_id) DO UPDATE SET window_start = excluded.window_start,"
        " count = excluded.count",
        (partner_id, profile_id, start, used + 1),
    )
    return True
