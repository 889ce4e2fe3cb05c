"""Tenant isolation: partner A's keys (api_key, request_token with X-PARTNER-NAME, sdk_key) can
neither read nor change partner B's users, campaigns, statistics, Message Center, credentials or
dashboard, on a real `pushgate serve --emulate` (each backend).

Already covered elsewhere and not repeated here: a push with A's key naming B's user by uuid
(integration/test_push_errors.py), a fresh partner's empty report, statistics, list and Message
Center by uuid, A's SDK key reporting events for B's user, one camp_id used by both
(test_campaign_stats.py), A's token with B's name, and profiles and deletes by uuid
(integration/test_user_data.py).

Every rejection is checked against the shape its endpoint family documents: `{"error",
"message"}` (insider-ecosystem.md §1, contract.md, docs/statistics.md), `{"error"}` for the user
data API (§4) and the certificate upload's key errors (§5), plain text for the Message Center
(§3).

The scenario (module fixture `tenants`): B has one iOS user known by email, phone, uuid and a
custom identifier, with attributes upserted through the user data API, sent two campaigns
(B_ONLY, and SHARED, a camp_id A uses too) that the emulator accepted, and opened by the app;
B has a validated iOS credential. A has one user of its own, sent SHARED.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pushgate.emulators.credentials import InMemoryCredentials, generate_apns_credential
from tests.support.emulated import (
    Control,
    device_token,
    notification,
    push_all,
    rows,
    wait_jobs_final,
)
from tests.support.pushes import upsert_user
from tests.support.server import Partner, Server
from tests.support.stats_api import (
    error_code,
    event,
    get_statistics,
    inbox,
    list_campaigns,
    message_center,
    report,
    report_json,
    send_events,
    wait_campaign_settled,
)

B_ONLY = 5100  # a camp_id only B uses
SHARED = 5200  # a camp_id both use, with different content
WIDE = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
USER_FORBIDDEN = {"error": "invalid partner name or request token: forbidden"}


@dataclass
class User:
    email: str
    phone: str
    uuid: str
    loyalty_id: str  # a custom identifier
    token: str
    udid: str
    insider_id: str

    def identifiers(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "phone_number": self.phone,
            "uuid": self.uuid,
            "custom": {"loyalty_id": self.loyalty_id},
        }


@dataclass
class Tenants:
    a: Partner
    b: Partner
    b_user: User
    a_user: User


def new_user(partner: Partner) -> User:
    tag = os.urandom(4).hex()
    token = device_token("ios")
    user = User(
        email=f"iso-{tag}@example.com",
        phone=f"+4479{int(tag, 16) % 10**8:08d}",
        uuid=f"iso-{tag}",
        loyalty_id=f"L-{tag}",
        token=token,
        udid=f"UDID-{tag}",
        insider_id="",
    )
    user.insider_id = partner.session(
        {"email": user.email, "phone_number": user.phone, "uuid": user.uuid},
        "ios",
        token,
        udid=user.udid,
        model="iPhone B",
    )
    upsert_user(partner, user.identifiers(), name="Bea")
    return user


@pytest.fixture(scope="module")
def tenants(server: Server, control: Control) -> Tenants:
    a, b = server.create_partner(), server.create_partner()
    b_user, a_user = new_user(b), new_user(a)
    push_all(b, [notification(b_user.uuid, camp_id=B_ONLY, camp_name="B's own")])
    push_all(b, [notification(b_user.uuid, camp_id=SHARED, camp_name="B's shared")])
    push_all(a, [notification(a_user.uuid, camp_id=SHARED, camp_name="A's shared")])
    wait_jobs_final(b, 2, timeout=20)
    wait_jobs_final(a, 1, timeout=20)
    r = send_events(b, b_user.insider_id, [event("push_session", B_ONLY)])
    assert r.status_code == 200, r.text
    wait_campaign_settled(b, B_ONLY)
    return Tenants(a, b, b_user, a_user)


# ---- the documented shapes of a rejection ----


def json_error(r: httpx.Response, status: int) -> str:
    """`{"error": "<code>", "message": "<text>"}` with this status; returns the code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    return error_code(r)


