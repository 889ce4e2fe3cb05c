""" "Answered means queued" (contract.md: a synchronous answer is given once every send it
lists in `successes` is durably queued), checked by SIGKILLing a loaded server."""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx

from tests.support.server import Partner, Server

USERS = 200
THREADS = 8
ANSWERED_BEFORE_KILL = 150
USERS_PER_REQUEST = 3


def notification(uuid: str, camp_id: int) -> dict[str, Any]:
    return {
        "identifiers": {"uuid": uuid},
        "camp_id": camp_id,
        "camp_name": f"durability {camp_id}",
        "title": "t",
        "message": "m",
        "image_url": "https://img.example/i.jpg",
    }


def register_users(partner: Partner, count: int) -> dict[str, str]:
    """uuid -> device token, one ios device per user."""
    tokens: dict[str, str] = {}
    for i in range(count):
        uuid, token = f"dur-{i}-{os.urandom(4).hex()}", os.urandom(32).hex()
        partner.session({"uuid": uuid}, token=token, udid=f"udid-{uuid}")
        tokens[uuid] = token
    return tokens


def jobs_by_camp_and_token(server: Server, partner: Partner) -> Counter[tuple[int, str]]:
    with closing(server.db()) as db:
        rows = db.execute(
            "SELECT j.camp_id, j.token, count(*) FROM jobs j JOIN partners p"
            " ON p.id = j.partner_id WHERE p.name = ? GROUP BY j.camp_id, j.token",
            (partner.name,),
        ).fetchall()
    return Counter({(int(camp), str(token)): int(n) for camp, token, n in rows})


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_every_answered_success_survives_sigkill_as_exactly_one_job(start_server: Any) -> None:
    srv: Server = start_server()
    partner = srv.create_partner()
    partner.update("--rate-limit", "1000000")  # before its first request: nothing cached yet
    tokens = register_users(partner, USERS)
    uuids = list(tokens)

    camp_ids = itertools.count(1)
    lock = threading.Lock()
    answered: dict[int, list[str]] = {}  # camp_id -> tokens reported in successes
    expected: dict[int, set[str]] = {}  # camp_id -> tokens of the targeted users
    interrupted: list[str] = []  # requests cut off by the kill (not refused connections)
    unexpected: list[str] = []
    stop = threading.Event()

    def fire(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=srv.base_url, timeout=30.0) as client:
            while not stop.is_set():
                with lock:
                    camp = next(camp_ids)
                targets = rng.sample(uuids, USERS_PER_REQUEST)
                body = {
                    "api_key": partner.api_key,
                    "notifications": [notification(u, camp) for u in targets],
                }
                try:
                    r = client.post("/api/v2/notification/user", json=body)
                except httpx.ConnectError:
                    return
                except httpx.TransportError as exc:
                    with lock:
                        interrupted.append(type(exc).__name__)
                    return
                with lock:
                    if r.status_code == 200:
                        answer = r.json()
                        answered[camp] = [s["INSIDER.device_token"] for s in answer["successes"]]
                        expected[camp] = {tokens[u] for u in targets}
                    else:
                        unexpected.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=fire, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    reached = wait_for(lambda: len(answered) >= ANSWERED_BEFORE_KILL, timeout=60)
    srv.kill()  # SIGKILL while the threads still have requests in flight
    stop.set()
    for t in threads:
        t.join(timeout=30)

    assert reached, f"only {len(answered)} answers before the kill"
    assert unexpected == []
    assert interrupted, "no request was in flight at the kill; the test proved nothing"
    for camp, sent in answered.items():
        assert sorted(sent) == sorted(expected[camp]), (camp, sent, expected[camp])

    restarted: Server = start_server(data_dir=srv.data_dir)
    jobs = jobs_by_camp_and_token(restarted, partner)
    lost = [
        (camp, token)
        for camp, sent in answered.items()
        for token in sent
        if (camp, token) not in jobs
    ]
    twice = {key: n for key, n in jobs.items() if n != 1}
    assert lost == [], f"{len(lost)} answered sends have no job after the crash"
    assert twice == {}, "sends queued more than once"


def test_async_requests_accepted_before_sigkill_are_processed_after_restart(
    start_server: Any,
) -> None:
    srv: Server = start_server()
    partner = srv.create_partner()
    partner.update("--rate-limit", "1000000")
    tokens = register_users(partner, 40)
    uuids = list(tokens)
    rng = random.Random(7)

    accepted: dict[int, set[str]] = {}
    with httpx.Client(base_url=srv.base_url, timeout=30.0) as client:
        for camp in range(1, 31):
            targets = rng.sample(uuids, 5)
            r = client.post(
                "/api/v2/notification/user",
                json={
                    "api_key": partner.api_key,
                    "async": True,
                    "notifications": [notification(u, camp) for u in targets],
                },
            )
            assert r.status_code == 202, r.text
            assert r.json() == {"message": "Async request accepted"}
            accepted[camp] = {tokens[u] for u in targets}
    srv.kill()  # right after the last 202

    want = Counter({(camp, token): 1 for camp, ts in accepted.items() for token in ts})
    restarted: Server = start_server(data_dir=srv.data_dir)
    wait_for(lambda: set(jobs_by_camp_and_token(restarted, partner)) >= set(want), timeout=20)
    # let a second pass (a duplicate processing) show itself, if there is one
    time.sleep(1.5)
    assert jobs_by_camp_and_token(restarted, partner) == want
    with closing(restarted.db()) as db:
        pending = db.execute("SELECT count(*) FROM async_requests").fetchone()[0]
    assert pending == 0


def test_a_restarted_server_keeps_serving_the_users_registered_before_the_kill(
    start_server: Any,
) -> None:
    srv: Server = start_server()
    partner = srv.create_partner()
    token = os.urandom(32).hex()
    partner.session({"uuid": "survivor"}, token=token)
    srv.kill()
    restarted: Server = start_server(data_dir=srv.data_dir)
    partner.server = restarted
    r = partner.push({"notifications": [notification("survivor", 1)]})
    assert r.status_code == 200
    assert r.json() == {"successes": [{"INSIDER.device_token": token}], "errors": {}}
