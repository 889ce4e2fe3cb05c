"""Hostile input on a real `pushgate serve --emulate` (each backend): SQL metacharacters are data,
nothing a request sends reaches a response header, and oversized or deeply nested bodies are
refused on every endpoint that reads a body.

Already covered elsewhere: bodies over 5,000,000 bytes on the push and user data endpoints
(integration/test_push_errors.py, test_user_data.py), the NUL character (unit/test_nul_input.py),
random bodies (integration/test_push_fuzz.py).

Sources: docs/security.md ("Injection", "Oversized input"), docs/decisions.md (order of checks,
413), insider-ecosystem.md (each family's error shape).
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.emulated import device_token, notification
from tests.support.server import Partner, Server
from tests.support.stats_api import error_code, message_center

SQL = [
    "' OR '1'='1",
    "x'); DROP TABLE partners; --",
    '" OR ""="',
    "%",
    "_",
    "\\",
    "1; SELECT pg_sleep(5)",
]
LIMIT = 5_000_000


@pytest.fixture(scope="module")
def owner(server: Server) -> Partner:
    """A partner with one user whose uuid is itself an injection string, and one plain user."""
    partner = server.create_partner()
    partner.session({"uuid": SQL[0]}, "ios", device_token("ios"))
    partner.session({"uuid": "plain-user"}, "ios", device_token("ios"))
    return partner


def test_sql_metacharacters_in_identifiers_match_only_themselves(owner: Partner) -> None:
    asked = [notification(value) for value in SQL] + [
        {**notification("x"), "identifiers": {"email": f"{v}@example.com", "custom": {v: v}}}
        for v in SQL
    ]

    r = owner.push({"notifications": asked})

    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["successes"]) == 1  # the user whose uuid is SQL[0], and only that one
    assert body["errors"] == {"NoUserFound": [n["identifiers"] for n in asked[1:]]}


def test_sql_metacharacters_in_user_data_and_message_center_are_data(owner: Partner) -> None:
    for value in SQL[1:]:
        r = owner.user_api("profile", {"identifiers": {"uuid": value, "custom": {"k": value}}})
        assert (r.status_code, r.json()) == (
            404,
            {"error": "no such user for these identifiers: no data"},
        )
        assert message_center(owner, {"identifiers": {"Uuid": value}}).json() == []
    r = owner.user_api("profile", {"identifiers": {"uuid": SQL[0]}})
    assert r.status_code == 200 and r.json()["identifiers"]["uuid"] == SQL[0], r.text


@pytest.mark.parametrize("value", SQL)
def test_sql_metacharacters_as_keys_or_partner_names_are_refused_as_such(
    owner: Partner, value: str
) -> None:
    client = owner.server.client
    push = client.post("/api/v2/notification/user", json={"api_key": value})
    assert error_code(push) == "bad_api_key"
    campaigns = client.get("/api/v1/campaigns", headers={"X-API-KEY": value})
    assert (campaigns.status_code, error_code(campaigns)) == (401, "invalid_api_key")
    users = client.post(
        "/api/user/v1/profile",
        json={"identifiers": {"uuid": "plain-user"}},
        headers={"X-PARTNER-NAME": value, "X-REQUEST-TOKEN": owner.request_token},
    )
    assert (users.status_code, set(users.json())) == (403, {"error"})
    assert owner.push({"notifications": [notification("plain-user")]}).status_code == 200


def test_nothing_a_request_sends_reaches_a_response_header(owner: Partner) -> None:
    smuggled = "x\r\nSet-Cookie: stolen=1\r\nX-Injected: 1"
    r = owner.server.client.post(
        "/api/v2/notification/user",
        json={"api_key": owner.api_key, "notifications": [notification(smuggled)]},
        headers={"X-Request-Id": "id with spaces; Set-Cookie: stolen=1"},
    )

    assert r.status_code == 200, r.text
    assert r.json()["errors"] == {"NoUserFound": [{"uuid": smuggled}]}
    assert "set-cookie" not in r.headers and "x-injected" not in r.headers
    assert all("stolen" not in value for value in r.headers.values()), r.headers


# ---- bodies: too large, too deep ----


def _headers(partner: Partner) -> dict[str, dict[str, str]]:
    return {
        "/api/sdk/v1/session": {"X-SDK-KEY": partner.sdk_key},
        "/api/sdk/v1/events": {"X-SDK-KEY": partner.sdk_key},
        "/api/v1/notification/get_statistics": {},
        "/api/message_center/v1": {"X-INSIDER-API-KEY": partner.api_key},
        "/v1/settings/certificate/firebase": {"X-API-KEY": partner.api_key},
        "/v1/settings/certificate/apns": {"X-API-KEY": partner.api_key},
        "/v1/settings/certificate/huawei": {"X-API-KEY": partner.api_key},
        "/dashboard/session": {},
    }


PATHS = list(_headers(Partner("", "", "", "", None)))  # type: ignore[arg-type]


def post_raw(partner: Partner, path: str, content: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json", **_headers(partner)[path]}
    return partner.server.client.post(path, content=content, headers=headers)


@pytest.mark.parametrize("path", PATHS)
def test_a_body_over_five_million_bytes_is_refused_before_it_is_read(
    owner: Partner, path: str
) -> None:
    r = post_raw(owner, path, b"[" + b" " * LIMIT + b"]")

    assert r.status_code == 413, r.text
    assert r.json() == {
        "error": "request_too_large",
        "message": "the request body must be at most 5000000 bytes",
    }


DEEP = b"[" * 200_000 + b"]" * 200_000


@pytest.mark.parametrize("path", [*PATHS, "/api/v2/notification/user", "/api/user/v1/upsert"])
def test_deeply_nested_json_is_a_bad_request(owner: Partner, path: str) -> None:
    if path == "/api/v2/notification/user":
        r = owner.server.client.post(
            path, content=b'{"api_key": "%s", "x": %s}' % (owner.api_key.encode(), DEEP)
        )
    elif path == "/api/user/v1/upsert":
        r = owner.server.client.post(
            path,
            content=DEEP,
            headers={"X-PARTNER-NAME": owner.name, "X-REQUEST-TOKEN": owner.request_token},
        )
    elif path in ("/api/v1/notification/get_statistics", "/dashboard/session"):
        r = post_raw(owner, path, b'{"api_key": %s}' % DEEP)
    else:
        r = post_raw(owner, path, DEEP)

    assert r.status_code == 400, r.text
    if path == "/api/message_center/v1":
        assert r.text == "bad payload"
    elif path == "/api/user/v1/upsert":
        assert r.json() == {"error": "request body is not valid JSON: bad request"}
    else:
        assert error_code(r) == "invalid_json", r.text
