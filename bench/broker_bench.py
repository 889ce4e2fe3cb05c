"""Which broker should carry the delivery queue: NATS JetStream or Redis Streams, on this machine.

Both are measured the way a pushgate relay and worker would use them, with the clients pushgate
would use (nats-py, redis-py asyncio), on the servers running here (NATS with JetStream on
127.0.0.1:4222; Redis on 127.0.0.1:6379, and a second Redis started by this script with
`appendonly yes` and `appendfsync always|everysec` for the durable settings):

- publish: N messages of --size bytes, --inflight at a time, each acknowledged by the broker
  (JetStream: PubAck with `Nats-Msg-Id` de-duplication; Redis: XADD, pipelined);
- consume: the same N messages, fetched in batches of 256 and acknowledged one by one
  (JetStream: pull consumer, explicit ack, `ack_sync`; Redis: XREADGROUP + XACK in a pipeline).

Medians of --runs runs, messages per second. Nothing of pushgate is imported: this is the input to
the choice, written down in docs/queue.md.

    .venv/bin/python bench/broker_bench.py --runs 3 --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import nats
import redis.asyncio as aioredis
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"
BATCH = 256


async def jetstream(messages: int, size: int, inflight: int) -> tuple[float, float]:
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    name = f"BENCH{os.getpid()}{time.time_ns() % 10**6}"
    subject = f"bench.{name}.jobs"
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=[subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=120,
        )
    )
    body = os.urandom(size // 2).hex().encode()
    try:
        started = time.perf_counter()
        sem = asyncio.Semaphore(inflight)

        async def publish(i: int) -> None:
            async with sem:
                await js.publish(subject, body, headers={"Nats-Msg-Id": str(i)})

        await asyncio.gather(*(publish(i) for i in range(messages)))
        published = messages / (time.perf_counter() - started)

        sub = await js.pull_subscribe(
            subject,
            durable="workers",
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_deliver=5),
        )
        started = time.perf_counter()
        done = 0
        while done < messages:
            batch = await sub.fetch(BATCH, timeout=5)
            await asyncio.gather(*(m.ack_sync() for m in batch))
            done += len(batch)
        consumed = messages / (time.perf_counter() - started)
    finally:
        await js.delete_stream(name)
        await nc.close()
    return published, consumed


async def redis_streams(url: str, messages: int, size: int, inflight: int) -> tuple[float, float]:
    client = aioredis.Redis.from_url(url)
    key = f"bench:{os.getpid()}:{time.time_ns()}"
    body = os.urandom(size // 2).hex().encode()
    try:
        await client.xgroup_create(key, "workers", id="0", mkstream=True)
        started = time.perf_counter()
        for start in range(0, messages, inflight):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(messages, start + inflight)):
                pipe.xadd(key, {"job": str(i), "body": body})
            await pipe.execute()
        published = messages / (time.perf_counter() - started)

        started = time.perf_counter()
        done = 0
        while done < messages:
            got = await client.xreadgroup("workers", "w1", {key: ">"}, count=BATCH, block=5000)
            ids = [entry_id for _, entries in got for entry_id, _ in entries]
            pipe = client.pipeline(transaction=False)
            for entry_id in ids:
                pipe.xack(key, "workers", entry_id)
            await pipe.execute()
            done += len(ids)
        consumed = messages / (time.perf_counter() - started)
    finally:
        await client.delete(key)
        await client.aclose()
    return published, consumed


@contextlib.contextmanager
def durable_redis(fsync: str) -> Iterator[str]:
    """A Redis of our own that writes every command to its append-only file."""
    port = 6390 if fsync == "always" else 6391
    work = Path(tempfile.mkdtemp(prefix="broker-bench-redis-"))
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync,
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout:
                break
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def measure(
    label: str, runs: int, once: Callable[[], Awaitable[tuple[float, float]]]
) -> dict[str, object]:
    results = [asyncio.run(once()) for _ in range(runs)]  # type: ignore[arg-type]
    pub = statistics.median(r[0] for r in results)
    con = statistics.median(r[1] for r in results)
    print(f"{label:42s} publish {pub:>10,.0f}/s  consume+ack {con:>10,.0f}/s", flush=True)
    return {"broker": label, "publish": pub, "consume": con, "runs": results}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--size", type=int, default=512, help="bytes per message")
    p.add_argument("--inflight", type=int, default=256)
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    a = p.parse_args()
    rows = [
        measure(
            "JetStream (file storage, server defaults)",
            a.runs,
            lambda: jetstream(a.messages, a.size, a.inflight),
        ),
        measure(
            "Redis Streams (no persistence, as run here)",
            a.runs,
            lambda: redis_streams(REDIS_URL, a.messages, a.size, a.inflight),
        ),
    ]
    for fsync in ("everysec", "always"):
        with durable_redis(fsync) as url:
            rows.append(
                measure(
                    f"Redis Streams (AOF, appendfsync {fsync})",
                    a.runs,
                    lambda url=url: redis_streams(url, a.messages, a.size, a.inflight),  # type: ignore[misc]
                )
            )
    if a.out:
        a.out.write_text(
            json.dumps({"args": vars(a) | {"out": str(a.out)}, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
