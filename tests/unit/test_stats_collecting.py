"""Counts made during a transaction are written once, summed, at its end; none if it fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pushgate.store import stats
from pushgate.store.executor import run_batch
from tests.unit.statslib import PARTNER, open_db


def counters(conn: sqlite3.Connection) -> list[tuple[int, str, int]]:
    return conn.execute(
        "SELECT camp_id, name, count FROM campaign_stats WHERE partner_id = ? ORDER BY name",
        (PARTNER,),
    ).fetchall()


def test_counts_inside_a_batch_are_summed_into_one_row_per_counter(tmp_path: Path) -> None:
    conn = open_db(tmp_path)

    def unit(c: sqlite3.Connection) -> None:
        stats.add_counts(c, PARTNER, {(7, "requested"): 1, (7, "queued:ios"): 1}, 100)
        assert counters(c) == []  # nothing written before the transaction's end

    assert run_batch(conn, [unit, unit, unit]) == [(None, None)] * 3
    assert counters(conn) == [(7, "queued:ios", 3), (7, "requested", 3)]


def test_a_failed_unit_leaves_only_the_others_counts(tmp_path: Path) -> None:
    conn = open_db(tmp_path)

    def good(c: sqlite3.Connection) -> None:
        stats.add_counts(c, PARTNER, {(7, "requested"): 1}, 100)

    def bad(c: sqlite3.Connection) -> None:
        stats.add_counts(c, PARTNER, {(7, "requested"): 5}, 100)
        raise RuntimeError("this unit fails after counting")

    results = run_batch(conn, [good, bad, good])
    assert [exc is None for _, exc in results] == [True, False, True]
    assert counters(conn) == [(7, "requested", 2)]


def test_counts_outside_a_transaction_block_are_written_at_once(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    stats.add_counts(conn, PARTNER, {(7, "requested"): 2}, 100)
    assert counters(conn) == [(7, "requested", 2)]


def test_a_block_that_raises_writes_nothing(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    with pytest.raises(RuntimeError), stats.collecting(conn):
        stats.add_counts(conn, PARTNER, {(7, "requested"): 2}, 100)
        raise RuntimeError
    assert counters(conn) == []
