"""Overload: what the service cannot take is answered 503 with `Retry-After` at once, before the
body is read, so memory stays bounded under a flood and a refused request changes nothing."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import jobs, notification, rows, wait_for
from tests.integration.conftest import Partner, Server, new_backend_env

BODY_LENGTH = 4_000_000  # announced: under the 5,000,000-byte limit of the API
SENT_BEFORE_WAITING = 2_000_000  # what each flooding client sends, then holds
CLIENTS = 100  # 200 MB held if every request were let in
BUDGET_MB = 16  # PUSHGATE_MAX_REQUEST_MB: room for four such bodies


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def flooded_server(tmp_path: Path, backend: str) -> Iterator[Server]:
    env = {"PUSHGATE_MAX_REQUEST_MB": str(BUDGET_MB)}
    srv = Server(tmp_path / "data", backend_env=new_backend_env(backend), env=env).start()
    yield srv
    srv.stop()


def start_upload(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST /api/v2/notification/user HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n" + f"Content-Length: {BODY_LENGTH}\r\n\r\n".encode()
    )
    # A refused upload is answered and cut off before its body is read: the send may fail.
    with contextlib.suppress(OSError):
        sock.sendall(b" " * SENT_BEFORE_WAITING)
    return sock


def answer_so_far(sock: socket.socket) -> bytes:
    sock.settimeout(0.5)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and data.rstrip().endswith(b"}"):
                break
    return data


def test_a_flood_of_large_uploads_is_refused_at_once_and_memory_stays_bounded(
    flooded_server: Server,
) -> None:
    srv = flooded_server
    assert srv.proc is not None
    before = rss_bytes(srv.proc.pid)
    sockets = [start_upload(srv.port) for _ in range(CLIENTS)]
    try:
        time.sleep(0.5)
        during = rss_bytes(srv.proc.pid)
        answers = [answer_so_far(s) for s in sockets]
    finally:
        for s in sockets:
            s.close()
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    # Four bodies fit the budget; every other upload was answered before its body was sent.
    assert len(refused) >= CLIENTS - BUDGET_MB // 4, [a[:40] for a in answers[:8]]
    head, _, body = refused[0].partition(b"\r\n\r\n")
    assert b"retry-after: 1" in head.lower()
    assert json.loads(body)["error"] == "overloaded"
    assert "request bytes" in json.loads(body)["message"]
    # 200 MB were offered; what was let in is bounded by the budget (plus buffers).
    assert during - before < 5 * BUDGET_MB * 2**20, (before, during)

    # The flood leaves nothing behind: a normal request is served.
    partner = srv.create_partner()
    r = partner.push({"notifications": [notification("nobody")]})
    assert r.status_code == 200, r.text


@pytest.fixture
def api_only_server(tmp_path: Path, backend: str) -> Iterator[Server]:
    """No delivery worker: what is queued stays queued. The queue's bound is 3 jobs."""
    env = {"PUSHGATE_ROLE": "api", "PUSHGATE_MAX_QUEUE_DEPTH": "3"}
    srv = Server(tmp_path / "data", backend_env=new_backend_env(backend), env=env).start()
    yield srv
    srv.stop()


def test_a_full_delivery_queue_refuses_pushes_with_retry_after_and_stores_nothing(
    api_only_server: Server,
) -> None:
    srv = api_only_server
    partner: Partner = srv.create_partner()
    uuids = [f"full-{os.urandom(5).hex()}" for _ in range(4)]
    for uuid in uuids:
        partner.session({"uuid": uuid}, udid=uuid)
    r = partner.push({"notifications": [notification(u, camp_id=7) for u in uuids[:3]]})
    assert r.status_code == 200 and len(r.json()["successes"]) == 3

    def refused() -> dict[str, object] | None:
        answer = partner.push({"notifications": [notification(uuids[3], camp_id=8)]})
        if answer.status_code == 200:
            pytest.fail(f"queued past the bound: {answer.text}")
        return {"status": answer.status_code, "headers": answer.headers, "body": answer.json()}

    # The depth is read every 5 s: the first push after that read is refused.
    time.sleep(5.5)
    found = wait_for(refused, 10, 0.5)
    assert found is not None
    assert found["status"] == 503
    assert found["headers"]["retry-after"] == "1"  # type: ignore[index]
    assert found["body"]["error"] == "overloaded"  # type: ignore[index]
    assert "delivery queue is full" in found["body"]["message"]  # type: ignore[index]
    assert len(jobs(partner)) == 3
    assert rows(srv, "SELECT camp_id FROM campaigns WHERE camp_id = 8") == []
