"""Webhooks end to end (contract.md, "Webhooks"; issue 17): a partner registers a URL, pushes
are delivered to the emulators, and every event reaches a real HTTP receiver signed so that the
Standard Webhooks library (not our code) verifies it; failures are retried with the same id,
410 disables, and URLs into the service's own network are refused."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.emulated import Control, notification, wait_for
from tests.support.server import Partner, Server, new_backend_env

ALLOW_LOOPBACK = {"PUSHGATE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every request and answers the statuses it is
    told, in turn (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                headers[":path"] = self.path
                with lock:
                    outer.requests.append((headers, body))
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", "/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Every request's body, each verified with the Standard Webhooks library."""
        verifier = Webhook(secret)
        return [dict(verifier.verify(body, headers)) for headers, body in list(self.requests)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("hooks") / "data",
        backend_env=new_backend_env(backend),
        env=ALLOW_LOOPBACK,
    )
    srv.start()
    yield srv
    srv.stop()


def webhook(partner: Partner, method: str, body: Any = None, path: str = "") -> httpx.Response:
    return partner.server.client.request(
        method,
        "/api/v1/webhook" + path,
        headers={"X-API-KEY": partner.api_key},
        content=None if body is None else json.dumps(body).encode(),
    )


def push(partner: Partner, uuid: str, camp_id: int = 1) -> None:
    answer = partner.push({"notifications": [notification(uuid, camp_id)]})
    assert answer.status_code == 200 and answer.json()["errors"] == {}, answer.text


def test_registered_webhook_receives_signed_push_events(
    hook_server: Server, receiver: Receiver
) -> None:
    partner = hook_server.create_partner()
    created = webhook(partner, "PUT", {"url": receiver.url})
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    assert created.json()["events"][0] == "push.accepted"  # absent: every event
    status = webhook(partner, "GET").json()
    assert status == {
        "url": receiver.url,
        "events": created.json()["events"],
        "enabled": True,
        "last_error": None,
    }

    token = os.urandom(32).hex()
    insider_id = partner.session({"uuid": "hooked"}, token=token)
    push(partner, "hooked", camp_id=41)
    assert wait_for(lambda: receiver.requests, timeout=15)
    (event,) = receiver.events(secret)
    assert event["type"] == "push.accepted"
    assert event["data"] == {
        "camp_id": 41,
        "platform": "ios",
        "insider_id": insider_id,
        "device_token": token,
    }
    headers = receiver.requests[0][0]
    assert headers["webhook-id"].startswith("msg_")


def test_a_dead_token_tells_push_failed_and_device_unregistered(
    hook_server: Server, receiver: Receiver
) -> None:
    partner = hook_server.create_partner()
    secret = webhook(partner, "PUT", {"url": receiver.url}).json()["secret"]
    token = os.urandom(32).hex()
    control = Control(hook_server.base_url)
    control.token_outcome("ios", token, "BadDeviceToken")
    control.close()
    partner.session({"uuid": "gone"}, token=token)
    push(partner, "gone", camp_id=42)
    assert wait_for(lambda: len(receiver.requests) >= 2, timeout=15)
    by_type = {e["type"]: e["data"] for e in receiver.events(secret)}
    assert by_type["push.failed"]["reason"] == "BadDeviceToken"
    assert by_type["push.failed"]["camp_id"] == 42
    assert by_type["device.unregistered"]["device_token"] == token


def test_only_the_events_asked_for_are_sent(hook_server: Server, receiver: Receiver) -> None:
    partner = hook_server.create_partner()
    answer = webhook(partner, "PUT", {"url": receiver.url, "events": ["push.failed"]})
    assert answer.json()["events"] == ["push.failed"]
    partner.session({"uuid": "fine"})
    push(partner, "fine")
    time.sleep(3)  # an accepted push would have been told by now
    assert receiver.requests == []


def test_a_failed_delivery_is_tried_again_with_the_same_id(
    hook_server: Server, receiver: Receiver
) -> None:
    partner = hook_server.create_partner()
    secret = webhook(partner, "PUT", {"url": receiver.url}).json()["secret"]
    receiver.statuses = [500]
    partner.session({"uuid": "again"})
    push(partner, "again")
    assert wait_for(lambda: len(receiver.requests) >= 2, timeout=20)  # 5 s later
    first, second = receiver.requests[:2]
    assert first[0]["webhook-id"] == second[0]["webhook-id"]
    assert [e["type"] for e in receiver.events(secret)] == ["push.accepted"] * 2
    assert wait_for(lambda: webhook(partner, "GET").json()["last_error"] == "HTTP 500", 5)


def test_410_gone_disables_the_webhook(hook_server: Server, receiver: Receiver) -> None:
    partner = hook_server.create_partner()
    webhook(partner, "PUT", {"url": receiver.url})
    receiver.statuses = [410]
    partner.session({"uuid": "unwanted"})
    push(partner, "unwanted")
    assert wait_for(lambda: not webhook(partner, "GET").json()["enabled"], timeout=15)
    assert "410" in webhook(partner, "GET").json()["last_error"]
    push(partner, "unwanted", camp_id=2)
    time.sleep(2)
    assert len(receiver.requests) == 1  # nothing more once disabled


def test_a_rotated_secret_signs_what_follows(hook_server: Server, receiver: Receiver) -> None:
    partner = hook_server.create_partner()
    first = webhook(partner, "PUT", {"url": receiver.url}).json()["secret"]
    rotated = webhook(partner, "POST", path="/rotate-secret")
    assert rotated.status_code == 200
    second = rotated.json()["secret"]
    assert second != first
    again = webhook(partner, "PUT", {"url": receiver.url})
    assert "secret" not in again.json()  # shown on creation and rotation only
    partner.session({"uuid": "rotated"})
    push(partner, "rotated")
    assert wait_for(lambda: receiver.requests, timeout=15)
    assert receiver.events(second)[0]["type"] == "push.accepted"


