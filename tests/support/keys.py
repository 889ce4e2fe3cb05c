"""One request per endpoint that checks a key, for tests about keys themselves: revocation, the
answer to a wrong key, the allow list, the limit on bad keys (test_key_security.py,
test_bad_key_limit.py).

`CALLS[name] = (kind, call)`: `call(partner, secret)` sends that endpoint's request with `secret`
where the endpoint takes its key of `kind`, through `partner.server.client` (so `from_address`
can change where it comes from). With the partner's own key each request is authorised and
otherwise harmless: it reads, or is refused after the key check for its content.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
from collections.abc import Callable

import httpx

from tests.support.pushes import PUSH_PATH, notification
from tests.support.server import Partner
from tests.support.stats_api import (
    get_statistics,
    list_campaigns,
    message_center,
    report,
    send_events,
)

Call = Callable[[Partner, str], httpx.Response]
PREFIXES = {"api_key": "pgk_", "request_token": "pgt_", "sdk_key": "pgs_"}


def _push(p: Partner, key: str) -> httpx.Response:
    body = {"api_key": key, "notifications": [notification({"uuid": "keylib-nobody"})]}
    return p.server.client.post(PUSH_PATH, json=body)


def _certificate(p: Partner, key: str) -> httpx.Response:
    # Incomplete, so that the partner's own key gets 406 and its credentials stay as they are.
    return p.server.client.post(
        "/v1/settings/certificate/huawei", json={"app_id": "1"}, headers={"X-API-KEY": key}
    )


def _dashboard(p: Partner, key: str) -> httpx.Response:
    # A session cookie it may set is Secure: httpx never sends it back over http://.
    return p.server.client.post("/dashboard/session", json={"api_key": key})


def _user_data(p: Partner, key: str) -> httpx.Response:
    return p.server.client.post(
        "/api/user/v1/profile",
        json={"identifiers": {"uuid": "keylib-nobody"}},
        headers={"X-PARTNER-NAME": p.name, "X-REQUEST-TOKEN": key},
    )


def _session(p: Partner, key: str) -> httpx.Response:
    return p.server.client.post(
        "/api/sdk/v1/session",
        json={"identifiers": {"uuid": "keylib-user"}, "device": {"platform": "ios"}},
        headers={"X-SDK-KEY": key},
    )


CALLS: dict[str, tuple[str, Call]] = {
    "push": ("api_key", _push),
    "statistics": ("api_key", lambda p, k: get_statistics(p, k)),
    "message_center": (
        "api_key",
        lambda p, k: message_center(p, {"identifiers": {"Uuid": "keylib-nobody"}}, k),
    ),
    "campaigns": ("api_key", lambda p, k: list_campaigns(p, k)),
    "report": ("api_key", lambda p, k: report(p, 1, k)),
    "certificate": ("api_key", _certificate),
    "dashboard": ("api_key", _dashboard),
    "user_data": ("request_token", _user_data),
    "sdk_session": ("sdk_key", _session),
    "sdk_events": ("sdk_key", lambda p, k: send_events(p, "keylib-nobody", [], k)),
}
API_KEY_CALLS = [name for name, (kind, _) in CALLS.items() if kind == "api_key"]


def call(name: str, partner: Partner, secret: str | None = None) -> httpx.Response:
    """The endpoint's request with `secret`, or with the partner's own key of the right kind."""
    kind, send = CALLS[name]
    return send(partner, getattr(partner, kind) if secret is None else secret)


def unknown_key(kind: str) -> str:
    """A key of the right form that no partner has."""
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def near_miss(key: str) -> str:
    """The key with its last character changed: same prefix, same length."""
    return key[:-1] + ("B" if key[-1] == "A" else "A")


def from_address(partner: Partner, address: str) -> Partner:
    """The partner, with its requests sent from this local address (any of 127.0.0.0/8 on
    Linux); `close` it after use."""
    server = copy.copy(partner.server)
    server.client = httpx.Client(
        base_url=server.base_url,
        timeout=30.0,
        transport=httpx.HTTPTransport(local_address=address),
    )
    return dataclasses.replace(partner, server=server)


def close(partner: Partner) -> None:
    partner.server.client.close()
