"""The server's log: one JSON object per line, an access line per request carrying its request
id, and no secret or personal data (docs/operations.md, "Logs")."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.pushes import notification
from tests.support.server import Partner, Server, new_backend_env

SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def log_lines(server: Server) -> list[str]:
    assert server.log_path is not None
    return server.log_path.read_text().splitlines()


def records(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_lines(server)]


def access_line(server: Server, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The access line of a request (written just after its answer is sent)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            r
            for r in records(server)
            if r["logger"] == "pushgate.access" and r.get("request_id") == request_id
        ]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)


def test_a_request_is_logged_once_with_the_request_id_it_was_sent_with(server: Server) -> None:
    r = server.client.get("/healthz", headers={"X-Request-Id": "probe-1.A_b"})

    assert r.headers["x-request-id"] == "probe-1.A_b"
    line = access_line(server, "probe-1.A_b")
    assert line == {
        "ts": line["ts"],
        "level": "INFO",
        "logger": "pushgate.access",
        "msg": line["msg"],
        "request_id": "probe-1.A_b",
        "method": "GET",
        "route": "/healthz",
        "status": 200,
        "duration_ms": line["duration_ms"],
    }
    assert TIMESTAMP.fullmatch(line["ts"])
    assert line["msg"].startswith("GET /healthz 200 ")
    assert 0 <= line["duration_ms"] < 10_000


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "semi;colon", "ünïcode", ""])
def test_an_unfit_request_id_is_replaced_by_a_new_one(server: Server, sent: str) -> None:
    r = server.client.get("/healthz", headers={"X-Request-Id": sent.encode()})

    given = r.headers["x-request-id"]
    assert given != sent
    assert SANE_ID.fullmatch(given)
    assert access_line(server, given)["route"] == "/healthz"


def test_requests_without_an_id_get_distinct_ones(server: Server) -> None:
    ids = {server.client.get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(SANE_ID.fullmatch(i) for i in ids)


def test_a_push_is_logged_by_route_without_keys_identifiers_or_tokens(partner: Partner) -> None:
    server = partner.server
    token = "ad" * 32
    partner.session(
        {"email": "log-secret@example.com", "phone_number": "+6599887766"}, "ios", token
    )

    r = server.client.post(
        f"/api/v2/notification/user?api_key={partner.api_key}",
        json={
            "api_key": partner.api_key,
            "notifications": [notification({"email": "log-secret@example.com"}, camp_id=5)],
        },
        headers={"X-Request-Id": "push-42"},
    )

    assert r.status_code == 200, r.text
    line = access_line(server, "push-42")
    assert (line["method"], line["route"], line["status"]) == (
        "POST",
        "/api/v2/notification/user",
        200,
    )
    text = "\n".join(log_lines(server))
    for secret in (partner.api_key, partner.sdk_key, "log-secret", "6599887766", token):
        assert secret not in text


def test_every_line_is_one_json_object_with_the_common_fields(server: Server) -> None:
    server.client.get("/no/such/path")

    lines = records(server)

    assert lines
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line), line
        assert TIMESTAMP.fullmatch(line["ts"]), line


@pytest.fixture
def text_server(tmp_path: Path, backend: str) -> Iterator[Server]:
    srv = Server(
        tmp_path / "data", backend_env=new_backend_env(backend), env={"PUSHGATE_LOG_FORMAT": "text"}
    ).start()
    yield srv
    srv.stop()


def test_text_format_on_request(text_server: Server) -> None:
    text_server.client.get("/healthz", headers={"X-Request-Id": "txt-1"})

    pattern = re.compile(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO pushgate.access"
        r" GET /healthz 200 \d+\.\dms request_id=txt-1"
    )
    deadline = time.monotonic() + 5
    while not any(pattern.fullmatch(line) for line in log_lines(text_server)):
        assert time.monotonic() < deadline, log_lines(text_server)
        time.sleep(0.05)
