"""`pushgate serve --api-processes 2`: the API answered by the serving process and a child of it
on one port, as one service.

Each request here goes on a connection of its own, so the kernel hands them to either process;
the access log's request ids (a prefix per process) show that both answered. Then:

- every push answered is delivered once, jobs queued by the child included (it wakes the
  serving process's worker);
- /metrics counts every request once, whichever process takes the scrape, and never less than
  the scrape before it;
- the rate limit and the bad-key count are one for the service, on the embedded store without
  Redis (a table in the data dir both processes map);
- SIGKILL of the child: another is started and the port keeps answering; SIGKILL of the serving
  process leaves no child; SIGTERM stops both, cleanly;
- a mistaken setting is one line, before anything starts.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.emulated import (
    Control,
    children,
    device_token,
    notification,
    one_line,
    pushgate,
    running,
    wait_for,
)
from tests.support.server import Partner, Server, new_backend_env

PUSH_PATH = "/api/v2/notification/user"
USERS = 60
RATE_LIMIT = 60  # per minute: GCRA interval 1 s, burst 60
RATE_REQUESTS = 100
BAD_KEY_LIMIT = 5
BATCH = 16
MAX_BATCHES = 20
T = TypeVar("T")


def api_server(data_dir: Path, backend: str, **env: str) -> Server:
    return Server(
        data_dir,
        emulate=True,
        backend_env=new_backend_env(backend),
        env={"PUSHGATE_API_PROCESSES": "2", **env},
    )


@pytest.fixture
def two_apis(tmp_path: Path, backend: str) -> Iterator[Server]:
    srv = api_server(tmp_path / "data", backend).start()
    yield srv
    srv.stop()


def api_child(srv: Server) -> int:
    """The pid of the API child (the serving process's other child runs the emulators)."""
    assert srv.proc is not None

    def found() -> int | None:
        for pid in children(srv.proc.pid):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"pushgate.api_processes" in f.read():
                    return pid
        return None

    pid = wait_for(found, 20)
    assert pid, "no API child"
    return int(pid)


def fresh_post(srv: Server, path: str, body: Any, **headers: str) -> httpx.Response:
    """On a connection of its own, so that either process may take it."""
    return httpx.post(srv.base_url + path, json=body, headers=headers, timeout=30.0)


def answering_processes(srv: Server, route: str) -> Counter[str]:
    """Requests of `route` in the access log, by the request id's prefix (one per process)."""
    assert srv.log_path is not None
    seen: Counter[str] = Counter()
    for line in srv.log_path.read_text().splitlines():
        if line.startswith("{") and '"pushgate.access"' in line:
            entry = json.loads(line)
            if entry.get("route") == route:
                seen[entry["request_id"].rsplit("-", 1)[0]] += 1
    return seen


def until_both_answer(srv: Server, route: str, send: Callable[[int], T]) -> list[T]:
    """Requests in concurrent batches, on connections of their own, until both processes have
    answered some (a lone client's connections may all go to the same one)."""
    answers: list[T] = []
    with ThreadPoolExecutor(BATCH) as pool:
        for batch in range(MAX_BATCHES):
            answers += pool.map(send, range(batch * BATCH, (batch + 1) * BATCH))
            if len(answering_processes(srv, route)) == 2:
                return answers
    pytest.fail(f"{len(answers)} requests of {route} all answered by one process")


def register(partner: Partner, count: int) -> dict[str, str]:
    """uuid -> token of new iOS users."""
    tokens = {}
    for n in range(count):
        uuid = f"apis-{n}-{time.time_ns()}"
        token = device_token("ios")
        partner.session({"uuid": uuid}, platform="ios", token=token)
        tokens[uuid] = token
    return tokens


def push_counter(metrics_text: str) -> int:
    """pushgate's count of push requests answered 200, from a scrape."""
    total = 0
    for line in metrics_text.splitlines():
        if line.startswith("pushgate_http_requests_total{") and PUSH_PATH in line:
            total += int(float(line.rsplit(" ", 1)[1])) if 'status="200"' in line else 0
    return total


def test_both_processes_answer_and_every_push_is_delivered_once(two_apis: Server) -> None:
    partner = two_apis.create_partner()
    partner.update("--rate-limit", "1000000")
    tokens = register(partner, USERS)
    control = Control(two_apis.base_url)
    control.clear_deliveries()

    def send(uuid: str) -> int:
        r = fresh_post(
            two_apis, PUSH_PATH, {"api_key": partner.api_key, "notifications": [notification(uuid)]}
        )
        assert r.json()["errors"] == {}, r.text
        return r.status_code

    with ThreadPoolExecutor(BATCH) as pool:
        assert set(pool.map(send, tokens)) == {200}
    processes = answering_processes(two_apis, PUSH_PATH)
    assert len(processes) == 2, processes  # the serving process and the child both answered
    assert sum(processes.values()) == USERS
    counts = control.wait_delivered(list(tokens.values()), timeout=30)
    time.sleep(1.0)  # time for a duplicate, if there were one
    counts = control.delivered_tokens()
    assert {t: counts[t] for t in tokens.values()} == dict.fromkeys(tokens.values(), 1)
    control.close()


def test_metrics_count_every_request_once_whichever_process_answers(two_apis: Server) -> None:
    partner = two_apis.create_partner()
    partner.update("--rate-limit", "1000000", "--gfc-limit", "0")
    tokens = register(partner, 20)
    uuids = list(tokens)

    def send(n: int) -> int:
        body = {"api_key": partner.api_key, "notifications": [notification(uuids[n % 20])]}
        return fresh_post(two_apis, PUSH_PATH, body).status_code

    pushes = until_both_answer(two_apis, PUSH_PATH, send)
    assert set(pushes) == {200}

    def scrape(_: int) -> httpx.Response:
        return httpx.get(two_apis.base_url + "/metrics", timeout=30.0)

    scrapes = until_both_answer(two_apis, "/metrics", scrape)
    assert all(s.status_code == 200 for s in scrapes)
    assert [push_counter(s.text) for s in scrapes] == [len(pushes)] * len(scrapes)
    queued = [
        line for line in scrapes[-1].text.splitlines() if line.startswith("pushgate_push_queued")
    ]
    assert f'pushgate_push_queued_total{{platform="ios"}} {len(pushes)}.0' in queued, queued


def test_the_rate_limit_is_one_for_the_service(two_apis: Server) -> None:
    partner = two_apis.create_partner()
    partner.update("--rate-limit", str(RATE_LIMIT))
    uuid = next(iter(register(partner, 1)))

    def send(_: int) -> int:
        body = {"api_key": partner.api_key, "notifications": [notification(uuid)]}
        return fresh_post(two_apis, PUSH_PATH, body).status_code

    began = time.monotonic()
    with ThreadPoolExecutor(BATCH) as pool:
        statuses = Counter(pool.map(send, range(RATE_REQUESTS)))
    elapsed = time.monotonic() - began
    assert len(answering_processes(two_apis, PUSH_PATH)) == 2
    assert statuses[200] + statuses[429] == RATE_REQUESTS, statuses
    # GCRA: the whole allowance at once, then one more per interval since the first request;
    # two limits apart would have let (nearly) every request through.
    assert RATE_LIMIT <= statuses[200] <= RATE_LIMIT + math.floor(elapsed * RATE_LIMIT / 60), (
        statuses,
        elapsed,
    )


def test_the_bad_key_count_is_one_for_the_service(tmp_path: Path, backend: str) -> None:
    srv = api_server(
        tmp_path / "data",
        backend,
        PUSHGATE_BAD_KEY_LIMIT=str(BAD_KEY_LIMIT),
        PUSHGATE_BAD_KEY_EXEMPT="",
    ).start()
    try:

        def send(n: int) -> int:
            body = {"api_key": f"wrong-{n}", "notifications": []}
            return fresh_post(srv, PUSH_PATH, body).status_code

        statuses = Counter(until_both_answer(srv, PUSH_PATH, send))
        # One count for both: failures past the limit are answered 429 wherever they land,
        # so exactly BAD_KEY_LIMIT wrong keys got the key's own answer.
        assert statuses[429] == statuses.total() - BAD_KEY_LIMIT, statuses
    finally:
        srv.stop()


def test_a_killed_child_is_replaced_and_the_port_keeps_answering(two_apis: Server) -> None:
    doomed = api_child(two_apis)
    with open(f"/proc/{doomed}/stat") as f:
        assert f.read()  # alive
    subprocess.run(["kill", "-KILL", str(doomed)], check=True)
    for _ in range(40):  # the serving process answers alone meanwhile
        assert httpx.get(two_apis.base_url + "/healthz", timeout=10).status_code == 200
    replaced = wait_for(lambda: (pid := api_child(two_apis)) != doomed and pid, 20)
    assert replaced and running(replaced)
    assert two_apis.log_path is not None
    assert re.search(
        r"API process 0 \(pid \d+\) exited with status -9", two_apis.log_path.read_text()
    )


def test_sigkill_of_the_serving_process_leaves_no_child(two_apis: Server) -> None:
    child = api_child(two_apis)
    two_apis.kill()
    assert wait_for(lambda: not running(child), 10), "the API child outlived its parent"


def test_sigterm_stops_both_cleanly(two_apis: Server) -> None:
    child = api_child(two_apis)
    assert two_apis.proc is not None
    two_apis.proc.send_signal(signal.SIGTERM)
    # uvicorn stops gracefully, then raises the signal again as the process's own exit.
    assert two_apis.proc.wait(30) == -signal.SIGTERM
    assert not running(child)
    assert two_apis.log_path is not None
    assert "Traceback" not in two_apis.log_path.read_text()


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--api-processes", "0"], {}, "--api-processes must be a whole number from 1 to 256"),
        ([], {"PUSHGATE_API_PROCESSES": "many"}, "PUSHGATE_API_PROCESSES must be a whole number"),
        (["--role", "worker", "--api-processes", "2"], {}, "--api-processes needs --role api"),
        (
            ["--emulate", "--api-processes", "2"],
            {"PUSHGATE_EMULATOR_PROCESS": "off"},
            "PUSHGATE_EMULATOR_PROCESS=off needs --api-processes 1",
        ),
    ],
)
def test_a_mistaken_api_processes_setting_is_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    done = pushgate("serve", "--data-dir", tmp_path / "data", *args, env=env)
    assert says in one_line(done)
    assert not (tmp_path / "data").exists()  # nothing was started
