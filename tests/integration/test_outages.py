"""A part of the infrastructure goes away while the service runs (issue 19): requests meanwhile
get 503 with Retry-After, never 500 nor a hang, nothing of them is kept, and the service
recovers by itself when the part is back. The shared services keep running: the server reaches
Redis or PostgreSQL through a forwarder the test cuts and puts back (tests/integration/tcpproxy.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.integration.conftest import Partner, Server, new_backend_env
from tests.integration.pushlib import notification, row_counts
from tests.integration.tcpproxy import TcpProxy

REQUEST_BUDGET = 12.0  # seconds: the answer comes well within a client's usual timeout


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for srv in started:
        srv.kill()  # a graceful stop would wait on connections the proxy broke


def push(partner: Partner, uuid: str) -> httpx.Response:
    started = time.monotonic()
    answer = partner.push({"notifications": [notification({"uuid": uuid})]})
    assert time.monotonic() - started < REQUEST_BUDGET
    return answer


def until_served(partner: Partner, uuid: str, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while (answer := push(partner, uuid)).status_code == 503 and time.monotonic() < deadline:
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

    proxy.cut()
    before = row_counts(partner)
    assert_unavailable(push(partner, uuid), "Redis")
    assert row_counts(partner) == before, "nothing of the refused push was kept"

    back = TcpProxy("127.0.0.1", 6379, port=port)
    try:
        answer = until_served(partner, uuid)
        assert answer.status_code == 200, answer.text
        assert srv.client.get("/readyz").status_code == 200
    finally:
        back.cut()


def test_a_push_while_the_database_is_away_is_refused_503_and_served_once_it_is_back(
    servers: list[Server], tmp_path: Path, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("the embedded store is a file of the process's own")
    backend_env = new_backend_env(backend)
    db = urlsplit(backend_env["PUSHGATE_DATABASE_URL"])
    proxy = TcpProxy(db.hostname or "127.0.0.1", db.port or 5432)
    port = proxy.port
    backend_env["PUSHGATE_DATABASE_URL"] = urlunsplit(
        db._replace(netloc=f"{db.username}@127.0.0.1:{port}")
    )
    srv = Server(tmp_path / "data", backend_env=backend_env)
    servers.append(srv.start())
    partner = srv.create_partner()
    uuid = "u-db"
    partner.session({"uuid": uuid})
    assert push(partner, uuid).status_code == 200

    proxy.cut()
    assert_unavailable(push(partner, uuid), "database")

    back = TcpProxy(db.hostname or "127.0.0.1", db.port or 5432, port=port)
    try:
        answer = until_served(partner, uuid)
        assert answer.status_code == 200, answer.text
    finally:
        back.cut()
