"""Idempotency-Key on the push and upsert endpoints (contract.md, "Idempotent requests"; issue
17): a retried request is answered as the first was, byte for byte, and changes nothing again;
a different body with the key is 422, a request still in flight 409, a malformed key 400; 4xx
answers are not kept; it holds across a restart, in async mode, and between partners."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.pushes import PUSH_PATH, notification, row_counts
from tests.support.server import Partner, Server, new_backend_env

REUSED = {
    "error": "idempotency_key_reused",
    "message": "This Idempotency-Key was used with a different request body.",
}
IN_USE = {
    "error": "idempotency_key_in_use",
    "message": "A request with this Idempotency-Key is being processed.",
}


def push(partner: Partner, key: str | None, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps({"api_key": partner.api_key, **body}).encode()
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return partner.server.client.post(PUSH_PATH, content=raw, headers=headers)


def a_push(uuid: str, camp_id: int = 1, **extra: Any) -> dict[str, Any]:
    return {"notifications": [notification({"uuid": uuid}, camp_id)], **extra}


def jobs_of(partner: Partner) -> int:
    return row_counts(partner)["jobs"]


def test_the_same_key_and_body_replays_the_answer_and_sends_nothing_again(
    partner: Partner,
) -> None:
    partner.session({"uuid": "once"})
    first = push(partner, "order-1042", a_push("once"))
    assert first.status_code == 200 and first.json()["successes"], first.text
    assert "idempotent-replayed" not in first.headers
    again = push(partner, "order-1042", a_push("once"))
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert jobs_of(partner) == 1


def test_the_same_key_with_another_body_is_422_and_changes_nothing(partner: Partner) -> None:
    partner.session({"uuid": "first"})
    partner.session({"uuid": "second"})
    assert push(partner, "k-422", a_push("first")).status_code == 200
    other = push(partner, "k-422", a_push("second"))
    assert other.status_code == 422
    assert other.json() == REUSED
    # (The first push's delivery may add its counters meanwhile: jobs tell what was sent.)
    assert jobs_of(partner) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_400_and_changes_nothing(partner: Partner, key: str) -> None:
    partner.session({"uuid": "malformed"})
    raw = json.dumps({"api_key": partner.api_key, **a_push("malformed")}).encode()
    answer = partner.server.client.post(
        PUSH_PATH, content=raw, headers={"Idempotency-Key": key.encode("utf-8")}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_idempotency_key"
    assert jobs_of(partner) == 0


def test_a_4xx_is_not_kept_so_the_corrected_request_runs(partner: Partner) -> None:
    partner.session({"uuid": "fixed"})
    wrong = push(partner, "k-fix", {"notifications": [{"identifiers": {"uuid": "fixed"}}]})
    assert wrong.status_code == 400
    right = push(partner, "k-fix", a_push("fixed"))
    assert right.status_code == 200 and right.json()["successes"], right.text
    assert "idempotent-replayed" not in right.headers


def test_keys_belong_to_their_partner(server: Server) -> None:
    one, two = server.create_partner(), server.create_partner()
    for partner in (one, two):
        partner.session({"uuid": "shared-name"})
        assert push(partner, "same-key", a_push("shared-name")).status_code == 200
        assert jobs_of(partner) == 1


def test_concurrent_duplicates_send_once(partner: Partner) -> None:
    partner.session({"uuid": "racer"})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: push(partner, "race", a_push("racer")), range(16)))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 409}, [a.text for a in answers]
    fresh = [a for a in answers if a.status_code == 200 and "idempotent-replayed" not in a.headers]
    assert len(fresh) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json() == IN_USE and answer.headers["retry-after"] == "1"
        elif answer is not fresh[0]:
            assert answer.content == fresh[0].content
    assert jobs_of(partner) == 1


def test_async_mode_replays_its_202_and_queues_once(partner: Partner) -> None:
    partner.session({"uuid": "later"})
    first = push(partner, "async-1", a_push("later", **{"async": True}))
    assert first.status_code == 202, first.text
    again = push(partner, "async-1", a_push("later", **{"async": True}))
    assert again.status_code == 202 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    rows = row_counts(partner)
    assert rows["async_requests"] + rows["jobs"] == 1


def test_upsert_replays_too(partner: Partner) -> None:
    body = {"users": [{"identifiers": {"uuid": "u-upsert"}, "attributes": {"name": "Ada"}}]}
    headers = {
        "X-PARTNER-NAME": partner.name,
        "X-REQUEST-TOKEN": partner.request_token,
        "Idempotency-Key": "upsert-1",
    }
    client = partner.server.client
    first = client.post("/api/user/v1/upsert", json=body, headers=headers)
    assert first.status_code == 200, first.text
    again = client.post("/api/user/v1/upsert", json=body, headers=headers)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    other = client.post("/api/user/v1/upsert", json={"users": body["users"] * 2}, headers=headers)
    assert other.status_code == 422 and other.json() == REUSED


def test_a_key_survives_a_killed_server(tmp_path: Path, backend: str) -> None:
    backend_env = new_backend_env(backend)
    srv = Server(tmp_path / "data", backend_env=backend_env).start()
    partner = srv.create_partner()
    partner.session({"uuid": "kept"})
    first = push(partner, "survivor", a_push("kept"))
    assert first.status_code == 200
    srv.kill()
    again_srv = Server(tmp_path / "data", backend_env=backend_env).start()
    try:
        partner.server = again_srv
        again = push(partner, "survivor", a_push("kept"))
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert jobs_of(partner) == 1
    finally:
        again_srv.stop()


def test_a_random_key_is_fine(partner: Partner) -> None:
    partner.session({"uuid": "random"})
    assert push(partner, os.urandom(16).hex(), a_push("random")).status_code == 200


def test_concurrent_duplicates_across_two_api_processes_on_postgresql_send_once(
    tmp_path: Path,
) -> None:
    """Two API processes on one PostgreSQL (`serve --api-processes 2`): the duplicates land on
    both, and the key, claimed in the database, lets one of them send."""
    srv = Server(
        tmp_path / "data",
        backend_env=new_backend_env("postgres"),
        env={"PUSHGATE_API_PROCESSES": "2"},
    ).start()
    try:
        partner = srv.create_partner()
        partner.session({"uuid": "two-racer"})
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda _: push(partner, "race-2", a_push("two-racer")), range(24))
            )
        assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
        fresh = [
            a for a in answers if a.status_code == 200 and "idempotent-replayed" not in a.headers
        ]
        assert len(fresh) == 1
        assert jobs_of(partner) == 1
    finally:
        srv.stop()