def plain_error(r: httpx.Response, status: int) -> str:
    """`{"error": "<text>"}` with this status (user data API, certificate key errors)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error"} and body["error"], body
    return str(body["error"])


def b_is_untouched(t: Tenants, control: Control) -> None:
    """B's user is still B's: same profile, same device, and B's next push reaches B's token."""
    r = t.b.user_api("profile", {"identifiers": {"uuid": t.b_user.uuid}})
    assert r.status_code == 200, r.text
    profile = r.json()
    assert profile["insider_id"] == t.b_user.insider_id
    assert profile["identifiers"] == t.b_user.identifiers(), profile
    assert profile["attributes"].get("INSIDER.name") == "Bea", profile
    (device,) = profile["devices"]
    assert (device["INSIDER.device_token"], device["INSIDER.model"], device["registered"]) == (
        t.b_user.token,
        "iPhone B",
        True,
    ), device
    r = t.b.push({"notifications": [notification(t.b_user.uuid, camp_id=B_ONLY)]})
    assert r.status_code == 200, r.text
    assert r.json()["successes"] == [{"INSIDER.device_token": t.b_user.token}], r.text


# ---- pushes ----


@pytest.mark.parametrize("kind", ["email", "phone_number", "custom", "all"])
def test_a_push_naming_b_users_by_any_identifier_finds_nobody(
    tenants: Tenants, control: Control, kind: str
) -> None:
    t = tenants
    every = t.b_user.identifiers()
    identifiers = every if kind == "all" else {kind: every[kind]}
    b_jobs = len(rows(t.b.server, "SELECT id FROM jobs WHERE token = ?", t.b_user.token))

    r = t.a.push(
        {"notifications": [{**notification("unused", camp_id=1), "identifiers": identifiers}]}
    )

    assert r.status_code == 200, r.text
    assert r.json() == {"successes": [], "errors": {"NoUserFound": [identifiers]}}
    assert len(rows(t.b.server, "SELECT id FROM jobs WHERE token = ?", t.b_user.token)) == b_jobs


@pytest.mark.parametrize("key", ["request_token", "sdk_key"])
def test_b_keys_of_the_other_kinds_push_nothing(tenants: Tenants, key: str) -> None:
    t = tenants
    r = t.b.push(
        {
            "api_key": getattr(t.b, key),
            "notifications": [notification(t.b_user.uuid, camp_id=B_ONLY)],
        }
    )

    assert json_error(r, 401) == "bad_api_key"


# ---- campaigns, statistics, Message Center ----


def test_a_sees_none_of_b_campaigns_in_the_list_report_or_statistics(tenants: Tenants) -> None:
    """A's own campaigns are SHARED and those of A's other tests here (NoUserFound sends)."""
    t = tenants
    listed = list_campaigns(t.a, **WIDE)
    assert listed.status_code == 200, listed.text
    names = {c["camp_id"]: c["name"] for c in listed.json()["campaigns"]}
    assert B_ONLY not in names and names[SHARED] == "A's shared", names
    assert json_error(report(t.a, B_ONLY), 404) == "campaign_not_found"
    shared = report_json(t.a, SHARED)
    assert (shared["name"], shared["funnel"]["requested"], shared["funnel"]["opened"]) == (
        "A's shared",
        1,
        0,
    )
    stats = get_statistics(t.a).json()
    assert {c["id"]: c["name"] for c in stats["campaigns"]} == names
    assert stats["total_session_count"] == 0, stats


@pytest.mark.parametrize("kind", ["Email", "Phone", "Uuid", "loyalty_id"])
def test_a_message_center_lists_nothing_of_b_user_by_any_identifier(
    tenants: Tenants, kind: str
) -> None:
    t = tenants
    value = {
        "Email": t.b_user.email,
        "Phone": t.b_user.phone,
        "Uuid": t.b_user.uuid,
        "loyalty_id": t.b_user.loyalty_id,
    }[kind]
    assert B_ONLY in {e["camp_id"] for e in inbox(t.b, t.b_user.uuid)}

    r = message_center(t.a, {"identifiers": {kind: value}})

    assert (r.status_code, r.json()) == (200, [])


@pytest.mark.parametrize("key", ["request_token", "sdk_key"])
def test_b_keys_of_the_other_kinds_read_no_statistics(tenants: Tenants, key: str) -> None:
    t = tenants
    secret = getattr(t.b, key)

    assert get_statistics(t.b, secret).status_code == 401
    assert get_statistics(t.b, secret).json() == {"error": "Bad Api Key."}
    assert json_error(list_campaigns(t.b, secret), 401) == "invalid_api_key"
    assert json_error(report(t.b, B_ONLY, secret), 401) == "invalid_api_key"
    mc = message_center(t.b, {"identifiers": {"Uuid": t.b_user.uuid}}, secret)
    assert (mc.status_code, mc.text) == (401, "bad api key")
    assert mc.headers["content-type"].startswith("text/plain")


# ---- user data (/api/user/v1/*) ----


def test_a_request_token_reads_no_b_profile_by_any_identifier_or_insider_id(
    tenants: Tenants,
) -> None:
    t = tenants
    for who in (
        {"identifiers": {"email": t.b_user.email}},
        {"identifiers": {"phone_number": t.b_user.phone}},
        {"identifiers": {"custom": {"loyalty_id": t.b_user.loyalty_id}}},
        {"insider_id": t.b_user.insider_id},
        {"identifiers": {"insider_id": t.b_user.insider_id}},
    ):
        r = t.a.user_api("profile", who)
        assert r.status_code == 404, (who, r.text)
        assert r.json() == {"error": "no such user for these identifiers: no data"}


def test_a_request_token_cannot_change_or_delete_b_user(tenants: Tenants, control: Control) -> None:
    t = tenants
    upsert = t.a.user_api(
        "upsert",
        {
            "users": [
                {"insider_id": t.b_user.insider_id, "attributes": {"name": "Mallory"}},
                {"identifiers": t.b_user.identifiers(), "attributes": {"name": "Mallory"}},
            ]
        },
    )
    assert upsert.status_code == 200, upsert.text
    for who in (
        {"insider_id": t.b_user.insider_id},
        {"identifiers": {"email": t.b_user.email}},
        {"identifiers": {"phone_number": t.b_user.phone}},
    ):
        r = t.a.user_api("delete", who)
        assert (r.status_code, r.json()) == (200, {}), r.text

    b_is_untouched(t, control)


@pytest.mark.parametrize("key", ["api_key", "sdk_key"])
@pytest.mark.parametrize("action", ["upsert", "profile", "delete"])
def test_b_keys_of_the_other_kinds_open_no_user_data(
    tenants: Tenants, key: str, action: str
) -> None:
    t = tenants
    r = t.b.server.client.post(
        f"/api/user/v1/{action}",
        json={"identifiers": {"uuid": t.b_user.uuid}},
        headers={"X-PARTNER-NAME": t.b.name, "X-REQUEST-TOKEN": getattr(t.b, key)},
    )

    assert plain_error(r, 403) == USER_FORBIDDEN["error"]


# ---- the SDK: a forged session ----


@pytest.mark.parametrize("claim", ["identifiers", "insider_id"])
def test_a_sdk_session_claiming_b_user_and_device_takes_nothing_from_b(
    tenants: Tenants, control: Control, claim: str
) -> None:
    """The SDK key ships inside A's app, so anyone can forge A's sessions: with B's user's
    identifiers (or insider_id), B's device token and udid, the session makes or updates a
    profile of A only."""
    t = tenants
    identifiers = (
        {"email": t.b_user.email, "phone_number": t.b_user.phone, "uuid": t.b_user.uuid}
        if claim == "identifiers"
        else {"insider_id": t.b_user.insider_id}
    )
    r = t.a.server.client.post(
        "/api/sdk/v1/session",
        json={
            "identifiers": identifiers,
            "device": {
                "platform": "ios",
                "device_token": t.b_user.token,
                "udid": t.b_user.udid,
                "push_optin": False,
                "model": "forged",
            },
        },
        headers={"X-SDK-KEY": t.a.sdk_key},
    )

    assert r.status_code == 200, r.text
    assert r.json()["insider_id"] != t.b_user.insider_id
    b_is_untouched(t, control)


@pytest.mark.parametrize("key", ["api_key", "request_token"])
def test_b_keys_of_the_other_kinds_register_no_device(tenants: Tenants, key: str) -> None:
    t = tenants
    r = t.b.server.client.post(
        "/api/sdk/v1/session",
        json={"identifiers": {"uuid": t.b_user.uuid}, "device": {"platform": "ios"}},
        headers={"X-SDK-KEY": getattr(t.b, key)},
    )

    assert json_error(r, 401) == "bad_sdk_key"


# ---- credentials ----


def credential_rows(partner: Partner) -> list[dict[str, Any]]:
    return rows(
        partner.server,
        "SELECT c.platform, c.kind, c.validated, c.data, c.ref FROM credentials c"
        " JOIN partners p ON p.id = c.partner_id WHERE p.name = ? ORDER BY c.platform",
        partner.name,
    )


def test_a_certificate_uploads_change_only_a_credentials(
    tenants: Tenants, control: Control
) -> None:
    t = tenants
    before = credential_rows(t.b)
    a = t.a.server.create_partner()  # its credentials end up broken: not the scenario's A
    apns = generate_apns_credential(InMemoryCredentials(), bundle_id="com.example.app")
    broken = {**apns.as_upload(), "private_key": "not a key"}
    for provider, body in [("apns", broken), ("huawei", {"app_id": "1"}), ("firebase", {})]:
        r = a.server.client.post(
            f"/v1/settings/certificate/{provider}", json=body, headers={"X-API-KEY": a.api_key}
        )
        assert json_error(r, 406) == "invalid_certificate"

    assert credential_rows(t.b) == before
    b_is_untouched(t, control)


@pytest.mark.parametrize("key", ["request_token", "sdk_key"])
def test_b_keys_of_the_other_kinds_upload_no_certificate(tenants: Tenants, key: str) -> None:
    t = tenants
    before = credential_rows(t.b)
    apns = generate_apns_credential(InMemoryCredentials(), bundle_id="com.example.app")

    r = t.b.server.client.post(
        "/v1/settings/certificate/apns",
        json=apns.as_upload(),
        headers={"X-API-KEY": getattr(t.b, key)},
    )

    assert (r.status_code, r.json()) == (403, {"error": "Invalid api key"})
    assert credential_rows(t.b) == before


# ---- the dashboard ----


@contextlib.contextmanager
def dashboard(server: Server, api_key: str) -> Iterator[Callable[[str], httpx.Response]]:
    """A browser-like client signed in with `api_key`; yields GET of a dashboard path. The
    session cookie is Secure, which httpx keeps from http:// pages, so it is sent by hand."""
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        r = client.post("/dashboard/session", json={"api_key": api_key})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"].split(";", 1)[0]
        yield lambda path: client.get(path, params=WIDE, headers={"Cookie": cookie})