def test_delete_removes_it(hook_server: Server, receiver: Receiver) -> None:
    partner = hook_server.create_partner()
    webhook(partner, "PUT", {"url": receiver.url})
    assert webhook(partner, "DELETE").status_code == 204
    missing = webhook(partner, "GET")
    assert missing.status_code == 404
    assert missing.json()["error"] == "webhook_not_found"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"url": "http://127.0.0.1:9/x"}, "invalid_webhook_url"),  # not allowed on this server
        ({"url": "https://169.254.169.254/latest/meta-data"}, "invalid_webhook_url"),
        ({"url": "https://10.0.0.1/"}, "invalid_webhook_url"),
        ({"url": "https://localhost/"}, "invalid_webhook_url"),
        ({"url": "ftp://example.com/"}, "invalid_webhook_url"),
        ({"url": 5}, "invalid_webhook_url"),
        ({"url": "https://8.8.8.8/", "events": ["push.sent"]}, "invalid_webhook_events"),
    ],
)
def test_bad_registrations_are_refused_and_store_nothing(
    server: Server, body: Any, error: str
) -> None:
    partner = server.create_partner()
    answer = webhook(partner, "PUT", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error
    assert webhook(partner, "GET").status_code == 404


def test_a_body_that_is_not_json_or_a_wrong_key_is_refused(server: Server) -> None:
    partner = server.create_partner()
    answer = partner.server.client.put(
        "/api/v1/webhook", headers={"X-API-KEY": partner.api_key}, content=b"{nope"
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_json"
    wrong = partner.server.client.get("/api/v1/webhook", headers={"X-API-KEY": "nope"})
    assert wrong.status_code == 401


def test_the_cli_sets_a_webhook_and_shows_the_secret_once(
    hook_server: Server, receiver: Receiver
) -> None:
    partner = hook_server.create_partner()
    first = partner.update("--webhook-url", receiver.url)
    assert first["webhook"]["url"] == receiver.url
    secret = first["webhook"]["secret"]
    again = partner.update("--webhook-url", receiver.url + "2")
    assert "secret" not in again["webhook"]
    assert webhook(partner, "GET").json()["url"] == receiver.url + "2"
    assert webhook(partner, "POST", path="/rotate-secret").json()["secret"] != secret


def test_the_cli_refuses_a_private_url_before_changing_anything(server: Server) -> None:
    partner = server.create_partner()
    done = server.cli(
        "partners",
        "update",
        partner.name,
        "--data-dir",
        str(server.data_dir),
        "--gfc-limit",
        "7",
        "--webhook-url",
        "https://10.1.1.1/hook",
        check=False,
    )
    assert done.returncode == 2 and "not a public address" in done.stderr, done.stderr
    shown = partner.update()
    assert shown["gfc_limit"] != 7
    assert webhook(partner, "GET").status_code == 404


def test_an_open_reported_by_the_sdk_tells_push_opened(
    hook_server: Server, receiver: Receiver
) -> None:
    partner = hook_server.create_partner()
    secret = webhook(partner, "PUT", {"url": receiver.url, "events": ["push.opened"]}).json()[
        "secret"
    ]
    insider_id = partner.session({"uuid": "opener"})
    push(partner, "opener", camp_id=43)
    opened = hook_server.client.post(
        "/api/sdk/v1/events",
        json={
            "insider_id": insider_id,
            "events": [{"event_name": "push_session", "camp_id": 43}],
        },
        headers={"X-SDK-KEY": partner.sdk_key},
    )
    assert opened.status_code == 200, opened.text
    assert wait_for(lambda: receiver.requests, timeout=15)
    (event,) = receiver.events(secret)
    assert event["type"] == "push.opened"
    assert event["data"] == {"camp_id": 43, "insider_id": insider_id}


def test_a_push_past_its_ttl_tells_push_expired(hook_server: Server, receiver: Receiver) -> None:
    partner = hook_server.create_partner()
    secret = webhook(partner, "PUT", {"url": receiver.url, "events": ["push.expired"]}).json()[
        "secret"
    ]
    control = Control(hook_server.base_url)
    control.fault("ios", status=503, rate=1.0, retry_after=2)  # tried again after its TTL
    try:
        partner.session({"uuid": "late"})
        answer = partner.push({"notifications": [notification("late", 44, ttl=1)]})
        assert answer.status_code == 200 and answer.json()["successes"], answer.text
        assert wait_for(lambda: receiver.requests, timeout=20)
    finally:
        control.clear_faults()
        control.close()
    (event,) = receiver.events(secret)
    assert event["type"] == "push.expired"
    assert event["data"]["camp_id"] == 44


def test_a_redirect_is_not_followed(hook_server: Server, receiver: Receiver) -> None:
    """A 3xx is an answer like any other that is not 2xx: the event is tried again later at
    the registered URL, never sent where the redirect points."""
    partner = hook_server.create_partner()
    webhook(partner, "PUT", {"url": receiver.url})
    receiver.statuses = [302]
    partner.session({"uuid": "redirected"})
    push(partner, "redirected")
    assert wait_for(lambda: webhook(partner, "GET").json()["last_error"] == "HTTP 302", 15)
    assert wait_for(lambda: len(receiver.requests) >= 2, timeout=20)  # the retry, same URL
    first, second = receiver.requests[:2]
    assert first[0]["webhook-id"] == second[0]["webhook-id"]
    assert [headers[":path"] for headers, _ in receiver.requests] == ["/hook"] * len(
        receiver.requests
    )
