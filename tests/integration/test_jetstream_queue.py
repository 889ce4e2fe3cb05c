"""The JetStream-carried queue against the NATS server on 127.0.0.1:4222 and a real SQLite
store: the outbox relay, claims by id, acks, retries as delayed redeliveries, and a dead
worker's messages coming back after the lease."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from pushgate import names
from pushgate.config import ConfigError
from pushgate.jobs import DONE, QUEUED, DeliveryOutcome, Job, NewJob
from pushgate.queue import table
from pushgate.queue.jetstream import JetStreamQueue, check_reachable, message_id, stream_owner
from pushgate.store import partners, profiles
from pushgate.store.backend import open_store
from pushgate.store.db import Db
from pushgate.store.store import Store

NATS_URL = os.environ.get("PUSHGATE_TEST_NATS", "nats://127.0.0.1:4222")
LEASE = 2.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    found = open_store(tmp_path / "data")
    found.start()
    yield found
    found.close()


@pytest.fixture
def prefix() -> str:
    return f"T{os.getpid()}X{time.time_ns() % 10**9}"


@pytest.fixture
async def queue(store: Store, prefix: str) -> AsyncIterator[JetStreamQueue]:
    found = await started(store, prefix)
    yield found
    await found.close()
    nc = await nats.connect(NATS_URL)
    await nc.jetstream().delete_stream(names.jobs_stream(prefix))
    await nc.close()


async def started(store: Store, prefix: str) -> JetStreamQueue:
    found = JetStreamQueue(NATS_URL, store.db, prefix, ack_wait_seconds=LEASE)
    await found.start()
    return found


async def enqueue(store: Store, count: int, due_in: float = 0.0) -> list[int]:
    """`count` jobs of one partner to users of their own, with their outbox rows; due at once
    or `due_in` seconds from now."""
    now = time.time()

    def unit(c: Db) -> None:
        partners.create_partner(c, f"p{time.time_ns()}")
        partner_id = int(c.execute("SELECT max(id) FROM partners").fetchone()[0])
        jobs = [
            NewJob(
                partner_id,
                7,
                profiles.create_profile(c, partner_id, now),
                i,
                "ios",
                f"tok{i}",
                "production",
                b"{}",
                "alert",
                10,
                now + 3600,
                due_at=now + due_in if due_in else 0.0,
            )
            for i in range(count)
        ]
        table.enqueue(c, jobs, now, outbox=True)  # written when the unit's transaction ends

    await store.db.run(unit)
    return await store.db.run(
        lambda c: [int(r[0]) for r in c.execute("SELECT id FROM jobs ORDER BY id")]
    )


async def stream_messages(prefix: str) -> int:
    nc = await nats.connect(NATS_URL)
    try:
        info = await nc.jetstream().stream_info(names.jobs_stream(prefix))
        return int(info.state.messages)
    finally:
        await nc.close()


async def outbox(store: Store) -> list[int]:
    return [
        job_id
        for job_id, _ in await store.db.run(lambda c: table.outbox_batch(c, 100, time.time()))
    ]


async def test_relay_publishes_each_outbox_job_once_and_empties_the_outbox(
    store: Store, queue: JetStreamQueue, prefix: str
) -> None:
    ids = await enqueue(store, 3)
    assert await outbox(store) == ids
    assert await queue.relay_once() == 3
    assert await outbox(store) == []
    assert await queue.relay_once() == 0
    assert await stream_messages(prefix) == 3


async def test_a_scheduled_job_waits_in_the_outbox_until_it_is_due(
    store: Store, queue: JetStreamQueue, prefix: str
) -> None:
    """Published at once, a job due in an hour would sit unacknowledged on the broker."""
    later = await enqueue(store, 2, due_in=1.0)
    assert await outbox(store) == []  # not due: not offered to the relay
    assert await queue.relay_once() == 0
    assert await stream_messages(prefix) == 0
    await asyncio.sleep(1.05)
    assert await queue.relay_once() == 2
    assert await stream_messages(prefix) == 2
    claimed = await queue.claim("w", 10, 30.0, wait=2.0)
    assert sorted(j.id for j in claimed) == later[-2:]


async def test_a_relay_that_died_before_emptying_the_outbox_publishes_no_copy(
    store: Store, queue: JetStreamQueue, prefix: str
) -> None:
    ids = await enqueue(store, 3)
    await queue.relay_once()
    # As if the relay had died after publishing, before deleting the outbox rows.
    await store.db.run(
        lambda c: c.executemany("INSERT INTO outbox (job_id) VALUES (?)", [(i,) for i in ids])
    )
    await queue.relay_once()
    assert queue.counters["duplicates"] == 3
    assert await stream_messages(prefix) == 3


async def test_a_claimed_job_settled_done_leaves_the_stream(
    store: Store, queue: JetStreamQueue, prefix: str
) -> None:
    ids = await enqueue(store, 2)
    await queue.relay_once()
    claimed = await queue.claim("w1", 10, LEASE)
    assert sorted(j.id for j in claimed) == ids
    done = [(job, DeliveryOutcome(DONE)) for job in claimed]
    recorded = await store.record_deliveries("w1", done)
    assert recorded == [True, True]
    await queue.settled([(job, outcome, True) for job, outcome in done])
    assert await stream_messages(prefix) == 0
    assert await queue.claim("w1", 10, LEASE, wait=0.3) == []


async def test_a_retry_comes_back_when_its_backoff_ends(
    store: Store, queue: JetStreamQueue
) -> None:
    await enqueue(store, 1)
    await queue.relay_once()
    (job,) = await queue.claim("w1", 10, LEASE)
    retry = DeliveryOutcome(QUEUED, detail="503", retry_at=time.time() + 1.0)
    await queue.settled([(job, retry, await store.record_delivery(job, "w1", retry))])
    assert await queue.claim("w1", 10, LEASE, wait=0.3) == []
    await asyncio.sleep(1.0)
    (again,) = await queue.claim("w1", 10, LEASE, wait=2.0)
    assert (again.id, again.attempts) == (job.id, 2)


async def test_a_dead_workers_job_is_claimed_again_after_its_lease(
    store: Store, queue: JetStreamQueue, prefix: str
) -> None:
    await enqueue(store, 1)
    await queue.relay_once()
    (job,) = await queue.claim("dead", 10, LEASE)  # never settled: the worker died
    other = await started(store, prefix)
    try:
        assert await other.claim("live", 10, LEASE, wait=0.5) == []
        # AckWait and the table lease both run LEASE seconds, from moments apart: a message
        # redelivered just before the lease ends is put back for the rest of it (that claim
        # answers nothing), so claim until it comes.
        found: list[Job] = []
        deadline = time.monotonic() + LEASE * 3 + 2.0
        while not found and time.monotonic() < deadline:
            found = await other.claim("live", 10, LEASE, wait=0.5)
        (again,) = found
        assert (again.id, again.attempts) == (job.id, 2)
        # The dead worker's late outcome is refused; the live one's is recorded.
        assert not await store.record_delivery(job, "dead", DeliveryOutcome(DONE))
        assert await store.record_delivery(again, "live", DeliveryOutcome(DONE))
        await other.settled([(again, DeliveryOutcome(DONE), True)])
    finally:
        await other.close()
    assert await stream_messages(prefix) == 0


async def test_a_message_for_a_settled_job_is_acknowledged_and_skipped(
    store: Store, queue: JetStreamQueue, prefix: str
) -> None:
    await enqueue(store, 1)
    (job,) = await store.queue.claim("w1", 10, LEASE)  # settled without the broker
    await store.record_delivery(job, "w1", DeliveryOutcome(DONE))
    await queue.relay_once()
    assert await queue.claim("w2", 10, LEASE, wait=0.5) == []
    assert queue.counters["skipped"] == 1
    assert await stream_messages(prefix) == 0


async def test_the_sweeper_republishes_a_job_whose_message_was_lost(
    store: Store, queue: JetStreamQueue
) -> None:
    (job_id,) = await enqueue(store, 1)
    await store.db.run(lambda c: table.outbox_done(c, [job_id]))  # lost before publishing
    assert await store.db.run(lambda c: table.sweep_into_outbox(c, time.time() - 60)) == 0
    assert await store.db.run(lambda c: table.sweep_into_outbox(c, time.time() + 1)) == 1
    assert await outbox(store) == [job_id]


async def test_a_job_delivered_max_deliver_times_without_an_outcome_is_given_up(
    store: Store, prefix: str
) -> None:
    queue = JetStreamQueue(NATS_URL, store.db, prefix, ack_wait_seconds=1.0, max_deliver=2)
    await queue.start()
    try:
        await queue.watch_dead_letters(store.record_delivery)
        (job_id,) = await enqueue(store, 1)
        await queue.relay_once()
        # Two workers take it and die without an outcome: JetStream's MaxDeliver is reached.
        assert [j.id for j in await queue.claim("dies-1", 10, 1.0)] == [job_id]
        await asyncio.sleep(1.2)
        assert [j.id for j in await queue.claim("dies-2", 10, 1.0, wait=2.0)] == [job_id]
        # The advisory comes when a pull would have redelivered it a third time.
        await asyncio.sleep(1.2)
        assert await queue.claim("live", 10, 1.0, wait=1.0) == []
        state = ""
        for _ in range(50):
            await asyncio.sleep(0.1)
            state, reason = await store.db.run(
                lambda c: c.execute(
                    "SELECT j.state, f.reason FROM jobs j LEFT JOIN fail_records f"
                    " ON f.job_id = j.id WHERE j.id = ?",
                    (job_id,),
                ).fetchone()
            )
            if state == "dead":
                break
        assert (state, reason) == ("dead", "Undeliverable")
        assert queue.counters["dead_letters"] == 1
    finally:
        await queue.close()
        nc = await nats.connect(NATS_URL)
        await nc.jetstream().delete_stream(names.jobs_stream(prefix))
        await nc.close()


async def settle_all_done(store: Store, queue: JetStreamQueue, claimed: list[Job]) -> None:
    done = [(job, DeliveryOutcome(DONE)) for job in claimed]
    recorded = await store.record_deliveries("w1", done)
    await queue.settled(
        [(job, outcome, ok) for (job, outcome), ok in zip(done, recorded, strict=True)]
    )


async def test_job_ids_reused_after_a_restore_are_published_and_claimed_not_dropped(
    store: Store, queue: JetStreamQueue, prefix: str
) -> None:
    """A database restored from a backup hands out job ids again that the stream saw within
    its de-duplication window: the new jobs' messages are new messages."""
    first = await enqueue(store, 3)
    await queue.relay_once()
    await settle_all_done(store, queue, await queue.claim("w1", 10, LEASE))
    # The restore: the jobs made since the backup are gone and their ids come round again.
    await store.db.run(lambda c: c.execute("DELETE FROM inbox"))
    await store.db.run(lambda c: c.execute("DELETE FROM jobs"))
    again = await enqueue(store, 3)
    assert again == first, "the restore made the ids come round again"
    await queue.relay_once()
    assert (queue.counters["published"], queue.counters["duplicates"]) == (6, 0)
    claimed = await queue.claim("w1", 10, LEASE, wait=2.0)
    assert sorted(job.id for job in claimed) == again
    await settle_all_done(store, queue, claimed)
    assert await stream_messages(prefix) == 0