def test_a_dashboard_session_shows_none_of_b_campaigns(tenants: Tenants) -> None:
    t = tenants
    with dashboard(t.a.server, t.a.api_key) as get:
        listed = get("/dashboard/api/campaigns")
        assert listed.status_code == 200, listed.text
        assert listed.json() == list_campaigns(t.a, **WIDE).json()
        assert B_ONLY not in {c["camp_id"] for c in listed.json()["campaigns"]}
        assert json_error(get(f"/dashboard/api/campaigns/{B_ONLY}/report"), 404) == (
            "campaign_not_found"
        )
        shared = get(f"/dashboard/api/campaigns/{SHARED}/report")
        assert shared.status_code == 200, shared.text
        assert shared.json() == report_json(t.a, SHARED)
        assert shared.json()["name"] == "A's shared"


@pytest.mark.parametrize("key", ["request_token", "sdk_key"])
def test_b_keys_of_the_other_kinds_open_no_dashboard_session(tenants: Tenants, key: str) -> None:
    t = tenants
    with httpx.Client(base_url=t.b.server.base_url, timeout=30.0) as client:
        r = client.post("/dashboard/session", json={"api_key": getattr(t.b, key)})

        assert json_error(r, 401) == "invalid_api_key"
        assert "set-cookie" not in r.headers
        assert json_error(client.get("/dashboard/api/campaigns"), 401) == "not_signed_in"
