"""/healthz (liveness) and /readyz (the store, the queue and Redis reachable), docs/operations.md.

The failing paths never stop the shared services: a server is pointed at a Redis port with
nothing listening, or reaches NATS / PostgreSQL through a forwarder the test cuts.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import nats
import pytest

from tests.support.server import Server, free_port, new_backend_env
from tests.support.tcpproxy import TcpProxy, database_through_proxy

CHECK_BUDGET = 2.5  # seconds: every check has one, and they run concurrently
NATS_URL = os.environ.get("PUSHGATE_TEST_NATS", "nats://127.0.0.1:4222")


async def delete_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for srv in started:
        srv.stop()


def start(
    servers: list[Server], tmp_path: Path, backend: str, **env: str
) -> tuple[Server, dict[str, str]]:
    backend_env = new_backend_env(backend)
    srv = Server(tmp_path / f"data{len(servers)}", backend_env=backend_env, env=env)
    servers.append(srv.start())
    return srv, backend_env


def readyz(server: Server, request_id: str | None = None) -> httpx.Response:
    started = time.monotonic()
    headers = {"X-Request-Id": request_id} if request_id else {}
    r = server.client.get("/readyz", headers=headers)
    assert time.monotonic() - started < CHECK_BUDGET
    return r


def wait_unready(server: Server, timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while (r := readyz(server)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    return r


def test_ready_and_live(server: Server) -> None:
    r = server.client.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})
    r = server.client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_unreachable_redis_makes_the_server_unready_but_still_alive(
    servers: list[Server], tmp_path: Path, backend: str
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    srv, _ = start(servers, tmp_path, backend, PUSHGATE_REDIS_URL=nowhere)

    r = readyz(srv, "probe-77")

    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "failing": ["redis"]}
    assert r.headers["retry-after"] == "5"
    assert srv.client.get("/healthz").status_code == 200
    # Logged while handling the probe, so with its request id.
    assert srv.log_path is not None
    lines = [json.loads(x) for x in srv.log_path.read_text().splitlines() if x.startswith("{")]
    warning = [x for x in lines if x["logger"] == "pushgate.health"]
    assert [(x["level"], x["msg"], x.get("request_id")) for x in warning] == [
        ("WARNING", "not ready: redis", "probe-77")
    ]


def test_a_broker_that_goes_away_makes_the_server_unready(
    servers: list[Server], tmp_path: Path, backend: str
) -> None:
    nats = urlsplit(NATS_URL)
    proxy = TcpProxy(nats.hostname or "127.0.0.1", nats.port or 4222)
    prefix = f"T{os.getpid()}R{time.time_ns() % 10**9}"
    url = urlunsplit((nats.scheme, f"127.0.0.1:{proxy.port}", "", "", ""))
    try:
        srv, _ = start(
            servers, tmp_path, backend, PUSHGATE_QUEUE_URL=url, PUSHGATE_QUEUE_PREFIX=prefix
        )
        assert readyz(srv).status_code == 200

        proxy.cut()
        r = wait_unready(srv)

        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "failing": ["queue"]}
        assert srv.client.get("/healthz").status_code == 200
    finally:
        proxy.cut()
        asyncio.run(delete_stream(f"{prefix}_JOBS"))


def test_a_database_that_goes_away_makes_the_server_unready(
    servers: list[Server], tmp_path: Path, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("the embedded store is a file of the process's own")
    backend_env = new_backend_env(backend)
    proxy = database_through_proxy(backend_env)
    srv = Server(tmp_path / "data", backend_env=backend_env)
    servers.append(srv.start())
    try:
        assert readyz(srv).status_code == 200

        proxy.cut()
        r = wait_unready(srv)

        assert r.status_code == 503
        # The job table lives in the same database.
        assert r.json() == {"status": "unavailable", "failing": ["store", "queue"]}
        assert srv.client.get("/healthz").status_code == 200
    finally:
        proxy.cut()
        # A graceful stop would wait for the pool's connection attempts to time out.
        servers.remove(srv)
        srv.kill()
