"""Writes deferred to the end of a transaction (store/db.py `deferring`): counts are written
once, summed, and new jobs together, at its end; none of a unit that fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pushgate.jobs import NewJob
from pushgate.queue import table as job_table
from pushgate.store import campaign_stats
from pushgate.store.db import deferring
from pushgate.store.executor import run_batch
from tests.support.stats_builders import PARTNER, open_db


def counters(conn: sqlite3.Connection) -> list[tuple[int, str, int]]:
    return conn.execute(
        "SELECT camp_id, name, count FROM campaign_stats WHERE partner_id = ? ORDER BY name",
        (PARTNER,),
    ).fetchall()


def test_counts_inside_a_batch_are_summed_into_one_row_per_counter(tmp_path: Path) -> None:
    conn = open_db(tmp_path)

    def unit(c: sqlite3.Connection) -> None:
        campaign_stats.add_counts(c, PARTNER, {(7, "requested"): 1, (7, "queued:ios"): 1}, 100)
        assert counters(c) == []  # nothing written before the transaction's end

    assert run_batch(conn, [unit, unit, unit]) == [(None, None)] * 3
    assert counters(conn) == [(7, "queued:ios", 3), (7, "requested", 3)]


def test_a_failed_unit_leaves_only_the_others_counts(tmp_path: Path) -> None:
    conn = open_db(tmp_path)

    def good(c: sqlite3.Connection) -> None:
        campaign_stats.add_counts(c, PARTNER, {(7, "requested"): 1}, 100)

    def bad(c: sqlite3.Connection) -> None:
        campaign_stats.add_counts(c, PARTNER, {(7, "requested"): 5}, 100)
        raise RuntimeError("this unit fails after counting")

    results = run_batch(conn, [good, bad, good])
    assert [exc is None for _, exc in results] == [True, False, True]
    assert counters(conn) == [(7, "requested", 2)]


def test_counts_outside_a_transaction_block_are_written_at_once(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    campaign_stats.add_counts(conn, PARTNER, {(7, "requested"): 2}, 100)
    assert counters(conn) == [(7, "requested", 2)]


def test_a_block_that_raises_writes_nothing(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    with pytest.raises(RuntimeError), deferring(conn):
        campaign_stats.add_counts(conn, PARTNER, {(7, "requested"): 2}, 100)
        job_table.enqueue(conn, [job("t")], 100.0)
        raise RuntimeError
    assert counters(conn) == []
    assert tokens(conn) == []


def job(token: str) -> NewJob:
    return NewJob(PARTNER, 7, 1, 1, "ios", token, "production", b"{}", "alert", 10, 200.0)


def tokens(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT token FROM jobs ORDER BY id").fetchall()]


def test_the_jobs_of_a_batch_are_written_at_its_end_in_the_units_order(tmp_path: Path) -> None:
    conn = open_db(tmp_path)

    def unit(token: str) -> object:
        def queue(c: sqlite3.Connection) -> None:
            job_table.enqueue(c, [job(token), job(token + "'")], 100.0)
            assert tokens(c) == []  # nothing written before the transaction's end

        return queue

    assert run_batch(conn, [unit("a"), unit("b")]) == [(None, None)] * 2
    assert tokens(conn) == ["a", "a'", "b", "b'"]


def test_a_failed_unit_leaves_only_the_others_jobs(tmp_path: Path) -> None:
    conn = open_db(tmp_path)

    def good(c: sqlite3.Connection) -> None:
        job_table.enqueue(c, [job("good")], 100.0)

    def bad(c: sqlite3.Connection) -> None:
        job_table.enqueue(c, [job("bad")], 100.0)
        raise RuntimeError("this unit fails after queueing")

    results = run_batch(conn, [good, bad, good])
    assert [exc is None for _, exc in results] == [True, False, True]
    assert tokens(conn) == ["good", "good"]


def test_jobs_outside_a_transaction_block_are_written_at_once(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    job_table.enqueue(conn, [job("now")], 100.0)
    assert tokens(conn) == ["now"]
