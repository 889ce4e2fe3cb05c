"""Every error body that Insider's documentation gives literally, as the bytes the server sends.

The bodies, and how they are read from the spec, are in tests/support/spec.py: key order, separators,
escaping and the absence of anything else are compared, not only the parsed JSON. Each one is
provoked here once, the simplest way; tests/integration/test_push_errors.py compares the
Targeted Push API's ones the same way for every variant of their cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.pushes import PUSH_PATH, notification
from tests.support.server import Partner
from tests.support.spec import DOCUMENTED

KNOWN = {"uuid": "bytes-known-user"}
STATISTICS_PATH = "/api/v1/notification/get_statistics"
MESSAGE_CENTER_PATH = "/api/message_center/v1"
FIREBASE_PATH = "/v1/settings/certificate/firebase"


def push(partner: Partner, *notifications: dict[str, Any]) -> httpx.Response:
    """A request whose first notification is valid and reaches a user; `notifications` follow."""
    partner.session(KNOWN, token="cd" * 32)
    return partner.push({"notifications": [notification(KNOWN), *notifications]})


def advanced(kind: str) -> dict[str, Any]:
    item = {"image_url": "https://img.example.com/1.jpg", "description": "d", "headline": "h"}
    return {"advanced_push_type": kind, "advanced_push_items": [{**item, "id": 1}]}


def message_center(partner: Partner, **fields: Any) -> httpx.Response:
    return partner.server.client.post(
        MESSAGE_CENTER_PATH,
        json={"identifiers": {"Uuid": "bytes-nobody"}, **fields},
        headers={"X-INSIDER-API-KEY": partner.api_key},
    )


def rate_limited_upsert(partner: Partner) -> httpx.Response:
    """The user API of a partner allowed 3 requests a minute, until it answers 429."""
    partner.update("--rate-limit", "3")
    body = {"users": [{"identifiers": {"uuid": "bytes-limited"}, "attributes": {"age": 1}}]}
    deadline = time.monotonic() + 15
    while True:
        r = partner.user_api("upsert", body)
        if r.status_code != 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def no_certificate(partner: Partner, start_server: Any) -> httpx.Response:
    """A partner on a server without emulated providers has no validated credential."""
    bare: Partner = start_server(emulate=False).create_partner()
    bare.session(KNOWN, token="ce" * 32)
    return bare.push({"notifications": [notification(KNOWN)]})


def too_many_identifiers(partner: Partner) -> httpx.Response:
    """1 + 17 * 3 = 52 identifier values, in 18 notifications (20 are allowed)."""
    ids = [
        {"uuid": f"id-{n}", "email": f"id-{n}@example.com", "phone_number": f"+6590{n:06d}"}
        for n in range(17)
    ]
    return push(partner, *map(notification, ids))


# How to provoke each documented body (Partner, start_server) -> answer.
PROVOKE: dict[str, Callable[[Partner, Any], httpx.Response]] = {
    "EMPTY_IDENTIFIERS": lambda p, _: push(p, notification({})),
    "EMPTY_NOTIFICATIONS": lambda p, _: p.push({"notifications": []}),
    "TOO_MANY_NOTIFICATIONS": lambda p, _: push(p, *[notification(KNOWN)] * 20),
    "BLACKLISTED_APS": lambda p, _: push(p, notification(KNOWN, ios={"deep_link": {"aps": 1}})),
    "NEGATIVE_INTEGER": lambda p, _: push(p, notification(KNOWN, camp_id=-1)),
    "INVALID_ADVANCED_PUSH_TYPE": lambda p, _: push(
        p, notification(KNOWN, advanced_push_payload=advanced("banner"))
    ),
    "INVALID_CERTIFICATE": no_certificate,
    "BAD_API_KEY": lambda p, _: p.server.client.post(
        PUSH_PATH, json={"api_key": "not-" + p.api_key, "notifications": [notification(KNOWN)]}
    ),
    "TOO_MANY_IDENTIFIERS": lambda p, _: too_many_identifiers(p),
    "STATISTICS_BAD_KEY": lambda p, _: p.server.client.post(
        STATISTICS_PATH, json={"api_key": "not-" + p.api_key}
    ),
    "MESSAGE_CENTER_BAD_PAYLOAD": lambda p, _: message_center(p, start_date=2000, end_date=1000),
    "MESSAGE_CENTER_BAD_LIMIT": lambda p, _: message_center(p, limit=101),
    "USERS_MISSING": lambda p, _: p.user_api("upsert", {}),
    "USERS_RATE_LIMITED": lambda p, _: rate_limited_upsert(p),
    "USERS_NO_PROFILE": lambda p, _: p.user_api(
        "profile", {"identifiers": {"uuid": "bytes-ghost"}}
    ),
    "CERTIFICATE_NO_KEY": lambda p, _: p.server.client.post(FIREBASE_PATH, json={}),
    "CERTIFICATE_WRONG_KEY": lambda p, _: p.server.client.post(
        FIREBASE_PATH, json={}, headers={"X-API-KEY": "not-" + p.api_key}
    ),
}


def test_every_documented_body_is_provoked_here() -> None:
    assert sorted(PROVOKE) == sorted(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(PROVOKE))
def test_the_documented_error_body_is_sent_byte_for_byte(
    partner: Partner, start_server: Any, name: str
) -> None:
    documented = DOCUMENTED[name]

    r = PROVOKE[name](partner, start_server)

    assert r.status_code == documented.status, r.text
    kind = "application/json" if documented.json else "text/plain"
    assert r.headers["content-type"].startswith(kind), r.headers
    assert r.content == documented.wire
