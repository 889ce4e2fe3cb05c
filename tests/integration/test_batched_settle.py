"""Batched settling against the real databases (a SQLite file; PostgreSQL): a worker records
its finished sends in batches, one transaction each, and keeps every guarantee of recording
them one by one.

- A batch changes the database exactly as its attempts recorded one at a time would: job
  states, Message Center entries, fail records, devices, credentials, campaign counters.
- Only the lease holder settles: outcomes of jobs whose lease another worker took are refused
  in the same batch as the others are applied, and counted as lease losses.
- A worker that dies with outcomes not yet written loses nothing: the leases run out, another
  worker sends and records them, and every counter counts each job once.
- Stopping records what has finished and hands the rest back; a send past its time is a retry.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pushgate.crypto import SecretBox
from pushgate.delivery import outcome as outcomes
from pushgate.delivery import worker as worker_module
from pushgate.delivery.worker import DeliveryWorker
from pushgate.jobs import (
    ACCEPTED,
    DONE,
    EXPIRED,
    FAILED,
    LEASED,
    QUEUED,
    UPLOADED,
    Attempt,
    DeliveryOutcome,
    Job,
    NewJob,
    expired,
)
from pushgate.providers.verdict import Verdict
from pushgate.queue import table
from pushgate.store import credentials, deliveries, partners, profiles
from pushgate.store.backend import open_store
from pushgate.store.db import Db
from pushgate.store.store import Store
from tests.support.server import new_backend_env

CAMPAIGNS = (11, 12)
PLATFORMS = ("ios", "android")
BOX = SecretBox(b"k" * 32)


@pytest.fixture
def open_stores(tmp_path: Path, backend: str) -> Iterator[Callable[[], Store]]:
    """Stores of their own (a data dir, or a PostgreSQL schema), closed at the end."""
    opened: list[Store] = []

    def make() -> Store:
        env = new_backend_env(backend)
        store = open_store(tmp_path / f"data{len(opened)}", env.get("PUSHGATE_DATABASE_URL"))
        store.start()
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
async def store(open_stores: Callable[[], Store]) -> AsyncIterator[Store]:
    yield open_stores()


def seed(conn: Db, users: int, now: float) -> None:
    """A partner with validated iOS and Android credentials, `users` users with a device each
    (alternating platforms) and a job per user and campaign."""
    partners.create_partner(conn, f"p{time.time_ns()}")
    partner_id = int(conn.execute("SELECT max(id) FROM partners").fetchone()[0])
    for platform in PLATFORMS:
        credentials.put(
            conn,
            BOX,
            partner_id,
            platform,
            UPLOADED,
            {"k": platform},
            ref=None,
            validated=True,
        )
    jobs = []
    for n in range(users):
        platform = PLATFORMS[n % 2]
        profile_id = profiles.create_profile(conn, partner_id, now)
        device_id = int(
            conn.execute(
                "INSERT INTO devices (partner_id, profile_id, platform, token, environment,"
                " push_optin, token_registered_at, last_active_at)"
                " VALUES (?, ?, ?, ?, 'production', 1, ?, ?) RETURNING id",
                (partner_id, profile_id, platform, f"tok{n}", now - 100, now),
            ).fetchone()[0]
        )
        for camp in CAMPAIGNS:
            jobs.append(
                NewJob(
                    partner_id,
                    camp,
                    profile_id,
                    device_id,
                    platform,
                    f"tok{n}",
                    "production",
                    b"{}",
                    "alert",
                    10,
                    now + 3600,
                )
            )
    table.enqueue(conn, jobs, now)


def mixed_outcomes(jobs: Sequence[Job], now: float, rng: random.Random) -> list[Attempt]:
    """Every kind of outcome a worker records, on the same campaigns and devices."""
    made: list[Callable[[Job], DeliveryOutcome]] = [
        lambda j: outcomes.decide(j, "ok", "", now=now),
        lambda j: outcomes.decide(j, "ok", "", now=now, environment="sandbox"),
        lambda j: outcomes.decide(j, "retry", "TooManyRequests", now=now, rng=rng),
        lambda j: outcomes.decide(j, "rejected", "PayloadTooLarge", now=now, detail="413"),
        lambda j: outcomes.decide(j, "dead_token", "Unregistered", now=now),
        lambda j: outcomes.decide(
            j, "dead_token", "Unregistered", now=now, timestamp_ms=int((now - 1000) * 1000)
        ),
        lambda j: outcomes.decide(j, "credential", "InvalidProviderToken", now=now),
        lambda j: expired("ttl"),
    ]
    return [(job, rng.choice(made)(job)) for job in jobs]


def snapshot(conn: Db) -> dict[str, Any]:
    """What recording changes, without ids that differ between two databases."""

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in conn.execute(sql).fetchall())

    return {
        "jobs": rows(
            "SELECT camp_id, token, state, last_error, due_at, finished_at, lease_owner FROM jobs"
        ),
        "inbox": rows("SELECT camp_id, platform, created_at FROM inbox"),
        "fails": rows(
            "SELECT camp_id, platform, token, reason, detail, created_at FROM fail_records"
        ),
        "devices": rows("SELECT token, status, status_reason, environment FROM devices"),
        "credentials": rows("SELECT platform, validated FROM credentials"),
        "counters": rows(
            "SELECT camp_id, name, hour, CAST(sum(count) AS BIGINT) FROM campaign_stats"
            " GROUP BY camp_id, name, hour"
        ),
    }


async def claim_all(store: Store, worker: str, now: float) -> list[Job]:
    return await store.db.run(lambda c: table.claim(c, worker, 1000, 30, now))


async def test_a_batch_records_exactly_what_its_attempts_recorded_one_by_one_would(
    open_stores: Callable[[], Store],
) -> None:
    now = time.time()
    later = now + 1
    batched, single = open_stores(), open_stores()
    for store in (batched, single):
        await store.db.run(lambda c: seed(c, 40, now))
        claimed = await claim_all(store, "w1", now)
        # Some leases ran out and another worker has those jobs now.
        lost = {j.id for j in claimed[::7]}
        await store.db.run(
            lambda c, lost=lost: c.executemany(
                "UPDATE jobs SET lease_owner = 'w2' WHERE id = ?", [(i,) for i in lost]
            )
        )
        attempts = mixed_outcomes(claimed, now, random.Random(5))
        if store is batched:
            applied = await store.db.run(
                lambda c, a=attempts: deliveries.record_many(c, "w1", a, later)
            )
        else:
            applied = [
                await store.db.run(lambda c, j=j, o=o: deliveries.record(c, j, "w1", o, later))
                for j, o in attempts
            ]
        assert applied == [j.id not in lost for j in claimed]
    first, second = [await s.db.run(snapshot) for s in (batched, single)]
    assert first == second
    states = Counter(state for _, _, state, *_ in first["jobs"])
    assert states[LEASED] == len(lost)  # the lost ones, untouched
    assert {DONE, QUEUED, FAILED, EXPIRED} <= set(states)


async def test_counters_of_a_batch_are_summed_per_counter(store: Store) -> None:
    now = time.time()
    await store.db.run(lambda c: seed(c, 30, now))
    claimed = await claim_all(store, "w1", now)
    recorded = await store.record_deliveries("w1", [(job, ACCEPTED) for job in claimed])
    assert all(recorded)
    hour = int(now // 3600)
    counters = await store.db.run(
        lambda c: c.execute(
            "SELECT camp_id, name, hour, count FROM campaign_stats WHERE name LIKE 'accepted:%'"
        ).fetchall()
    )
    # One row per campaign and platform, holding the whole batch's count.
    assert sorted(tuple(r) for r in counters) == sorted(
        (camp, f"accepted:{platform}", hour, 15) for camp in CAMPAIGNS for platform in PLATFORMS
    )


# ---- the worker ----


class Sends:
    """A provider whose answers the test controls: `ok` at once, or held until released."""

    def __init__(self, hold: bool = False, fail: bool = False) -> None:
        self.hold = hold
        self.fail = fail
        self.released = asyncio.Event()
        self.sent: Counter[int] = Counter()
        self.finished = 0

    def start(self, job: Job) -> asyncio.Future[Verdict]:
        return asyncio.get_running_loop().create_task(self.send(job))

    async def send(self, job: Job) -> Verdict:
        self.sent[job.id] += 1
        if self.hold:
            await self.released.wait()
        if self.fail:
            raise RuntimeError("a bug in a sender")
        self.finished += 1
        return Verdict(kind="ok", status=200)

    async def sender_for(self, job: Job) -> Sends:
        return self


class CountingRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.batches: list[int] = []

    async def __call__(self, name: str, attempts: Sequence[Attempt]) -> list[bool]:
        self.batches.append(len(attempts))
        return await self.store.record_deliveries(name, attempts)


async def wait_until(predicate: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def job_states(store: Store) -> Counter[str]:
    rows = await store.db.run(lambda c: c.execute("SELECT state FROM jobs").fetchall())
    return Counter(str(r[0]) for r in rows)


async def sent_counter(store: Store) -> int:
    row = await store.db.run(
        lambda c: c.execute(
            "SELECT CAST(COALESCE(sum(count), 0) AS BIGINT) FROM campaign_stats"
            " WHERE name LIKE 'accepted:%'"
        ).fetchone()
    )
    return int(row[0])


async def inbox_rows(store: Store) -> Counter[int]:
    rows = await store.db.run(lambda c: c.execute("SELECT job_id FROM inbox").fetchall())
    return Counter(int(r[0]) for r in rows)


async def test_a_worker_settles_every_job_once_in_batches(store: Store) -> None:
    now = time.time()
    await store.db.run(lambda c: seed(c, 150, now))  # 300 jobs
    sends, record = Sends(), CountingRecorder(store)
    # 50 jobs held at most, and outcomes written only once 50 wait: 300 jobs make six batches.
    worker = DeliveryWorker(
        store.queue,
        record,
        sends,
        concurrency=50,
        settle_batch=50,
        settle_seconds=3600,
        idle_poll_seconds=0.01,
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: sum(record.batches) == 300 and worker.in_flight == 0)
    finally:
        await worker.stop(1.0)
        task.cancel()
    assert record.batches == [50] * 6
    assert await job_states(store) == {DONE: 300}
    assert set(sends.sent.values()) == {1}
    assert await sent_counter(store) == 300
    assert set((await inbox_rows(store)).values()) == {1} and len(await inbox_rows(store)) == 300
    assert worker.metrics.sends == {("ios", "accepted", ""): 150, ("android", "accepted", ""): 150}


async def test_outcomes_of_jobs_whose_lease_was_taken_are_refused_and_counted(
    store: Store,
) -> None:
    now = time.time()
    await store.db.run(lambda c: seed(c, 10, now))  # 20 jobs
    sends = Sends(hold=True)
    worker = DeliveryWorker(store.queue, store.record_deliveries, sends, idle_poll_seconds=0.01)
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: sum(sends.sent.values()) == 20)
        # The leases run out meanwhile and another worker takes ten of the jobs.
        taken = await store.db.run(
            lambda c: table.claim(c, "other", 10, 30, time.time() + worker_module.LEASE_SECONDS)
        )
        sends.released.set()
        await wait_until(lambda: worker.in_flight == 0)
    finally:
        await worker.stop(1.0)
        task.cancel()
    assert worker.counters["lease_lost"] == 10
    assert await job_states(store) == {DONE: 10, LEASED: 10}
    assert await sent_counter(store) == 10
    owners = await store.db.run(
        lambda c: c.execute("SELECT id, lease_owner FROM jobs WHERE state = 'leased'").fetchall()
    )
    assert {(int(i), str(o)) for i, o in owners} == {(j.id, "other") for j in taken}
    # The other worker's outcomes are the ones that count.
    assert all(await store.record_deliveries("other", [(j, ACCEPTED) for j in taken]))
    assert await sent_counter(store) == 20
    assert set((await inbox_rows(store)).values()) == {1}


async def test_a_worker_that_dies_with_outcomes_unwritten_loses_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    await store.db.run(lambda c: seed(c, 20, now))  # 40 jobs
    monkeypatch.setattr(worker_module, "LEASE_SECONDS", 0.5)
    first_sends = Sends()
    # Nothing is written until 1,000 outcomes wait, or an hour: it dies before either.
    first = DeliveryWorker(
        store.queue,
        store.record_deliveries,
        first_sends,
        settle_batch=1000,
        settle_seconds=3600,
        idle_poll_seconds=3600,
    )
    task = asyncio.create_task(first.run())
    await wait_until(lambda: first_sends.finished == 40)
    task.cancel()  # its death: nothing more reaches the database
    await asyncio.gather(task, return_exceptions=True)
    assert await job_states(store) == {LEASED: 40}
    assert await sent_counter(store) == 0

    second_sends = Sends()
    second = DeliveryWorker(
        store.queue, store.record_deliveries, second_sends, idle_poll_seconds=0.05
    )
    task = asyncio.create_task(second.run())
    try:  # its claims find the jobs once the dead worker's leases have run out
        await wait_until(lambda: second_sends.finished == 40 and second.in_flight == 0)
    finally:
        await second.stop(1.0)
        task.cancel()
    assert await job_states(store) == {DONE: 40}
    assert await sent_counter(store) == 40  # each job counted once
    assert set((await inbox_rows(store)).values()) == {1}
    attempts = await store.db.run(lambda c: c.execute("SELECT attempts FROM jobs").fetchall())
    assert {int(r[0]) for r in attempts} == {2}


async def test_stopping_records_finished_sends_and_hands_back_the_rest(store: Store) -> None:
    now = time.time()
    await store.db.run(lambda c: seed(c, 5, now))  # 10 jobs
    quick, slow = Sends(), Sends(hold=True)

    class Split:
        async def sender_for(self, job: Job) -> Sends:
            return quick if job.platform == "ios" else slow

    worker = DeliveryWorker(
        store.queue, store.record_deliveries, Split(), settle_seconds=3600, idle_poll_seconds=0.01
    )
    task = asyncio.create_task(worker.run())
    await wait_until(lambda: quick.finished == 6 and sum(slow.sent.values()) == 4)
    handed = await worker.stop(0.1)
    task.cancel()
    assert handed == 4
    rows = await store.db.run(
        lambda c: c.execute("SELECT platform, state, last_error, finished_at FROM jobs").fetchall()
    )
    assert Counter((str(p), str(s)) for p, s, _, _ in rows) == {
        ("ios", DONE): 6,
        ("android", QUEUED): 4,
    }
    assert all(e == worker_module.HANDED_BACK and f is None for p, _, e, f in rows if p != "ios")
    assert await sent_counter(store) == 6


async def test_a_send_past_its_time_is_recorded_as_a_retry(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    await store.db.run(lambda c: seed(c, 1, now))  # 2 jobs
    monkeypatch.setattr(worker_module, "SEND_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(worker_module, "WATCHDOG_SECONDS", 0.05)
    worker = DeliveryWorker(
        store.queue, store.record_deliveries, Sends(hold=True), idle_poll_seconds=0.01
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: sum(worker.metrics.retries.values()) == 2)
    finally:
        await worker.stop(1.0)
        task.cancel()
    rows = await store.db.run(
        lambda c: c.execute("SELECT state, last_error, due_at FROM jobs").fetchall()
    )
    assert [(str(s), str(e)) for s, e, _ in rows] == [(QUEUED, "send timed out")] * 2
    assert all(float(due) > now for _, _, due in rows)
    assert worker.metrics.retries == {("ios", "Timeout"): 2}


async def test_a_send_that_fails_unexpectedly_leaves_its_job_to_the_lease(store: Store) -> None:
    now = time.time()
    await store.db.run(lambda c: seed(c, 2, now))  # 4 jobs
    worker = DeliveryWorker(
        store.queue, store.record_deliveries, Sends(fail=True), idle_poll_seconds=0.01
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: worker.counters["crashed"] == 4)
    finally:
        await worker.stop(1.0)
        task.cancel()
    assert worker.in_flight == 0
    assert await job_states(store) == {LEASED: 4}  # claimed again when the leases run out


async def test_an_attempt_twice_in_one_batch_is_applied_once(store: Store) -> None:
    """A worker that claimed its own job again (its lease ran out while the outcome waited)
    holds it twice: the first outcome is recorded, the second refused, as one by one."""
    now = time.time()
    await store.db.run(lambda c: seed(c, 1, now))
    job, _ = await claim_all(store, "w1", now)
    recorded = await store.record_deliveries("w1", [(job, ACCEPTED), (job, ACCEPTED)])
    assert recorded == [True, False]
    assert await sent_counter(store) == 1


async def test_claims_follow_each_other_while_jobs_are_due(store: Store) -> None:
    """A claim that got all it asked for is followed by another as soon as slots are free,
    never by an idle poll (an hour here): 600 due jobs through 100 slots."""
    now = time.time()
    await store.db.run(lambda c: seed(c, 300, now))  # 600 jobs
    sends = Sends()
    worker = DeliveryWorker(
        store.queue, store.record_deliveries, sends, concurrency=100, idle_poll_seconds=3600
    )
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: sends.finished == 600 and worker.in_flight == 0)
    finally:
        await worker.stop(1.0)
        task.cancel()
    assert await job_states(store) == {DONE: 600}
