"""A part of the infrastructure goes away while the service runs (issue 19): requests meanwhile
get 503 with Retry-After, never 500 nor a hang, nothing of them is kept, and the service
recovers by itself when the part is back. The shared services keep running: the server reaches
Redis or PostgreSQL through a forwarder the test cuts and puts back (tests/support/tcpproxy.py).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.private_services import PrivateRedis
from tests.support.pushes import SETTINGS_DELAY, jobs, notification, row_counts, wait_until
from tests.support.server import Partner, Server, new_backend_env
from tests.support.tcpproxy import TcpProxy, database_through_proxy

REQUEST_BUDGET = 12.0  # seconds: the answer comes well within a client's usual timeout


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for srv in started:
        srv.kill()  # a graceful stop would wait on connections the proxy broke


def push(partner: Partner, uuid: str, **extra: object) -> httpx.Response:
    started = time.monotonic()
    answer = partner.push({"notifications": [notification({"uuid": uuid}, **extra)]})
    assert time.monotonic() - started < REQUEST_BUDGET
    return answer


def until_served(
    partner: Partner, uuid: str, timeout: float = 30.0, **extra: object
) -> httpx.Response:
    """The first answer that is not a 503, pushing again while the part is coming back."""
    deadline = time.monotonic() + timeout
    while (answer := push(partner, uuid, **extra)).status_code == 503:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    return answer


def assert_unavailable(answer: httpx.Response, part: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.json() == {
        "error": "unavailable",
        "message": f"the {part} cannot be reached; retry after 5 seconds",
    }


def test_a_push_while_redis_is_away_is_refused_503_and_served_once_it_is_back(
    servers: list[Server], tmp_path: Path, backend: str
) -> None:
    proxy = TcpProxy("127.0.0.1", 6379)
    port = proxy.port
    srv = Server(
        tmp_path / "data",
        backend_env=new_backend_env(backend),
        env={"PUSHGATE_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
    )
    servers.append(srv.start())
    partner = srv.create_partner()
    uuid = "u-redis"
    partner.session({"uuid": uuid})
    assert push(partner, uuid).status_code == 200
    # Its delivery settled first: the counters it adds are not the refused push's.
    assert wait_until(lambda: [j["state"] for j in jobs(partner)] == ["done"])

    proxy.cut()
    before = row_counts(partner)
    assert_unavailable(push(partner, uuid), "Redis")
    assert row_counts(partner) == before, "nothing of the refused push was kept"

    back = TcpProxy("127.0.0.1", 6379, port=port)
    try:
        answer = until_served(partner, uuid)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while srv.client.get("/readyz").status_code != 200:  # its own Redis client reconnects
            assert time.monotonic() < deadline, "still not ready"
            time.sleep(0.2)
    finally:
        back.cut()


def test_a_push_while_the_database_is_away_is_refused_503_and_served_once_it_is_back(
    servers: list[Server], tmp_path: Path, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("the embedded store is a file of the process's own")
    backend_env = new_backend_env(backend)
    proxy = database_through_proxy(backend_env)
    srv = Server(tmp_path / "data", backend_env=backend_env)
    servers.append(srv.start())
    partner = srv.create_partner()
    uuid = "u-db"
    partner.session({"uuid": uuid})
    assert push(partner, uuid).status_code == 200

    proxy.cut()
    assert_unavailable(push(partner, uuid), "database")

    back = TcpProxy(*proxy.target, port=proxy.port)
    try:
        answer = until_served(partner, uuid)
        assert answer.status_code == 200, answer.text
    finally:
        back.cut()


def test_a_user_at_the_frequency_cap_stays_capped_after_redis_comes_back_empty(
    servers: list[Server], tmp_path: Path, backend: str
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    private = PrivateRedis()
    private.start()
    try:
        srv = Server(
            tmp_path / "data",
            backend_env=new_backend_env(backend),
            env={"PUSHGATE_REDIS_URL": f"redis://127.0.0.1:{private.port}/0"},
        )
        servers.append(srv.start())
        partner = srv.create_partner()
        partner.update("--gfc-limit", "1")
        time.sleep(SETTINGS_DELAY)
        partner.session({"uuid": "capped"}, token="18" * 32)

        first = partner.push(
            {"notifications": [notification({"uuid": "capped"}, GFC_enabled=True)]}
        )
        assert first.json()["successes"] == [{"INSIDER.device_token": "18" * 32}]

        private.stop()  # restarted without persistence: it comes back empty
        private.start()
        again = until_served(partner, "capped", GFC_enabled=True)
        assert again.status_code == 200, again.text
        assert again.json() == {
            "successes": [],
            "errors": {"UserGloballyCapped": [{"uuid": "capped"}]},
        }
    finally:
        private.destroy()
