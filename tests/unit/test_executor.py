"""The store executors: group commit, a failing unit fails alone, answered means committed.

Every behaviour holds for both: the inline executor (units on the event loop) and the
writer-thread executor (used with synchronous=FULL).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pushgate.store.executor import InlineExecutor, SqliteExecutor

Executor = InlineExecutor | SqliteExecutor


class Boom(Exception):
    pass


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "exec.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE t (x INTEGER NOT NULL UNIQUE)")
    return path


@pytest.fixture(params=[InlineExecutor, SqliteExecutor])
async def executor(db_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    ex = request.param(db_path)
    ex.start()
    yield ex
    ex.close()


def insert(x: int) -> Callable[[sqlite3.Connection], int]:
    def unit(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        return x * 10

    return unit


def insert_then_fail(x: int) -> Callable[[sqlite3.Connection], Any]:
    def unit(conn: sqlite3.Connection) -> Any:
        conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        raise Boom(f"unit {x} failed")

    return unit


def stored(path: Path) -> list[int]:
    """What another connection sees: only committed data."""
    with sqlite3.connect(path) as c:
        return [row[0] for row in c.execute("SELECT x FROM t ORDER BY x")]


async def run_in_one_batch(
    executor: Executor, units: list[Callable[[sqlite3.Connection], Any]]
) -> list[Any]:
    """Units submitted together run as one batch: the inline executor takes everything
    submitted in one loop iteration; the writer thread is held busy while they queue up."""
    if isinstance(executor, InlineExecutor):
        before = executor.batches
        answers = await asyncio.gather(*(executor.run(u) for u in units), return_exceptions=True)
        assert executor.batches == before + 1
        return answers
    started, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(5)

    holder = asyncio.ensure_future(executor.run(hold))
    while not started.is_set():
        await asyncio.sleep(0.001)
    batches_before = executor.batches
    tasks = [asyncio.ensure_future(executor.run(u)) for u in units]
    await asyncio.sleep(0)  # every task puts its unit on the queue
    release.set()
    await holder
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert executor.batches == batches_before + 2  # the holder's batch, then one for all units
    return results


async def test_unit_result_is_delivered(executor: Executor) -> None:
    assert await executor.run(insert(4)) == 40


async def test_reads_return_their_rows(executor: Executor) -> None:
    await executor.run(insert(1))
    rows = await executor.run(lambda c: c.execute("SELECT x FROM t").fetchall())
    assert [tuple(r) for r in rows] == [(1,)]


async def test_data_is_visible_to_other_connections_once_the_unit_returns(
    executor: Executor, db_path: Path
) -> None:
    await executor.run(insert(7))
    assert stored(db_path) == [7]


async def test_failing_unit_raises_its_own_exception(executor: Executor) -> None:
    with pytest.raises(Boom, match="unit 3 failed"):
        await executor.run(insert_then_fail(3))


async def test_failing_unit_leaves_nothing_behind(executor: Executor, db_path: Path) -> None:
    with pytest.raises(Boom):
        await executor.run(insert_then_fail(3))
    assert stored(db_path) == []


async def test_executor_keeps_working_after_a_failing_unit(
    executor: Executor, db_path: Path
) -> None:
    with pytest.raises(Boom):
        await executor.run(insert_then_fail(1))
    assert await executor.run(insert(2)) == 20
    assert stored(db_path) == [2]


async def test_concurrent_units_are_committed_together(executor: Executor, db_path: Path) -> None:
    results = await run_in_one_batch(executor, [insert(x) for x in range(1, 6)])
    assert results == [10, 20, 30, 40, 50]
    assert stored(db_path) == [1, 2, 3, 4, 5]


async def test_failing_unit_in_a_batch_rolls_back_alone(executor: Executor, db_path: Path) -> None:
    results = await run_in_one_batch(
        executor, [insert(1), insert_then_fail(2), insert(3), insert_then_fail(4), insert(5)]
    )
    assert results[0] == 10
    assert isinstance(results[1], Boom)
    assert results[2] == 30
    assert isinstance(results[3], Boom)
    assert results[4] == 50
    assert stored(db_path) == [1, 3, 5]


async def test_constraint_violation_in_a_batch_fails_only_that_unit(
    executor: Executor, db_path: Path
) -> None:
    results = await run_in_one_batch(executor, [insert(1), insert(1), insert(2)])
    assert results[0] == 10
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert results[2] == 20
    assert stored(db_path) == [1, 2]


async def test_unit_sees_earlier_units_of_its_batch(executor: Executor) -> None:
    def count(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

    results = await run_in_one_batch(executor, [insert(1), insert(2), count])
    assert results[2] == 2


async def test_many_concurrent_units_all_commit(executor: Executor, db_path: Path) -> None:
    results = await asyncio.gather(*(executor.run(insert(x)) for x in range(200)))
    assert results == [x * 10 for x in range(200)]
    assert stored(db_path) == list(range(200))
    assert executor.units >= 200


@pytest.mark.parametrize("kind", [InlineExecutor, SqliteExecutor])
async def test_close_finishes_queued_units(db_path: Path, kind: type[Executor]) -> None:
    ex = kind(db_path)
    ex.start()
    future = asyncio.ensure_future(ex.run(insert(9)))
    await asyncio.sleep(0)
    ex.close()
    assert await future == 90
    assert stored(db_path) == [9]


@pytest.mark.parametrize("kind", [InlineExecutor, SqliteExecutor])
def test_start_raises_when_the_database_cannot_be_opened(
    tmp_path: Path, kind: type[Executor]
) -> None:
    ex = kind(tmp_path / "missing-dir" / "db.sqlite")
    with pytest.raises(sqlite3.OperationalError):
        ex.start()


async def test_inline_executor_checkpoints_the_wal_off_the_loop(db_path: Path) -> None:
    ex = InlineExecutor(db_path)
    ex.start()
    for i in range(200):
        await ex.run(insert(i))
    ex.close()  # the checkpointer truncates the WAL on the way out
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert len(stored(db_path)) == 200
