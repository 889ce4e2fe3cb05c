"""The PostgreSQL executor: group commit like the SQLite executors (units waiting together run in
one transaction), a failing unit fails alone, answered means committed, and conflicts between
concurrent writers are retried."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from pushgate.store.postgres import PgConnection, PgExecutor, PgTarget, connect, parse_url
from tests.support.server import new_backend_env


class Boom(Exception):
    pass


@pytest.fixture
def target() -> PgTarget:
    target = parse_url(new_backend_env("postgres")["PUSHGATE_DATABASE_URL"])
    with psycopg.connect(target.conninfo, autocommit=True) as raw:
        raw.execute(f"CREATE SCHEMA {target.schema}")  # type: ignore[arg-type]
        raw.execute(f"CREATE TABLE {target.schema}.t (x BIGINT NOT NULL UNIQUE)")  # type: ignore[arg-type]
    return target


@pytest.fixture
async def executor(target: PgTarget) -> AsyncIterator[PgExecutor]:
    ex = PgExecutor(target, size=1)  # one thread: what queues behind it forms one batch
    ex.start()
    yield ex
    ex.close()


def insert(x: int) -> Callable[[PgConnection], int]:
    def unit(conn: PgConnection) -> int:
        conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        return x * 10

    return unit


def insert_then_fail(x: int) -> Callable[[PgConnection], Any]:
    def unit(conn: PgConnection) -> Any:
        conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        raise Boom(f"unit {x} failed")

    return unit


def stored(target: PgTarget) -> list[int]:
    """What another connection sees: only committed data."""
    with connect(target) as conn:
        return [row[0] for row in conn.execute("SELECT x FROM t ORDER BY x")]


async def run_in_one_batch(
    executor: PgExecutor, units: list[Callable[[PgConnection], Any]], commits: int = 1
) -> list[Any]:
    """Hold the executor's only thread busy while the units queue up behind it; `commits`:
    how many transactions commit for them (one, unless the batch fails and its units run
    again one by one)."""
    started, release = threading.Event(), threading.Event()

    def hold(conn: PgConnection) -> None:
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
    assert executor.batches == batches_before + 1 + commits  # the holder's, then the units'
    return results


async def test_units_waiting_together_commit_in_one_transaction(
    executor: PgExecutor, target: PgTarget
) -> None:
    assert await run_in_one_batch(executor, [insert(x) for x in range(1, 6)]) == [
        10,
        20,
        30,
        40,
        50,
    ]
    assert stored(target) == [1, 2, 3, 4, 5]


async def test_a_failing_unit_in_a_batch_rolls_back_alone(
    executor: PgExecutor, target: PgTarget
) -> None:
    results = await run_in_one_batch(
        executor,
        [insert(1), insert_then_fail(2), insert(3), insert_then_fail(4), insert(5)],
        commits=3,
    )
    assert [r if isinstance(r, int) else type(r) for r in results] == [10, Boom, 30, Boom, 50]
    assert stored(target) == [1, 3, 5]


async def test_a_constraint_violation_in_a_batch_fails_only_that_unit(
    executor: PgExecutor, target: PgTarget
) -> None:
    results = await run_in_one_batch(executor, [insert(1), insert(1), insert(2)], commits=2)
    assert results[0] == 10
    assert isinstance(results[1], psycopg.errors.UniqueViolation)
    assert results[2] == 20
    assert stored(target) == [1, 2]


async def test_a_unit_sees_earlier_units_of_its_batch(executor: PgExecutor) -> None:
    def count(conn: PgConnection) -> int:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

    results = await run_in_one_batch(executor, [insert(1), insert(2), count])
    assert results[2] == 2


async def test_many_concurrent_units_on_several_threads_all_commit(target: PgTarget) -> None:
    ex = PgExecutor(target, size=4)
    ex.start()
    try:
        results = await asyncio.gather(*(ex.run(insert(x)) for x in range(300)))
    finally:
        ex.close()
    assert results == [x * 10 for x in range(300)]
    assert stored(target) == list(range(300))
    assert ex.units == 300
    assert ex.batches < 300  # group commit happened


async def test_close_finishes_queued_units(target: PgTarget) -> None:
    ex = PgExecutor(target, size=2)
    ex.start()
    futures = [asyncio.ensure_future(ex.run(insert(x))) for x in (8, 9)]
    await asyncio.sleep(0)
    await asyncio.get_running_loop().run_in_executor(None, ex.close)
    assert await asyncio.gather(*futures) == [80, 90]
    assert stored(target) == [8, 9]
