"""The control routes (ASGI) driven through httpx.ASGITransport, with the emulators running."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from pushgate.emulators import Emulators

BASE = "http://control/emulator/v1"


@pytest.fixture
async def control(emulators: Emulators) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emulators.control_app())
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


async def hms_push(emulators: Emulators, *tokens: str) -> httpx.Response:
    app = emulators.generate_hms_credential()
    async with httpx.AsyncClient(verify=emulators.ca.client_context()) as client:
        token = await client.post(
            emulators.hms_token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            },
        )
        return await client.post(
            f"{emulators.hms_url}/v1/{app.app_id}/messages:send",
            headers={"authorization": f"Bearer {token.json()['access_token']}"},
            json={"message": {"token": list(tokens), "data": "x"}},
        )


async def test_info_names_every_emulator_and_the_ca(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    response = await control.get(f"{BASE}/info")

    info = response.json()
    assert response.status_code == 200
    assert info["apns"]["url"] == f"https://127.0.0.1:{emulators.apns_server.port}"
    assert info["apns"]["ca_pem"] == info["ca_pem"] == emulators.ca.ca_pem
    assert info["fcm"]["token_url"] == f"https://127.0.0.1:{emulators.fcm_server.port}/token"
    assert info["hms"]["url"] == f"https://127.0.0.1:{emulators.hms_server.port}"
    assert info["hms"]["token_url"].endswith("/oauth2/v3/token")


async def test_the_routes_can_live_under_a_prefix(emulators: Emulators) -> None:
    transport = httpx.ASGITransport(app=emulators.control_app("/admin"))
    async with httpx.AsyncClient(transport=transport) as client:
        prefixed = await client.get("http://control/admin/emulator/v1/info")
        bare = await client.get(f"{BASE}/info")

    assert prefixed.status_code == 200
    assert bare.status_code == 404


async def test_deliveries_are_listed_oldest_first_and_filtered(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    await hms_push(emulators, "first", "second")
    emulators.state.record_delivery("ios", "a" * 64, {"apns-topic": "x"}, {"aps": {}})

    everything = (await control.get(f"{BASE}/deliveries")).json()
    huawei = (await control.get(f"{BASE}/deliveries", params={"platform": "huawei"})).json()
    second = (await control.get(f"{BASE}/deliveries", params={"token": "second"})).json()

    assert [d["token"] for d in everything] == ["first", "second", "a" * 64]
    assert [d["token"] for d in huawei] == ["first", "second"]
    [entry] = second
    assert set(entry) == {"platform", "token", "headers", "payload", "received_at"}
    assert entry["payload"] == {"message": {"token": ["first", "second"], "data": "x"}}
    assert entry["headers"]["content-type"] == "application/json"
    assert entry["received_at"].endswith("Z")


async def test_deleting_deliveries_forgets_them(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    await hms_push(emulators, "one")

    deleted = await control.delete(f"{BASE}/deliveries")
    remaining = await control.get(f"{BASE}/deliveries")

    assert deleted.json() == {"deleted": 1}
    assert remaining.json() == []


async def test_a_token_outcome_applies_until_set_back_to_ok(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    set_dead = await control.post(
        f"{BASE}/tokens", json={"platform": "huawei", "token": "t", "outcome": "invalid"}
    )
    dead = await hms_push(emulators, "t")
    await control.post(f"{BASE}/tokens", json={"platform": "huawei", "token": "t", "outcome": "ok"})
    alive = await hms_push(emulators, "t")

    assert set_dead.status_code == 200
    assert dead.json()["code"] == "80300007"
    assert alive.json()["code"] == "80000000"


async def test_outcome_names_are_matched_without_regard_to_case(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    response = await control.post(
        f"{BASE}/tokens", json={"platform": "ios", "token": "a" * 64, "outcome": "unregistered"}
    )

    assert response.json()["outcome"] == "Unregistered"
    outcome = emulators.state.token_outcome("ios", "a" * 64)
    assert outcome is not None and outcome.outcome == "Unregistered"


async def test_a_fault_is_installed_and_cleared_with_rate_zero(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    fault = {"platform": "huawei", "status": 503, "rate": 1, "retry_after": 2, "latency_ms": 0}

    installed = await control.post(f"{BASE}/faults", json=fault)
    failing = await hms_push(emulators, "t")
    cleared = await control.post(f"{BASE}/faults", json={**fault, "rate": 0})
    working = await hms_push(emulators, "t")

    assert installed.status_code == 200
    assert (failing.status_code, failing.headers["retry-after"]) == (503, "2")
    assert cleared.status_code == 200
    assert working.status_code == 200
    assert (await control.get(f"{BASE}/faults")).json() == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tokens", {"platform": "windows", "token": "t", "outcome": "ok"}),
        ("/tokens", {"platform": "ios", "token": "", "outcome": "ok"}),
        ("/tokens", {"platform": "ios", "token": "t", "outcome": "UNREGISTERED_ISH"}),
        ("/tokens", {"platform": "android", "token": "t", "outcome": "Unregistered!"}),
        ("/faults", {"platform": "ios", "status": 503, "rate": 1.5}),
        ("/faults", {"platform": "ios", "status": 404, "rate": 0.5}),
        ("/faults", {"platform": "ios", "rate": 0.5}),
        ("/faults", {"platform": "ios", "status": 503, "rate": "half"}),
        ("/faults", {"platform": "ios", "status": 503, "rate": 0.5, "latency_ms": -1}),
        ("/faults", [1, 2]),
        ("/faults", {"platform": "ios", "kind": "reset", "rate": 0.5}),
        ("/faults", {"platform": "ios", "kind": 1, "rate": 0.5}),
        ("/faults", {"platform": "ios", "kind": ["goaway"], "rate": 0.5}),
        ("/faults", {"platform": "ios", "kind": "GOAWAY", "rate": 0.5}),
        ("/faults", {"platform": "ios", "kind": "goaway", "rate": 1.5}),
        ("/faults", {"platform": "ios", "kind": "drop", "rate": "all"}),
        ("/faults", {"platform": "ios", "kind": "drop", "rate": 0.5, "latency_ms": -1}),
        ("/faults", {"platform": "web", "kind": "drop", "rate": 0.5}),
        ("/faults", {"kind": "goaway", "rate": 0.5}),
    ],
)
async def test_bad_input_is_a_400_with_error_and_message(
    control: httpx.AsyncClient, path: str, body: Any
) -> None:
    response = await control.post(f"{BASE}{path}", content=json.dumps(body).encode())

    assert response.status_code == 400
    assert set(response.json()) == {"error", "message"}


async def test_a_bad_platform_filter_is_a_400(control: httpx.AsyncClient) -> None:
    response = await control.get(f"{BASE}/deliveries", params={"platform": "web"})

    assert response.status_code == 400


async def test_an_unknown_route_is_404_and_a_wrong_method_405(control: httpx.AsyncClient) -> None:
    missing = await control.get(f"{BASE}/nothing")
    wrong = await control.put(f"{BASE}/tokens")

    assert missing.status_code == 404
    assert wrong.status_code == 405


def test_faults_of_two_statuses_on_one_platform_both_apply() -> None:
    from pushgate.emulators.state import EmulatorState, Fault

    state = EmulatorState()
    state.set_fault(Fault("ios", 503, 0.20, retry_after=1))
    state.set_fault(Fault("ios", 429, 0.05, retry_after=1))
    answers = [state.draw_fault("ios") for _ in range(200)]
    statuses = [a.status for a in answers if a is not None]
    assert statuses.count(503) == 40
    # When both fall due on one request the 429 waits for the next, so the last may slip out.
    assert statuses.count(429) in (9, 10)
    state.set_fault(Fault("ios", None, 0))  # no status: clears every fault of the platform
    assert state.draw_fault("ios") is None


async def test_goaway_and_drop_faults_are_listed_beside_status_faults_and_ignore_status(
    control: httpx.AsyncClient,
) -> None:
    status_fault = {"platform": "ios", "status": 503, "rate": 0.2, "retry_after": 1}
    await control.post(f"{BASE}/faults", json=status_fault)

    goaway = await control.post(
        f"{BASE}/faults",
        json={"platform": "ios", "kind": "goaway", "rate": 0.5, "status": 404, "retry_after": 3},
    )
    drop = await control.post(
        f"{BASE}/faults", json={"platform": "android", "kind": "drop", "rate": 0.1}
    )
    listed = (await control.get(f"{BASE}/faults")).json()

    assert goaway.status_code == 200
    assert goaway.json() == {
        "platform": "ios",
        "kind": "goaway",
        "status": None,
        "rate": 0.5,
        "retry_after": None,
        "latency_ms": 0.0,
        "applied": 0,
    }
    assert drop.status_code == 200
    assert [(f["platform"], f["kind"], f["status"]) for f in listed] == [
        ("ios", "status", 503),
        ("ios", "goaway", None),
        ("android", "drop", None),
    ]


async def test_clearing_a_goaway_fault_keeps_the_others_and_no_status_clears_them_all(
    control: httpx.AsyncClient,
) -> None:
    for body in (
        {"platform": "huawei", "status": 503, "rate": 0.2},
        {"platform": "huawei", "kind": "goaway", "rate": 0.2},
        {"platform": "huawei", "kind": "drop", "rate": 0.1},
    ):
        assert (await control.post(f"{BASE}/faults", json=body)).status_code == 200

    await control.post(f"{BASE}/faults", json={"platform": "huawei", "kind": "goaway", "rate": 0})
    kept = [f["kind"] for f in (await control.get(f"{BASE}/faults")).json()]
    await control.post(f"{BASE}/faults", json={"platform": "huawei", "rate": 0})
    after = (await control.get(f"{BASE}/faults")).json()

    assert kept == ["status", "drop"]
    assert after == []


async def test_goaway_over_http11_answers_with_connection_close_and_counts(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    await control.post(f"{BASE}/faults", json={"platform": "huawei", "kind": "goaway", "rate": 1})

    answered = await hms_push(emulators, "g1")
    [fault] = (await control.get(f"{BASE}/faults")).json()

    assert answered.json()["code"] == "80000000"
    assert answered.headers["connection"] == "close"
    assert [d.token for d in emulators.state.deliveries("huawei")] == ["g1"]
    assert (fault["kind"], fault["applied"]) == ("goaway", 1)


async def test_drop_over_http11_closes_without_an_answer_after_acting_and_counts(
    emulators: Emulators, control: httpx.AsyncClient
) -> None:
    await control.post(f"{BASE}/faults", json={"platform": "huawei", "kind": "drop", "rate": 1})

    with pytest.raises(httpx.RemoteProtocolError):
        await hms_push(emulators, "d1")
    [fault] = (await control.get(f"{BASE}/faults")).json()

    # Accepted, then cut off: the sender cannot know, which is why a retry may duplicate it.
    assert [d.token for d in emulators.state.deliveries("huawei")] == ["d1"]
    assert (fault["kind"], fault["applied"]) == ("drop", 1)


def test_a_goaway_fault_and_a_status_fault_are_drawn_apart_and_counted() -> None:
    from pushgate.emulators.state import EmulatorState, Fault

    state = EmulatorState()
    state.set_fault(Fault("android", 503, 0.25))
    state.set_fault(Fault("android", None, 0.1, kind="goaway"))
    # Both fall due on the 20th and the 40th: the 503 goes first, the GOAWAY on the next one.
    answers = [state.draw_fault("android") for _ in range(41)]

    connection = [a.connection for a in answers if a is not None and a.connection is not None]
    statuses = [a.status for a in answers if a is not None and a.status is not None]
    assert all(a is not None and (a.status is None or a.connection is None) for a in answers)
    assert connection == ["goaway"] * 4
    assert statuses == [503] * 10
    assert {f.kind: f.applied for f in state.faults("android")} == {"status": 10, "goaway": 4}
