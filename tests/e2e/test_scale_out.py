"""Scale-out on PostgreSQL + Redis: several `pushgate serve` processes share one database and one
set of limit counters.

- Two `serve --role api` and two `serve --role worker` processes, pointed at a standalone
  `pushgate emulate` with latency on every platform, take 20,000 pushes; one worker is SIGKILLed
  when about a third are delivered. Every answered push is delivered; a push is delivered twice
  only if its job was leased by the killed worker at the kill (the send may have reached the
  provider before the worker died), so the duplicates are bounded by those jobs.
- The global frequency cap holds across API processes: concurrent requests through both never
  let a user past the cap, and every send over it is answered `UserGloballyCapped`.
- The rate limit is shared: a burst through both API processes gets exactly the per-minute
  allowance (GCRA lets a key burst its whole allowance, then one request per interval).

These run on PostgreSQL + Redis only (the embedded backend is one process by design).

Sources of truth: contract.md ("A synchronous answer (HTTP 200) is given once every send it lists
in `successes` is durably queued"; "Emulators"), targeted-push-api.txt (20 notifications per
request, GFC_enabled), pushgate.delivery.worker (30 s leases, 256 sends in flight per worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from pushgate import names
from tests.support.emulated import (
    FINAL_STATES,
    MAX_NOTIFICATIONS,
    PLATFORMS,
    Control,
    Standalone,
    create_emulator_partner,
    device_token,
    notification,
    partner_id,
    wait_for,
)
from tests.support.server import Partner, Server, new_backend_env

USERS = 2_000
CAMPAIGNS = 10
PUSHES = USERS * CAMPAIGNS
LATENCY_MS = 150  # every provider request waits this long: sends are in flight at the kill
KILL_AT = PUSHES // 3  # jobs done when the worker is killed
CLIENT_THREADS = 4
WORKER_CONCURRENCY = 256  # DeliveryWorker's default: a worker never holds more leases
LEASE_SECONDS = 30  # pushgate.delivery.worker.LEASE_SECONDS
# After the last push is answered: the survivor's backlog, then the killed worker's leases
# running out (30 s) and their second send.
SETTLE_TIMEOUT = 75


# ---- processes ----


@dataclass
class Cluster:
    """Processes on one data dir and one PostgreSQL schema + Redis prefix; all stopped at the end."""

    data_dir: Path
    backend_env: dict[str, str] = field(default_factory=lambda: new_backend_env("postgres"))
    processes: list[Server | Standalone] = field(default_factory=list)

    def emulator(self) -> Standalone:
        emu = Standalone(self.data_dir, self.backend_env)
        self.processes.append(emu)
        return emu.start()

    def serve(self, count: int, role: str, provider_env: dict[str, str]) -> list[Server]:
        """Start `count` `pushgate serve --role ROLE` processes together."""
        servers = [
            Server(
                self.data_dir,
                emulate=False,
                backend_env=self.backend_env,
                env={**provider_env, "PUSHGATE_ROLE": role},
            )
            for _ in range(count)
        ]
        self.processes += servers
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(Server.start, servers))
        return servers

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop()


NATS_URL = os.environ.get("PUSHGATE_TEST_NATS", "nats://127.0.0.1:4222")


@pytest.fixture(params=["table", "jetstream"])
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The job table as the queue, or JetStream carrying the jobs (docs/queue.md)."""
    c = Cluster(tmp_path / "data")
    stream_prefix = f"T{os.getpid()}X{time.time_ns() % 10**9}"
    if request.param == "jetstream":
        c.backend_env.update(
            {"PUSHGATE_QUEUE_URL": NATS_URL, "PUSHGATE_QUEUE_PREFIX": stream_prefix}
        )
    yield c
    c.stop()
    if request.param == "jetstream":
        asyncio.run(delete_stream(names.jobs_stream(stream_prefix)))