async def test_messages_for_jobs_this_database_lacks_or_of_another_installation_are_dropped(
    store: Store, queue: JetStreamQueue, prefix: str
) -> None:
    (job_id,) = await enqueue(store, 1)
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        subject = names.jobs_subject(prefix)
        for message in (
            message_id(queue.installation, job_id + 1000, time.time()),  # no such job
            message_id("0123456789abcdef", job_id, time.time()),  # another installation's
        ):
            await js.publish(subject, message.encode(), headers={"Nats-Msg-Id": message})
    finally:
        await nc.close()
    await queue.relay_once()  # the real job's message, after the two others
    claimed = await queue.claim("w1", 10, LEASE, wait=2.0)
    assert [job.id for job in claimed] == [job_id], "neither message claimed the job"
    assert (queue.counters["unknown"], queue.counters["foreign"]) == (1, 1)
    await settle_all_done(store, queue, claimed)
    assert await stream_messages(prefix) == 0, "both were acknowledged, not left to come back"


async def test_a_second_installation_on_the_same_stream_is_refused_and_on_its_own_works(
    store: Store, queue: JetStreamQueue, prefix: str, tmp_path: Path
) -> None:
    other_store = open_store(tmp_path / "other")
    other_store.start()
    try:
        intruder = JetStreamQueue(NATS_URL, other_store.db, prefix, ack_wait_seconds=LEASE)
        with pytest.raises(ConfigError) as refused:
            await intruder.start()
        message = str(refused.value)
        assert "another pushgate installation" in message and "QUEUE_PREFIX" in message
        assert "\n" not in message
        installation = await other_store.db.run(table.installation_id)
        with pytest.raises(ConfigError):
            await check_reachable(
                NATS_URL, stream=names.jobs_stream(prefix), installation=installation
            )
        # The same database (a restore, another process of this installation) may.
        await check_reachable(
            NATS_URL, stream=names.jobs_stream(prefix), installation=queue.installation
        )
        # With a prefix of its own, the second installation delivers its own jobs.
        own_prefix = f"{prefix}B"
        own = await started(other_store, own_prefix)
        try:
            (job_id,) = await enqueue(other_store, 1)
            await own.relay_once()
            assert [job.id for job in await own.claim("w9", 10, LEASE, wait=2.0)] == [job_id]
            assert await queue.claim("w1", 10, LEASE, wait=0.3) == []
        finally:
            await own.close()
            nc = await nats.connect(NATS_URL)
            await nc.jetstream().delete_stream(names.jobs_stream(own_prefix))
            await nc.close()
    finally:
        other_store.close()


async def test_a_stream_made_before_installation_ids_is_adopted(store: Store, prefix: str) -> None:
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    stream = names.jobs_stream(prefix)
    await js.add_stream(
        StreamConfig(name=stream, subjects=[names.jobs_subject(prefix)], duplicate_window=120)
    )
    try:
        queue = await started(store, prefix)
        await queue.close()
        info = await js.stream_info(stream)
        assert stream_owner(info.config) == queue.installation
    finally:
        await js.delete_stream(stream)
        await nc.close()
