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

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.emulated import jobs, notification, rows, wait_for
from tests.support.server import Partner, Server, new_backend_env

BODY_LENGTH = 4_000_000  # announced: under the 5,000,000-byte limit of the API
SENT_BEFORE_WAITING = 2_000_000  # what each flooding client sends, then holds
CLIENTS = 100  # 200 MB held if every request were let in
BUDGET_MB = 16  # PUSHGATE_MAX_REQUEST_MB: room for four such bodies
ADMITTED = BUDGET_MB // 4  # uploads let in; every other one is refused
PUSH_PATH = "/api/v2/notification/user"
FLOOD_DEADLINE = 30.0  # seconds for the server to take in what the flood sent


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


def refused_uploads(srv: Server) -> int:
    """Pushes answered 503 so far, by the server's /metrics (never refused itself)."""
    text = httpx.get(srv.base_url + "/metrics", timeout=10).text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "pushgate_http_requests_total"
            and sample.labels.get("endpoint") == PUSH_PATH
            and sample.labels.get("status") == "503"
        )
    )


def unread_bytes(port: int) -> int:
    """Bytes sent to the server on `port` that it has not read yet (Linux /proc/net/tcp, open
    connections): those waiting in its receive queues, and those its clients still queue."""
    unread = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "01":  # ESTABLISHED
            continue
        tx_queue, _, rx_queue = fields[4].partition(":")
        if int(fields[1].rpartition(":")[2], 16) == port:  # the server's end
            unread += int(rx_queue, 16)
        elif int(fields[2].rpartition(":")[2], 16) == port:  # a client's end
            unread += int(tx_queue, 16)
    return unread


def wait_for_the_flood(srv: Server) -> tuple[int, int]:
    """Until the server has dealt with every upload (answered 503, or let in) and has read all
    that the clients sent it: what it holds is then at its peak. Returns (refused, unread)."""

    def taken_in() -> tuple[int, int] | None:
        seen = (refused_uploads(srv), unread_bytes(srv.port))
        return seen if seen[0] >= CLIENTS - ADMITTED and seen[1] == 0 else None

    seen = wait_for(taken_in, FLOOD_DEADLINE, 0.1)
    if seen is None:
        pytest.fail(
            f"the flood was not taken in within {FLOOD_DEADLINE} s: "
            f"{refused_uploads(srv)} of {CLIENTS} uploads refused, "
            f"{unread_bytes(srv.port)} bytes unread"
        )
    return seen


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
        wait_for_the_flood(srv)
        during = rss_bytes(srv.proc.pid)
        answers = [answer_so_far(s) for s in sockets]
    finally:
        for s in sockets:
            s.close()
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    # Four bodies fit the budget; every other upload was answered before its body was sent.
    assert len(refused) >= CLIENTS - ADMITTED, [a[:40] for a in answers[:8]]
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
