"""Repeated bad keys from one client address are slowed down (limits/bad_keys.py), on a real
`pushgate serve --emulate` with the limit's default (20 failed key checks per address within
60 s), on each backend: embedded (in memory) and PostgreSQL + Redis (the count in Redis).

The suite turns the limit off for every other server (integration/conftest.py: SUITE_SETTINGS).
Requests come from distinct loopback addresses (127.0.0.0/8 all reach the server on Linux), one
per test, so that the tests' counts never mix.

Sources: docs/security.md ("Brute force of keys"), docs/decisions.md (the 429 body and
`Retry-After` of the rate limit, reused here), insider-ecosystem.md §3 and §4 (the Message
Center's and the user data API's own shapes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pushgate import names
from tests.support.emulated import wait_for
from tests.support.keys import CALLS, call, close, from_address, unknown_key
from tests.support.server import REDIS_URL, Partner, Server, new_backend_env

LIMIT = 20  # the defaults (config.py)
WINDOW = 60
# The test client is on loopback, which the default leaves out of the count.
DEFAULTS = {
    "PUSHGATE_BAD_KEY_LIMIT": str(LIMIT),
    "PUSHGATE_BAD_KEY_WINDOW": str(WINDOW),
    "PUSHGATE_BAD_KEY_EXEMPT": "",
}
BAD_API_KEY = {
    "error": "bad_api_key",
    "message": "'api_key' is either empty or wrong. You can get your API key from Insider"
    " Dashboard",
}


def start(data_dir: Path, backend_env: dict[str, str], env: dict[str, str]) -> Server:
    return Server(data_dir, backend_env=backend_env, env=env).start()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Partner]:
    """A partner of a server with the limit at its default."""
    srv = start(tmp_path_factory.mktemp("guarded") / "data", new_backend_env(backend), DEFAULTS)
    yield srv.create_partner()
    srv.stop()


@contextlib.contextmanager
def client_at(partner: Partner, address: str) -> Iterator[Partner]:
    moved = from_address(partner, address)
    try:
        yield moved
    finally:
        close(moved)


def bad_keys(partner: Partner, count: int, name: str = "push") -> list[httpx.Response]:
    kind, _ = CALLS[name]
    return [call(name, partner, unknown_key(kind)) for _ in range(count)]


def assert_rate_limited(r: httpx.Response) -> int:
    """The rate limit's 429 (docs/decisions.md); returns its Retry-After."""
    assert r.status_code == 429, r.text
    body = r.json()
    assert set(body) == {"error", "message"} and body["error"] == "too_many_requests", body
    retry_after = int(r.headers["retry-after"])
    assert body["message"] == f"rate limit exceeded; retry after {retry_after} seconds"
    return retry_after


def test_after_twenty_bad_keys_every_key_from_that_address_gets_429(guarded: Partner) -> None:
    with client_at(guarded, "127.0.0.2") as attacker, client_at(guarded, "127.0.0.3") as other:
        assert call("push", attacker).status_code == 200  # good keys do not count

        refused = bad_keys(attacker, LIMIT)
        over = bad_keys(attacker, 1)[0]
        good_there = call("push", attacker)
        good_elsewhere = call("push", other)
        bad_elsewhere = bad_keys(other, 1)[0]

    assert [(r.status_code, r.json()) for r in refused] == [(401, BAD_API_KEY)] * LIMIT
    assert 1 <= assert_rate_limited(over) <= WINDOW
    assert 1 <= assert_rate_limited(good_there) <= WINDOW
    assert good_elsewhere.status_code == 200, good_elsewhere.text
    assert (bad_elsewhere.status_code, bad_elsewhere.json()) == (401, BAD_API_KEY)


def test_requests_without_any_key_are_not_counted(guarded: Partner) -> None:
    with client_at(guarded, "127.0.0.4") as client:
        missing = [
            client.server.client.post("/api/v2/notification/user", json={})
            for _ in range(LIMIT + 5)
        ]
        good = call("push", client)

    assert {r.status_code for r in missing} == {401}
    assert good.status_code == 200, good.text


@pytest.mark.parametrize("name", CALLS)
def test_every_endpoint_answers_a_blocked_address_in_its_own_shape(
    guarded: Partner, name: str
) -> None:
    """Failures on any endpoint count together; the partner's own key is refused too."""
    address = f"127.0.1.{list(CALLS).index(name) + 1}"
    with client_at(guarded, address) as blocked:
        bad_keys(blocked, LIMIT // 2, "sdk_session")
        bad_keys(blocked, LIMIT - LIMIT // 2, "user_data")

        r = call(name, blocked)

    assert r.status_code == 429, r.text
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW
    if name == "message_center":  # plain text (insider-ecosystem.md §3)
        assert r.headers["content-type"].startswith("text/plain")
        assert r.text == f"rate limit exceeded; retry after {retry_after} seconds"
    elif name == "user_data":  # insider-ecosystem.md §4
        assert r.json() == {"error": "rejected: too many requests"}
    else:
        assert_rate_limited(r)


def test_the_block_ends_with_its_window(tmp_path: Path, backend: str) -> None:
    env = {
        "PUSHGATE_BAD_KEY_LIMIT": "3",
        "PUSHGATE_BAD_KEY_WINDOW": "2",
        "PUSHGATE_BAD_KEY_EXEMPT": "",
    }
    srv = start(tmp_path / "data", new_backend_env(backend), env)
    try:
        with client_at(srv.create_partner(), "127.0.0.5") as client:
            assert [r.status_code for r in bad_keys(client, 3)] == [401] * 3
            assert assert_rate_limited(call("push", client)) <= 2

            assert wait_for(lambda: call("push", client).status_code == 200, timeout=10)
            assert [r.status_code for r in bad_keys(client, 3)] == [401] * 3  # a new window
            assert call("push", client).status_code == 429
    finally:
        srv.stop()


def test_two_api_processes_share_the_count_through_redis(tmp_path: Path) -> None:
    """PostgreSQL + Redis whatever the backend parameter: two servers with one database and one
    key prefix, as in a deployment of several API processes."""
    import redis

    backend_env = new_backend_env("postgres")
    first = start(tmp_path / "one", backend_env, DEFAULTS)
    second = start(tmp_path / "two", backend_env, DEFAULTS)
    partner = first.create_partner()
    on_second = Partner(partner.name, partner.api_key, "", "", second)
    try:
        with client_at(partner, "127.0.0.6") as a, client_at(on_second, "127.0.0.6") as b:
            halves = bad_keys(a, LIMIT // 2) + bad_keys(b, LIMIT - LIMIT // 2)
            assert [r.status_code for r in halves] == [401] * LIMIT

            assert_rate_limited(call("push", b))  # it saw the 20th failure
            assert_rate_limited(bad_keys(a, 1)[0])  # the 21st, wherever it arrives
            assert_rate_limited(call("push", a))
        with client_at(partner, "127.0.0.7") as elsewhere:
            assert call("push", elsewhere).status_code == 200

        key = names.bad_key_key(backend_env["PUSHGATE_REDIS_PREFIX"], "127.0.0.6")
        with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as r:
            count: Any = r.get(key)
            left: Any = r.pttl(key)
        assert int(count) == LIMIT + 1
        assert 0 < int(left) <= WINDOW * 1000
    finally:
        first.stop()
        second.stop()
