"""The embedded delivery queue: a lease-based job table in a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushgate.jobs import DEAD, DONE, EXPIRED, FAILED, LEASED, QUEUED, NewJob
from pushgate.queue import table as jobs
from pushgate.store.executor import SqliteExecutor, connect
from pushgate.store.sqlite_schema import create_schema

NOW = 1_800_000_000.0
LEASE = 30.0


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "jobs.db")
    create_schema(c)
    yield c
    c.close()


def new_job(n: int = 1, platform: str = "ios") -> NewJob:
    return NewJob(
        partner_id=1,
        camp_id=10 + n,
        profile_id=100 + n,
        device_id=1000 + n,
        platform=platform,
        token=f"token-{n}",
        environment="production",
        payload=b'{"aps":{}}',
        push_type="alert",
        priority=10,
        expires_at=NOW + 3600,
    )


def state(conn: sqlite3.Connection, job_id: int) -> tuple[str, str | None, int, float, str | None]:
    row = conn.execute(
        "SELECT state, lease_owner, attempts, due_at, last_error FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    return row[0], row[1], row[2], row[3], row[4]


def test_enqueued_jobs_are_claimed_with_their_fields(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job(1), new_job(2, "android")], NOW)
    claimed = jobs.claim(conn, "w1", 10, LEASE, NOW)
    assert [(j.platform, j.token, j.camp_id, j.device_id) for j in claimed] == [
        ("ios", "token-1", 11, 1001),
        ("android", "token-2", 12, 1002),
    ]
    first = claimed[0]
    assert first.payload == b'{"aps":{}}'
    assert (first.push_type, first.priority, first.environment) == ("alert", 10, "production")
    assert (first.created_at, first.expires_at) == (NOW, NOW + 3600)
    assert first.attempts == 1


def test_claim_leases_the_job_to_the_worker(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job] = jobs.claim(conn, "w1", 10, LEASE, NOW)
    assert state(conn, job.id)[:4] == (LEASED, "w1", 1, NOW + LEASE)


def test_second_claim_does_not_get_leased_jobs(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job(1), new_job(2)], NOW)
    assert len(jobs.claim(conn, "w1", 10, LEASE, NOW)) == 2
    assert jobs.claim(conn, "w2", 10, LEASE, NOW + LEASE - 1) == []


def test_claim_takes_at_most_the_limit(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job(n) for n in range(5)], NOW)
    first = jobs.claim(conn, "w1", 2, LEASE, NOW)
    second = jobs.claim(conn, "w2", 10, LEASE, NOW)
    assert len(first) == 2
    assert len(second) == 3
    assert {j.id for j in first}.isdisjoint(j.id for j in second)


def test_job_is_not_claimed_before_it_is_due(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    assert jobs.claim(conn, "w1", 10, LEASE, NOW - 1) == []
    assert len(jobs.claim(conn, "w1", 10, LEASE, NOW)) == 1


def test_expired_lease_is_reclaimed_with_another_attempt(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job] = jobs.claim(conn, "w1", 10, LEASE, NOW)
    [again] = jobs.claim(conn, "w2", 10, LEASE, NOW + LEASE)
    assert again.id == job.id
    assert again.attempts == 2
    assert state(conn, job.id)[:2] == (LEASED, "w2")


def test_worker_that_lost_its_lease_cannot_settle(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job] = jobs.claim(conn, "w1", 10, LEASE, NOW)
    jobs.claim(conn, "w2", 10, LEASE, NOW + LEASE + 1)
    assert not jobs.settle(conn, job.id, "w1", DONE, None, None, NOW + LEASE + 2)
    assert state(conn, job.id)[:2] == (LEASED, "w2")
    assert jobs.settle(conn, job.id, "w2", DONE, None, None, NOW + LEASE + 3)


def test_only_the_lease_owner_settles(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job] = jobs.claim(conn, "w1", 10, LEASE, NOW)
    assert not jobs.settle(conn, job.id, "intruder", DONE, None, None, NOW + 1)
    assert state(conn, job.id)[:2] == (LEASED, "w1")
    assert jobs.settle(conn, job.id, "w1", DONE, None, None, NOW + 1)
    assert state(conn, job.id)[:2] == (DONE, None)


def test_settled_job_cannot_be_settled_again(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job] = jobs.claim(conn, "w1", 10, LEASE, NOW)
    assert jobs.settle(conn, job.id, "w1", DONE, None, None, NOW + 1)
    assert not jobs.settle(conn, job.id, "w1", FAILED, "late", None, NOW + 2)
    assert state(conn, job.id)[0] == DONE


def test_queued_job_that_was_never_claimed_cannot_be_settled(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job_id] = [r[0] for r in conn.execute("SELECT id FROM jobs")]
    assert not jobs.settle(conn, job_id, "w1", DONE, None, None, NOW)
    assert state(conn, job_id)[0] == QUEUED


@pytest.mark.parametrize("final", [DONE, FAILED, DEAD, EXPIRED])
def test_finished_jobs_are_never_claimed_again(conn: sqlite3.Connection, final: str) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job] = jobs.claim(conn, "w1", 10, LEASE, NOW)
    jobs.settle(conn, job.id, "w1", final, "why", None, NOW + 1)
    assert jobs.claim(conn, "w2", 10, LEASE, NOW + 10 * LEASE) == []


def test_finished_job_records_error_and_finish_time(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job] = jobs.claim(conn, "w1", 10, LEASE, NOW)
    jobs.settle(conn, job.id, "w1", FAILED, "BadDeviceToken", None, NOW + 5)
    row = conn.execute("SELECT state, last_error, finished_at FROM jobs").fetchone()
    assert tuple(row) == (FAILED, "BadDeviceToken", NOW + 5)


def test_retry_makes_the_job_due_later(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job()], NOW)
    [job] = jobs.claim(conn, "w1", 10, LEASE, NOW)
    later = NOW + 120
    assert jobs.settle(conn, job.id, "w1", QUEUED, "503", later, NOW + 1)
    assert state(conn, job.id) == (QUEUED, None, 1, later, "503")
    assert conn.execute("SELECT finished_at FROM jobs").fetchone()[0] is None
    assert jobs.claim(conn, "w2", 10, LEASE, later - 1) == []
    [again] = jobs.claim(conn, "w2", 10, LEASE, later)
    assert (again.id, again.attempts) == (job.id, 2)


def test_due_jobs_are_claimed_oldest_due_first(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [new_job(1), new_job(2)], NOW)
    claimed = jobs.claim(conn, "w1", 10, LEASE, NOW)
    first, second = claimed
    jobs.settle(conn, first.id, "w1", QUEUED, "retry", NOW + 50, NOW)
    jobs.settle(conn, second.id, "w1", QUEUED, "retry", NOW + 10, NOW)
    [next_job] = jobs.claim(conn, "w1", 1, LEASE, NOW + 100)
    assert next_job.id == second.id


def test_depth_counts_queued_and_leased_jobs(conn: sqlite3.Connection) -> None:
    assert jobs.depth(conn) == 0
    jobs.enqueue(conn, [new_job(n) for n in range(4)], NOW)
    assert jobs.depth(conn) == 4
    a, b = jobs.claim(conn, "w1", 2, LEASE, NOW)
    assert jobs.depth(conn) == 4
    jobs.settle(conn, a.id, "w1", DONE, None, None, NOW)
    jobs.settle(conn, b.id, "w1", FAILED, "x", None, NOW)
    assert jobs.depth(conn) == 2


def test_enqueue_follows_the_callers_transaction(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    jobs.enqueue(conn, [new_job()], NOW)
    conn.execute("ROLLBACK")
    assert jobs.depth(conn) == 0


def test_enqueue_of_nothing_adds_nothing(conn: sqlite3.Connection) -> None:
    jobs.enqueue(conn, [], NOW)
    assert jobs.depth(conn) == 0


async def test_job_queue_over_the_executor_claims_and_acks(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    setup = connect(path)
    create_schema(setup)
    setup.close()
    executor = SqliteExecutor(path)
    executor.start()
    try:
        await executor.run(lambda c: jobs.enqueue(c, [new_job(1), new_job(2)], 0.0))
        queue = jobs.TableJobQueue(executor)
        claimed = await queue.claim("w1", 10, LEASE)
        assert len(claimed) == 2
        assert await queue.claim("w2", 10, LEASE) == []
        assert await queue.ack(claimed[0].id, "w1")
        assert not await queue.ack(claimed[0].id, "w1")
        assert await queue.retry(claimed[1].id, "w1", 0.0, "503")
        assert await queue.depth() == 1
        [again] = await queue.claim("w2", 10, LEASE)
        assert (again.id, again.attempts) == (claimed[1].id, 2)
        assert await queue.finish(again.id, "w2", DEAD, "gave up")
        assert await queue.depth() == 0
    finally:
        executor.close()