async def delete_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def api_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Two `serve --role api` processes on one database, without workers or emulators (jobs stay
    queued; partners get validated emulator credentials, which need no emulator)."""
    c = Cluster(tmp_path_factory.mktemp("apis") / "data")
    try:
        yield c.serve(2, "api", {})
    finally:
        c.stop()


# ---- requests ----


def register(partner: Partner, apis: list[Server], users: list[tuple[str, str, str]]) -> None:
    """POST /api/sdk/v1/session for every (uuid, platform, token), alternating the processes."""

    def one(i: int) -> None:
        uuid, platform, token = users[i]
        body = {
            "identifiers": {"uuid": uuid},
            "device": {"platform": platform, "device_token": token, "environment": "production"},
        }
        r = apis[i % len(apis)].client.post(
            "/api/sdk/v1/session", json=body, headers={"X-SDK-KEY": partner.sdk_key}
        )
        assert r.status_code == 200, r.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(len(users))))


def new_users(count: int, prefix: str) -> list[tuple[str, str, str]]:
    users = []
    for n in range(count):
        platform = PLATFORMS[n % len(PLATFORMS)]
        token = device_token(platform)
        users.append((f"{prefix}-{n}-{token[-8:]}", platform, token))
    return users


def post_push(srv: Server, api_key: str, notifications: list[dict[str, Any]]) -> httpx.Response:
    return srv.client.post(
        "/api/v2/notification/user", json={"api_key": api_key, "notifications": notifications}
    )


def delivered_camp_id(delivery: dict[str, Any]) -> int:
    """The camp_id pushgate put in the payload (payloads.build): top level for APNs, in the
    data for FCM, in the data string for HMS."""
    payload = delivery["payload"]
    if delivery["platform"] == "ios":
        return int(payload["camp_id"])
    data = payload["message"]["data"]
    if isinstance(data, str):  # HMS carries the data as one JSON string
        data = json.loads(data)
    return int(data["camp_id"])


# ---- database reads (one connection, reused while polling) ----


def query(conn: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql, params).fetchall())


def job_states(conn: Any, partner: int) -> Counter[str]:
    return Counter(
        {
            str(state): int(n)
            for state, n in query(
                conn,
                "SELECT state, count(*) FROM jobs WHERE partner_id = ? GROUP BY state",
                partner,
            )
        }
    )


# ---- 1. two API and two worker processes; one worker killed mid-send ----


def test_two_apis_two_workers_one_killed_loses_no_push(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    t0 = time.monotonic()
    emu = cluster.emulator()
    control = emu.control
    assert control is not None
    provider_env = emu.provider_env()
    apis = cluster.serve(2, "api", provider_env)
    workers = cluster.serve(2, "worker", provider_env)
    doomed, survivor = workers
    partner = create_emulator_partner(cluster.data_dir, apis[0])
    partner.update("--rate-limit", "1000000")
    pid = partner_id(partner)
    users = new_users(USERS, "scale")
    register(partner, apis, users)
    t_registered = time.monotonic()
    for platform in PLATFORMS:
        control.fault(platform, latency_ms=LATENCY_MS)

    # 10 campaigns x 2,000 users, 20 notifications (one campaign) per request, campaign after
    # campaign, alternating the API processes.
    batches = [
        (camp, users[start : start + MAX_NOTIFICATIONS])
        for camp in range(1, CAMPAIGNS + 1)
        for start in range(0, USERS, MAX_NOTIFICATIONS)
    ]
    answered: Counter[tuple[str, int]] = Counter()  # (token, camp_id) of every success
    failures: list[str] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        camp, chunk = batches[i]
        r = post_push(
            apis[i % 2], partner.api_key, [notification(u, camp, ttl=600) for u, *_ in chunk]
        )
        body = r.json() if r.status_code == 200 else None
        with lock:
            if body is None or body["errors"]:
                failures.append(f"{r.status_code} {r.text[:300]}")
            if body is not None:
                answered.update((s["INSIDER.device_token"], camp) for s in body["successes"])

    pool = ThreadPoolExecutor(CLIENT_THREADS)
    sent: list[Future[None]] = [pool.submit(send, i) for i in range(len(batches))]
    pool.shutdown(wait=False)

    db = apis[0].db()
    try:
        # Kill once about a third are delivered: sends are in flight (latency), the rest is
        # queued or still being pushed.
        reached = wait_for(
            lambda: job_states(db, pid)["done"] >= KILL_AT, timeout=90, interval=0.05
        )
        assert reached, f"{KILL_AT} jobs not done in 90 s: {job_states(db, pid)}"
        assert doomed.proc is not None
        doomed_pid = doomed.proc.pid
        doomed.kill()
        t_kill = time.monotonic()
        time.sleep(0.5)  # PostgreSQL ends the dead worker's sessions
        states_at_kill = job_states(db, pid)
        leased_at_kill = {
            (str(token), int(camp)): int(job)
            for job, token, camp in query(
                db,
                "SELECT id, token, camp_id FROM jobs WHERE partner_id = ? AND state = 'leased'"
                " AND lease_owner LIKE ?",
                pid,
                f"%:{doomed_pid}:%",
            )
        }
        for future in sent:
            future.result()
        t_pushed = time.monotonic()
        assert failures == [], (
            f"{len(failures)} requests not answered with all successes: {failures[:3]}"
        )
        assert sum(answered.values()) == PUSHES
        assert set(answered.values()) == {1}

        def settled() -> Counter[str] | None:
            states = job_states(db, pid)
            done = sum(states.values()) >= PUSHES and set(states) <= set(FINAL_STATES)
            return states if done else None

        final = wait_for(settled, SETTLE_TIMEOUT, 0.25)
        assert final, (
            f"jobs not final {SETTLE_TIMEOUT} s after the last answer: {job_states(db, pid)};"
            f" logs: {survivor.log_path}"
        )
        t_settled = time.monotonic()
        attempts = Counter(
            {
                (str(token), int(camp)): int(n)
                for token, camp, n in query(
                    db, "SELECT token, camp_id, attempts FROM jobs WHERE partner_id = ?", pid
                )
            }
        )
    finally:
        db.close()

    delivered = deliveries_by_push(control)
    missing = [k for k in answered if delivered[k] == 0]
    unexpected = {k: n for k, n in delivered.items() if k not in answered}
    duplicated = {k: n for k, n in delivered.items() if n > 1}
    duplicates = sum(n - 1 for n in duplicated.values())
    retried = {k for k, n in attempts.items() if n > 1}
    figures = {
        "pushes": PUSHES,
        "deliveries": sum(delivered.values()),
        "duplicates": duplicates,
        "leased_at_kill": len(leased_at_kill),
        "done_at_kill": states_at_kill["done"],
        "retried_jobs": len(retried),
        "register_s": round(t_registered - t0, 1),
        "kill_after_s": round(t_kill - t_registered, 1),
        "pushed_after_s": round(t_pushed - t_registered, 1),
        "settled_after_s": round(t_settled - t_registered, 1),
        "total_s": round(time.monotonic() - t0, 1),
    }
    for name, value in figures.items():
        record_property(name, value)
    print(f"\nscale-out: {figures}; states at kill: {dict(states_at_kill)}")

    assert final == {"done": PUSHES}
    assert missing == [], f"{len(missing)} answered pushes never delivered, e.g. {missing[:3]}"
    assert unexpected == {}, f"deliveries nobody was answered for: {list(unexpected)[:3]}"
    assert leased_at_kill, f"no send was in flight at the kill: {dict(states_at_kill)}"
    assert len(leased_at_kill) <= WORKER_CONCURRENCY
    assert set(duplicated) <= set(leased_at_kill), (
        "a push not leased by the killed worker was delivered twice: "
        f"{sorted(set(duplicated) - set(leased_at_kill))[:5]}"
    )
    assert duplicates <= len(leased_at_kill)
    # Only the killed worker's jobs were sent again (no provider faults, no timeouts).
    assert retried <= set(leased_at_kill), sorted(retried - set(leased_at_kill))[:5]
    assert survivor.proc is not None and survivor.proc.poll() is None
    assert all(api.proc is not None and api.proc.poll() is None for api in apis)


def deliveries_by_push(control: Control) -> Counter[tuple[str, int]]:
    """Deliveries the emulators accepted, by (token, camp_id)."""
    counts: Counter[tuple[str, int]] = Counter()
    for platform in PLATFORMS:
        for d in control.deliveries(platform):
            counts[(str(d["token"]), delivered_camp_id(d))] += 1
    return counts


# ---- 2. the global frequency cap across two API processes ----

GFC_LIMIT = 3
GFC_USERS = 50
GFC_CAMPAIGNS = 10


def test_frequency_cap_holds_across_api_processes(api_pair: list[Server]) -> None:
    partner = create_emulator_partner(api_pair[0].data_dir, api_pair[0])
    partner.update("--gfc-limit", str(GFC_LIMIT))
    users = new_users(GFC_USERS, "gfc")
    register(partner, api_pair, users)
    uuid_of = {token: uuid for uuid, _, token in users}
    requests = [
        [
            notification(uuid, camp, GFC_enabled=True)
            for uuid, *_ in users[start : start + MAX_NOTIFICATIONS]
        ]
        for camp in range(1, GFC_CAMPAIGNS + 1)
        for start in range(0, GFC_USERS, MAX_NOTIFICATIONS)
    ]
    random.Random(7).shuffle(requests)
    start = threading.Barrier(len(requests))

    def send(i: int) -> httpx.Response:
        start.wait()  # every request at once, half through each process
        return post_push(api_pair[i % 2], partner.api_key, requests[i])

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(send, range(len(requests))))

    successes: Counter[str] = Counter()
    capped: Counter[str] = Counter()
    for r in answers:
        assert r.status_code == 200, r.text
        body = r.json()
        successes.update(uuid_of[s["INSIDER.device_token"]] for s in body["successes"])
        errors = dict(body["errors"])
        capped.update(ident["uuid"] for ident in errors.pop("UserGloballyCapped", []))
        assert errors == {}, errors
    with contextlib.closing(api_pair[0].db()) as db:
        jobs_per_token = Counter(
            {
                str(token): int(n)
                for token, n in query(
                    db,
                    "SELECT token, count(*) FROM jobs WHERE partner_id = ? GROUP BY token",
                    partner_id(partner),
                )
            }
        )
    print(
        f"\nGFC: {sum(successes.values())} successes, {sum(capped.values())} capped,"
        f" {sum(jobs_per_token.values())} jobs for {GFC_USERS} users x {GFC_CAMPAIGNS} campaigns"
    )
    over = {u: n for u, n in successes.items() if n > GFC_LIMIT}
    assert over == {}, f"users answered past the cap of {GFC_LIMIT}: {over}"
    over_jobs = {t: n for t, n in jobs_per_token.items() if n > GFC_LIMIT}
    assert over_jobs == {}, f"users with more than {GFC_LIMIT} jobs: {over_jobs}"
    for uuid, _, token in users:
        assert successes[uuid] + capped[uuid] == GFC_CAMPAIGNS, (
            uuid,
            successes[uuid],
            capped[uuid],
        )
        assert jobs_per_token[token] == successes[uuid], (uuid, jobs_per_token[token])
    # Nothing is lost either: every user gets exactly the cap (no counter taken and not given
    # back).
    assert set(successes.values()) == {GFC_LIMIT}, Counter(successes.values())


# ---- 3. the rate limit is shared by the API processes ----

RATE_LIMIT = 60  # per minute: GCRA interval 1 s, burst 60
RATE_REQUESTS = 100


def test_rate_limit_is_shared_across_api_processes(api_pair: list[Server]) -> None:
    partner = create_emulator_partner(api_pair[0].data_dir, api_pair[0])
    partner.update("--rate-limit", str(RATE_LIMIT))  # before any push: no process cached it
    users = new_users(1, "rate")
    uuid = users[0][0]
    register(partner, api_pair, users)
    for srv in api_pair:  # connections open before the burst
        assert srv.client.get("/healthz").status_code == 200

    def send(i: int) -> tuple[int, str | None]:
        r = post_push(api_pair[i % 2], partner.api_key, [notification(uuid, 1)])
        return r.status_code, r.headers.get("retry-after")

    began = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(send, range(RATE_REQUESTS)))
    elapsed = time.monotonic() - began

    statuses = Counter(status for status, _ in answers)
    allowed = statuses[200] + statuses[202]
    limited = statuses[429]
    print(f"\nrate limit: {dict(statuses)} in {elapsed:.2f} s")
    assert allowed + limited == RATE_REQUESTS, statuses
    # GCRA: the whole per-minute allowance at once, then one more per interval (60 s / limit)
    # since the first request; the burst normally ends within the first interval.
    assert RATE_LIMIT <= allowed <= RATE_LIMIT + math.floor(elapsed * RATE_LIMIT / 60), (
        statuses,
        elapsed,
    )
    retry_after = [value for status, value in answers if status == 429]
    assert all(value is not None and int(value) >= 1 for value in retry_after), retry_after
