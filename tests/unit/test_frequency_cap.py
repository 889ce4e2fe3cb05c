"""The global frequency cap: N pushes per user per window, windows aligned to UTC days."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pushgate.limits import frequency_cap
from pushgate.store.executor import connect
from pushgate.store.sqlite_schema import create_schema

DAY = 86_400
NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 11, 27, tzinfo=UTC).timestamp()
NEXT_MIDNIGHT = datetime(2026, 11, 28, tzinfo=UTC).timestamp()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "cap.db")
    create_schema(c)
    yield c
    c.close()


def counter(conn: sqlite3.Connection, partner: int, profile: int) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT window_start, count FROM gfc_counters WHERE partner_id = ? AND profile_id = ?",
        (partner, profile),
    ).fetchone()
    return None if row is None else (row[0], row[1])


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 27, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 30, tzinfo=UTC),
        datetime(2026, 11, 27, 23, 59, 59, 999_000, tzinfo=UTC),
    ],
)
def test_one_day_window_starts_at_utc_midnight(moment: datetime) -> None:
    assert frequency_cap.window_start(moment.timestamp(), DAY) == MIDNIGHT


def test_next_utc_day_is_a_new_window() -> None:
    assert frequency_cap.window_start(NEXT_MIDNIGHT, DAY) == NEXT_MIDNIGHT


def test_hour_window_starts_on_the_hour() -> None:
    now = datetime(2026, 11, 27, 13, 45, 10, tzinfo=UTC).timestamp()
    start = datetime(2026, 11, 27, 13, 0, tzinfo=UTC).timestamp()
    assert frequency_cap.window_start(now, 3600) == start


def test_take_allows_up_to_the_limit_then_refuses(conn: sqlite3.Connection) -> None:
    results = [frequency_cap.take(conn, 1, 10, 3, DAY, NOON + i) for i in range(5)]
    assert results == [True, True, True, False, False]


def test_refused_take_counts_nothing(conn: sqlite3.Connection) -> None:
    for _ in range(4):
        frequency_cap.take(conn, 1, 10, 2, DAY, NOON)
    assert counter(conn, 1, 10) == (MIDNIGHT, 2)


def test_each_allowed_take_counts_one(conn: sqlite3.Connection) -> None:
    frequency_cap.take(conn, 1, 10, 5, DAY, NOON)
    assert counter(conn, 1, 10) == (MIDNIGHT, 1)
    frequency_cap.take(conn, 1, 10, 5, DAY, NOON + 60)
    assert counter(conn, 1, 10) == (MIDNIGHT, 2)


def test_new_window_resets_the_count(conn: sqlite3.Connection) -> None:
    assert frequency_cap.take(conn, 1, 10, 1, DAY, NOON)
    assert not frequency_cap.take(conn, 1, 10, 1, DAY, NEXT_MIDNIGHT - 1)
    assert frequency_cap.take(conn, 1, 10, 1, DAY, NEXT_MIDNIGHT)
    assert counter(conn, 1, 10) == (NEXT_MIDNIGHT, 1)


def test_users_are_capped_independently(conn: sqlite3.Connection) -> None:
    assert frequency_cap.take(conn, 1, 10, 1, DAY, NOON)
    assert not frequency_cap.take(conn, 1, 10, 1, DAY, NOON)
    assert frequency_cap.take(conn, 1, 11, 1, DAY, NOON)


def test_partners_are_capped_independently(conn: sqlite3.Connection) -> None:
    assert frequency_cap.take(conn, 1, 10, 1, DAY, NOON)
    assert frequency_cap.take(conn, 2, 10, 1, DAY, NOON)
    assert not frequency_cap.take(conn, 1, 10, 1, DAY, NOON)


def test_counts_persist_in_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    first = connect(path)
    create_schema(first)
    assert frequency_cap.take(first, 1, 10, 1, DAY, NOON)
    first.close()
    second = connect(path)
    try:
        assert not frequency_cap.take(second, 1, 10, 1, DAY, NOON + 5)
    finally:
        second.close()


def test_take_rolled_back_with_its_transaction_counts_nothing(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    assert frequency_cap.take(conn, 1, 10, 1, DAY, NOON)
    conn.execute("ROLLBACK")
    assert counter(conn, 1, 10) is None
    assert frequency_cap.take(conn, 1, 10, 1, DAY, NOON)
