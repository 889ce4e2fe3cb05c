"""Keys on a real `pushgate serve --emulate` (each backend): `pushgate partners rotate-keys`
revokes all three of a partner's keys on the running server within seconds; a revoked key, an
unknown key and a near miss of a real key get one identical answer on every endpoint; the API
key's allow list holds on every endpoint that takes the API key.

Sources: contract.md (keys, `partners create` output, `--allow-ip` and its 403 body),
docs/decisions.md ("Partners and keys": the 2 s partner cache), docs/security.md.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.emulated import device_token, notification, push_all, wait_for
from tests.support.keys import API_KEY_CALLS, CALLS, PREFIXES, call, near_miss, unknown_key
from tests.support.pushes import SETTINGS_DELAY
from tests.support.server import Partner, Server

# The partner cache keeps a key's answer for 2 s (auth.py); the wait allows for a slow machine.
REVOCATION_TIMEOUT = 10.0


def rotate(partner: Partner, *extra: str) -> dict[str, Any]:
    out = partner.server.cli(
        "partners", "rotate-keys", partner.name, "--data-dir", str(partner.server.data_dir), *extra
    )
    return dict(json.loads(out.stdout))


def answer(r: httpx.Response) -> tuple[int, str, bytes, frozenset[str]]:
    """Everything of an answer a caller could tell keys apart by, but the per-request headers."""
    names = frozenset(r.headers) - {"date", "x-request-id"}
    return r.status_code, r.headers.get("content-type", ""), r.content, names


def wait_refused(name: str, partner: Partner, secret: str) -> httpx.Response:
    """Poll the endpoint with `secret` until it answers as to an unknown key."""
    kind, _ = CALLS[name]
    expected = answer(call(name, partner, unknown_key(kind)))
    last: list[httpx.Response] = []

    def refused() -> bool:
        last[:] = [call(name, partner, secret)]
        return answer(last[0]) == expected

    assert wait_for(refused, REVOCATION_TIMEOUT, 0.2), (name, last[0].status_code, last[0].text)
    return last[0]


# ---- partners rotate-keys ----


def test_rotated_keys_stop_working_within_seconds_and_the_new_ones_work(server: Server) -> None:
    old = server.create_partner()
    token = device_token("ios")
    old.session({"uuid": "rotated-user"}, "ios", token)
    push_all(old, [notification("rotated-user", camp_id=1)])
    assert old.user_api("profile", {"identifiers": {"uuid": "rotated-user"}}).status_code == 200
    signed_in = server.client.post("/dashboard/session", json={"api_key": old.api_key})
    cookie = signed_in.headers["set-cookie"].split(";", 1)[0]

    secrets = rotate(old, "--json")

    assert set(secrets) == {"partner", "api_key", "request_token", "sdk_key"}
    assert secrets["partner"] == old.name
    for kind, prefix in PREFIXES.items():
        assert secrets[kind].startswith(prefix) and secrets[kind] != getattr(old, kind)
    new = Partner(
        old.name, secrets["api_key"], secrets["request_token"], secrets["sdk_key"], server
    )
    for name in ("push", "user_data", "sdk_session"):
        wait_refused(name, old, getattr(old, CALLS[name][0]))
    # The dashboard session opened with the old key ended with it.
    r = server.client.get("/dashboard/api/campaigns", headers={"Cookie": cookie})
    assert (r.status_code, r.json()["error"]) == (401, "not_signed_in")
    # The new keys work on the same data.
    r = new.push({"notifications": [notification("rotated-user", camp_id=2)]})
    assert r.json() == {"successes": [{"INSIDER.device_token": token}], "errors": {}}, r.text
    assert new.user_api("profile", {"identifiers": {"uuid": "rotated-user"}}).status_code == 200
    assert new.session({"uuid": "rotated-user"}, "ios", token)
    assert call("campaigns", new).json()["total"] == 2


def test_rotate_keys_of_an_unknown_partner_fails_and_changes_nothing(server: Server) -> None:
    partner = server.create_partner()
    out = server.cli(
        "partners",
        "rotate-keys",
        "no-such-partner",
        "--data-dir",
        str(server.data_dir),
        check=False,
    )

    assert out.returncode != 0
    assert "no partner named 'no-such-partner'" in out.stderr
    assert out.stdout == ""
    assert call("push", partner).status_code == 200


# ---- one answer for every wrong key ----


@pytest.fixture(scope="module")
def revoked(server: Server) -> tuple[Partner, Partner]:
    """A partner whose keys were rotated: (with its old keys, with its new ones), once the
    running server refuses the old ones."""
    old = server.create_partner()
    secrets = rotate(old)
    new = Partner(
        old.name, secrets["api_key"], secrets["request_token"], secrets["sdk_key"], server
    )
    wait_refused("push", old, old.api_key)
    return old, new


@pytest.mark.parametrize("name", CALLS)
def test_unknown_revoked_and_near_miss_keys_get_one_identical_answer(
    revoked: tuple[Partner, Partner], name: str
) -> None:
    old, live = revoked
    kind, _ = CALLS[name]
    real = getattr(live, kind)
    wrong = {
        "unknown": unknown_key(kind),
        "revoked": getattr(old, kind),
        "near-miss": near_miss(real),
        "prefix-of-real": real[:20],
        "real-and-more": real + "x",
    }

    answers = {case: answer(call(name, live, key)) for case, key in wrong.items()}

    assert len(set(answers.values())) == 1, answers
    status = answers["unknown"][0]
    assert status in (401, 403), answers
    assert call(name, live).status_code != status  # the real key is not refused


# ---- the allow list of the API key ----


@pytest.fixture(scope="module")
def fenced(server: Server) -> Partner:
    """A partner whose API key is accepted from 10.0.0.0/8 only (the tests call from 127.0.0.1)."""
    partner = server.create_partner()
    partner.update("--allow-ip", "10.0.0.0/8")
    time.sleep(SETTINGS_DELAY)
    return partner


@pytest.mark.parametrize("name", [n for n in API_KEY_CALLS if n != "push"])
def test_api_key_outside_its_allow_list_is_refused_on_every_endpoint(
    fenced: Partner, name: str
) -> None:
    """The push is covered by integration/test_push_errors.py."""
    r = call(name, fenced)

    assert r.status_code == 403, r.text
    if name == "message_center":  # this family answers in plain text
        assert (r.text, r.headers["content-type"].split(";")[0]) == ("ip not allowed", "text/plain")
    else:
        assert r.json() == {
            "error": "ip_not_allowed",
            "message": "requests with this API key are not accepted from this address",
        }
