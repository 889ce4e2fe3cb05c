"""`pushgate serve --workers 2`: delivery in two child processes of the serving process.

`pushgate emulate` runs on its own with latency on every platform, so that sends are in flight
long enough for both children to hold leases at once; `serve` (the API in the parent, two
delivery children) is pointed at it. Against the job table on SQLite and PostgreSQL, and with
JetStream carrying the jobs:

- both children deliver, and every job is delivered and settled exactly once, with the
  campaign counters and the parent's /metrics counting each once;
- SIGKILL of one child: the parent starts another, and the jobs the dead one held are sent
  again when their leases run out (a duplicate only for a job it held);
- SIGKILL of the parent leaves no child running; SIGTERM stops them with it, handing their
  sends back;
- a mistaken setting is one line, before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nats
import pytest

from pushgate import names
from tests.support.emulated import (
    FINAL_STATES,
    PLATFORMS,
    EnvServer,
    Standalone,
    children,
    create_emulator_partner,
    device_token,
    notification,
    one_line,
    push_all,
    pushgate,
    rows,
    running,
    wait_for,
)
from tests.support.server import Partner, Server

USERS = 150
CAMPAIGNS = 4  # 600 jobs: more than one child holds at once (256)
LATENCY_MS = 300
LEASE_SECONDS = 30  # pushgate.delivery.worker.LEASE_SECONDS
SETTLE_TIMEOUT = 120  # after the last push is answered; a kill adds a lease
NATS_URL = os.environ.get("PUSHGATE_TEST_NATS", "nats://127.0.0.1:4222")
CHILD = re.compile(r":w(\d)-(\d+)$")  # the lease owner name of a delivery child


@pytest.fixture(params=["table", "jetstream"])
def queue_env(request: pytest.FixtureRequest, backend: str) -> Iterator[dict[str, str]]:
    """The job table as the queue, or JetStream carrying the jobs (on PostgreSQL only: the
    hand-off does not depend on the database)."""
    if request.param == "table":
        yield {}
        return
    if backend != "postgres":
        pytest.skip("JetStream is run on PostgreSQL")
    prefix = f"W{os.getpid()}X{os.urandom(3).hex()}"
    yield {"PUSHGATE_QUEUE_URL": NATS_URL, "PUSHGATE_QUEUE_PREFIX": prefix}

    async def delete() -> None:
        nc = await nats.connect(NATS_URL)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(names.jobs_stream(prefix))
        await nc.close()

    asyncio.run(delete())


def starter(
    standalone: Standalone, backend_env: dict[str, str]
) -> tuple[Callable[..., EnvServer], list[EnvServer]]:
    """Start `serve --workers 2` (and more settings) pointed at the standalone emulators."""
    started: list[EnvServer] = []

    def start(**env: str) -> EnvServer:
        srv = Server(
            standalone.data_dir,
            emulate=False,
            backend_env={**standalone.backend_env, **backend_env},
            env={**standalone.provider_env(), "PUSHGATE_WORKERS": "2", **env},
        )
        started.append(srv)
        return srv.start()

    return start, started


@pytest.fixture
def two_workers(
    standalone: Standalone, queue_env: dict[str, str]
) -> Iterator[Callable[..., EnvServer]]:
    """On either queue."""
    start, started = starter(standalone, queue_env)
    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def two_table_workers(standalone: Standalone) -> Iterator[Callable[..., EnvServer]]:
    """On the job table: for what does not depend on the queue."""
    start, started = starter(standalone, {})
    yield start
    for srv in started:
        srv.stop()


def two_children(pid: int) -> set[int]:
    kids = wait_for(lambda: children(pid) if len(children(pid)) == 2 else None, 20)
    assert kids, f"not two delivery processes: {children(pid)}"
    return set(kids)


def setup_pushes(standalone: Standalone, srv: Server) -> tuple[Partner, list[dict[str, object]]]:
    control = standalone.control
    assert control is not None
    partner = create_emulator_partner(standalone.data_dir, srv)
    partner.update("--rate-limit", "1000000")
    uuids = []
    for n in range(USERS):
        platform = PLATFORMS[n % len(PLATFORMS)]
        token = device_token(platform)
        uuids.append(f"workers-{n}-{token[-6:]}")
        partner.session({"uuid": uuids[-1]}, platform, token)
    for platform in PLATFORMS:
        control.fault(platform, latency_ms=LATENCY_MS)
    return partner, [
        notification(u, camp, ttl=600) for camp in range(1, CAMPAIGNS + 1) for u in uuids
    ]


def leased_owners(srv: Server) -> list[str]:
    return [
        str(r["lease_owner"])
        for r in rows(srv, "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'leased'")
    ]


def job_states(srv: Server) -> Counter[str]:
    return Counter(str(r["state"]) for r in rows(srv, "SELECT state FROM jobs"))


def settled(srv: Server, count: int) -> Counter[str]:
    def final() -> Counter[str] | None:
        states = job_states(srv)
        done = sum(states.values()) >= count and set(states) <= set(FINAL_STATES)
        return states if done else None

    states = wait_for(final, SETTLE_TIMEOUT, 0.25)
    assert states, f"jobs not final: {job_states(srv)}; log: {srv.log_path}"
    return Counter(states)


def accepted_counter(srv: Server) -> int:
    (row,) = rows(
        srv,
        "SELECT CAST(COALESCE(sum(count), 0) AS BIGINT) AS n FROM campaign_stats"
        " WHERE name LIKE 'accepted:%'",
    )
    return int(row["n"])


def metric_accepted(srv: Server) -> float:
    text = httpx.get(srv.base_url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pushgate_delivery_sends_total{") and 'outcome="accepted"' in line
    )


def test_two_delivery_processes_share_the_jobs_and_deliver_each_once(
    standalone: Standalone, two_workers: Callable[..., EnvServer]
) -> None:
    control = standalone.control
    assert control is not None
    srv = two_workers()
    assert srv.proc is not None
    two_children(srv.proc.pid)
    partner, notifications = setup_pushes(standalone, srv)
    answered = push_all(partner, notifications)
    assert len(answered) == USERS * CAMPAIGNS

    seen: set[str] = set()

    def both_hold_leases() -> bool:
        seen.update(m.group(1) for o in leased_owners(srv) if (m := CHILD.search(o)))
        return seen == {"0", "1"}

    assert wait_for(both_hold_leases, 60, 0.02), f"leases held by children {seen} only"
    assert settled(srv, len(answered)) == {"done": len(answered)}
    counts = control.delivered_tokens()
    assert sorted(counts.values()) == [CAMPAIGNS] * USERS  # every push once
    assert set(counts) == set(answered)
    assert accepted_counter(srv) == len(answered)
    # The children's counters reach the parent's /metrics within a second or so.
    assert wait_for(lambda: metric_accepted(srv) == len(answered), 10, 0.2), metric_accepted(srv)


def test_a_killed_delivery_process_is_replaced_and_its_jobs_are_sent_again(
    standalone: Standalone, two_workers: Callable[..., EnvServer]
) -> None:
    control = standalone.control
    assert control is not None
    srv = two_workers()
    assert srv.proc is not None
    partner, notifications = setup_pushes(standalone, srv)
    answered = push_all(partner, notifications)

    def a_child_with_leases() -> tuple[int, set[str]] | None:
        held = rows(srv, "SELECT token, camp_id, lease_owner FROM jobs WHERE state = 'leased'")
        by_child: dict[int, set[str]] = {}
        for r in held:
            if m := CHILD.search(str(r["lease_owner"])):
                by_child.setdefault(int(m.group(2)), set()).add(f"{r['token']}:{r['camp_id']}")
        return max(by_child.items(), key=lambda kv: len(kv[1])) if by_child else None

    found = wait_for(a_child_with_leases, 60, 0.02)
    assert found, "no child held a lease"
    doomed, _ = found
    os.kill(doomed, signal.SIGKILL)
    # What it held when it died (read after the kill: nothing of it moves any more).
    leased_by_doomed = {
        f"{r['token']}:{r['camp_id']}"
        for r in rows(srv, "SELECT token, camp_id, lease_owner FROM jobs WHERE state = 'leased'")
        if (m := CHILD.search(str(r["lease_owner"]))) and int(m.group(2)) == doomed
    }
    replaced = wait_for(
        lambda: len(children(srv.proc.pid)) == 2 and doomed not in children(srv.proc.pid), 30
    )
    assert replaced, f"no new child: {children(srv.proc.pid)}"

    assert settled(srv, len(answered)) == {"done": len(answered)}
    delivered: Counter[str] = Counter()
    for d in control.deliveries():
        delivered[str(d["token"])] += 1
    assert set(delivered) == set(answered)
    extra = sum(delivered.values()) - len(answered)
    assert 0 <= extra <= len(leased_by_doomed)
    assert accepted_counter(srv) == len(answered)  # counted once, whoever sent it twice
    assert srv.proc.poll() is None
    assert "exited with status" in Path(str(srv.log_path)).read_text()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_children_end_with_the_serving_process(
    two_table_workers: Callable[..., EnvServer], how: signal.Signals
) -> None:
    srv = two_table_workers(PUSHGATE_ROLE="worker", PUSHGATE_SHUTDOWN_GRACE="0.5")
    assert srv.proc is not None
    kids = two_children(srv.proc.pid)
    srv.proc.send_signal(how)
    code = srv.proc.wait(60)
    srv.client.close()
    assert code == -how
    assert wait_for(lambda: not any(running(k) for k in kids), 20), "a delivery process outlived it"


def test_sigterm_hands_back_the_childrens_sends(
    standalone: Standalone, two_table_workers: Callable[..., EnvServer]
) -> None:
    control = standalone.control
    assert control is not None
    srv = two_table_workers(PUSHGATE_SHUTDOWN_GRACE="0.5")
    assert srv.proc is not None
    partner, notifications = setup_pushes(standalone, srv)
    for platform in PLATFORMS:
        control.fault(platform, latency_ms=30_000)  # every send hangs past the grace
    answered = push_all(partner, notifications[:40])
    assert wait_for(lambda: job_states(srv) == {"leased": len(answered)}, 30)
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(60) == -signal.SIGTERM
    srv.client.close()
    handed = rows(srv, "SELECT state, last_error, lease_owner FROM jobs")
    assert {(r["state"], r["last_error"], r["lease_owner"]) for r in handed} == {
        ("queued", "handed back at shutdown", None)
    }


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--workers", "0"], {}, "--workers must be a whole number from 1 to 256, not '0'"),
        ([], {"PUSHGATE_WORKERS": "two"}, "PUSHGATE_WORKERS must be a whole number"),
        (["--role", "api", "--workers", "2"], {}, "--workers needs --role worker or all"),
    ],
)
def test_a_mistaken_workers_setting_is_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    done = pushgate("serve", "--data-dir", tmp_path / "data", *args, env=env)
    assert says in one_line(done)
    assert not (tmp_path / "data").exists()  # nothing was started
