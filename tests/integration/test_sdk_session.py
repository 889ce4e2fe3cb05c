"""The mobile SDK's session call: POST /api/sdk/v1/session (contract.md, "Devices")."""

from __future__ import annotations

import os
import re
from contextlib import closing
from typing import Any

import httpx
import pytest

from tests.support.server import Partner, Server

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


@pytest.fixture(scope="module")
def partner(server: Server) -> Partner:
    """One partner for the module (creating one per test costs a CLI run); every test
    uses identifiers, tokens and udids of its own."""
    return server.create_partner()


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{os.urandom(6).hex()}"


def token() -> str:
    return os.urandom(32).hex()


def session(partner: Partner, body: Any, key: str | None = None) -> httpx.Response:
    return partner.server.client.post(
        "/api/sdk/v1/session",
        json=body,
        headers={"X-SDK-KEY": partner.sdk_key if key is None else key},
    )


def register(partner: Partner, identifiers: dict[str, Any] | None, **device: Any) -> str:
    body: dict[str, Any] = {"device": {"platform": "ios", "environment": "production", **device}}
    if identifiers is not None:
        body["identifiers"] = identifiers
    r = session(partner, body)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"insider_id"}
    return str(r.json()["insider_id"])


def push(partner: Partner, identifiers: dict[str, str], report: list[str] | None = None) -> Any:
    body: dict[str, Any] = {
        "notifications": [
            {
                "identifiers": identifiers,
                "camp_id": 11,
                "camp_name": "sdk",
                "title": "t",
                "message": "m",
                "image_url": "https://img.example/i.jpg",
            }
        ]
    }
    if report is not None:
        body["report_attributes"] = report
    r = partner.push(body)
    assert r.status_code == 200, r.text
    return r.json()


def sent_to(partner: Partner, identifiers: dict[str, str]) -> list[str]:
    answer = push(partner, identifiers)
    return [s["INSIDER.device_token"] for s in answer["successes"]]


def devices(server: Server, partner: Partner, where: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(server.db()) as db:
        return db.execute(
            "SELECT d.token, d.udid, d.status FROM devices d JOIN partners p"
            f" ON p.id = d.partner_id WHERE p.name = ? AND ({where}) ORDER BY d.id",
            (partner.name, *args),
        ).fetchall()


def assert_api_error(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error", "message"}, body
    assert isinstance(body["error"], str) and SNAKE_CASE.match(body["error"]), body
    assert isinstance(body["message"], str) and body["message"], body


# --- answer and keys ------------------------------------------------------------------------


def test_session_answers_200_with_an_insider_id(partner: Partner) -> None:
    r = session(
        partner,
        {
            "identifiers": {"email": f"{uid('s')}@mail.example"},
            "device": {"platform": "ios", "device_token": token(), "udid": uid("udid")},
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"insider_id"}
    assert isinstance(body["insider_id"], str) and body["insider_id"]


@pytest.mark.parametrize("platform", ["ios", "android", "huawei"])
def test_each_platform_registers_a_device_that_can_be_pushed_to(
    partner: Partner, platform: str
) -> None:
    u, t = uid(), token()
    register(partner, {"uuid": u}, platform=platform, device_token=t)
    assert sent_to(partner, {"uuid": u}) == [t]


@pytest.mark.parametrize("kind", ["wrong", "missing", "empty", "api_key", "request_token"])
def test_bad_sdk_key_is_401(partner: Partner, kind: str) -> None:
    body = {"identifiers": {"uuid": uid()}, "device": {"platform": "ios", "device_token": token()}}
    headers = {
        "wrong": {"X-SDK-KEY": "pgs_wrong"},
        "missing": {},
        "empty": {"X-SDK-KEY": ""},
        "api_key": {"X-SDK-KEY": partner.api_key},
        "request_token": {"X-SDK-KEY": partner.request_token},
    }[kind]
    r = partner.server.client.post("/api/sdk/v1/session", json=body, headers=headers)
    assert_api_error(r, 401)


def test_a_session_with_a_bad_key_registers_nothing(server: Server, partner: Partner) -> None:
    t = token()
    r = session(
        partner,
        {"identifiers": {"uuid": uid()}, "device": {"platform": "ios", "device_token": t}},
        key="pgs_wrong",
    )
    assert r.status_code == 401
    with closing(server.db()) as db:
        assert db.execute("SELECT count(*) FROM devices WHERE token = ?", (t,)).fetchone()[0] == 0


INVALID_BODIES: dict[str, Any] = {
    "not_json": b"{not json",
    "empty_body": b"",
    "array": b"[]",
    "null": b"null",
    "string": b'"device"',
    "no_device": {"identifiers": {"uuid": "x"}},
    "device_not_object": {"device": "ios"},
    "no_platform": {"device": {"device_token": "ab12"}},
    "unknown_platform": {"device": {"platform": "windows", "device_token": "ab12"}},
    "platform_not_string": {"device": {"platform": 1, "device_token": "ab12"}},
    "no_token": {"device": {"platform": "ios"}},
    "empty_token": {"device": {"platform": "ios", "device_token": ""}},
    "token_not_string": {"device": {"platform": "android", "device_token": 12345}},
    "push_optin_not_boolean": {
        "device": {"platform": "ios", "device_token": "ab12", "push_optin": "yes"}
    },
    "identifiers_not_object": {
        "identifiers": ["a@b.co"],
        "device": {"platform": "ios", "device_token": "ab12"},
    },
    "identifier_not_string": {
        "identifiers": {"uuid": {"id": 1}},
        "device": {"platform": "ios", "device_token": "ab12"},
    },
    "attributes_not_object": {
        "attributes": "Ada",
        "device": {"platform": "ios", "device_token": "ab12"},
    },
}


@pytest.mark.parametrize("case", list(INVALID_BODIES))
def test_invalid_session_bodies_are_400_with_error_and_message(partner: Partner, case: str) -> None:
    body = INVALID_BODIES[case]
    if isinstance(body, bytes):
        r = partner.server.client.post(
            "/api/sdk/v1/session",
            content=body,
            headers={"X-SDK-KEY": partner.sdk_key, "Content-Type": "application/json"},
        )
    else:
        r = session(partner, body)
    assert_api_error(r, 400)


# --- profile matching -----------------------------------------------------------------------


def test_profile_is_matched_by_any_identifier(partner: Partner) -> None:
    email, u, phone = f"{uid('m')}@mail.example", uid(), "+6591234567"
    first = register(partner, {"email": email, "uuid": u}, device_token=token())
    assert register(partner, {"uuid": u}, device_token=token()) == first
    assert register(partner, {"email": email.upper()}, device_token=token()) == first
    assert register(partner, {"INSIDER.uuid": u, "phone_number": phone}, device_token=token()) == (
        first
    )
    # the phone number was attached to the same profile
    assert register(partner, {"phone_number": phone}, device_token=token()) == first


def test_different_identifiers_make_different_profiles(partner: Partner) -> None:
    a = register(partner, {"uuid": uid()}, device_token=token())
    b = register(partner, {"uuid": uid()}, device_token=token())
    assert a != b


def test_a_session_joins_the_profile_created_by_a_user_data_upsert(partner: Partner) -> None:
    email = f"{uid('up')}@mail.example"
    r = partner.user_api(
        "upsert", {"users": [{"identifiers": {"email": email}, "attributes": {"name": "Upserted"}}]}
    )
    assert r.status_code == 200 and r.json()["data"]["successful"] == {"count": 1}
    t = token()
    register(partner, {"email": email}, device_token=t)
    answer = push(partner, {"email": email}, ["INSIDER.name", "INSIDER.device_token"])
    assert answer["successes"] == [{"INSIDER.name": "Upserted", "INSIDER.device_token": t}]


def test_sessions_of_different_partners_never_share_a_profile(
    server: Server, partner: Partner
) -> None:
    u = uid()
    other = server.create_partner()
    mine = register(partner, {"uuid": u}, device_token=token())
    theirs = other.session({"uuid": u})
    assert mine != theirs


# --- device matching ------------------------------------------------------------------------


def test_device_is_matched_by_udid_and_a_new_token_replaces_the_old(
    server: Server, partner: Partner
) -> None:
    u, udid, old, new = uid(), uid("udid"), token(), token()
    first = register(partner, {"uuid": u}, device_token=old, udid=udid)
    assert register(partner, {"uuid": u}, device_token=new, udid=udid) == first
    assert sent_to(partner, {"uuid": u}) == [new]
    assert devices(server, partner, "d.udid = ? OR d.token IN (?, ?)", udid, old, new) == [
        (new, udid, "active")
    ]


def test_device_without_udid_is_matched_by_token(server: Server, partner: Partner) -> None:
    u, t = uid(), token()
    register(partner, {"uuid": u}, device_token=t, model="iPhone 11", app_version="4.0")
    register(partner, {"uuid": u}, device_token=t, model="iPhone 15", app_version="4.1")
    assert len(devices(server, partner, "d.token = ?", t)) == 1
    answer = push(partner, {"uuid": u}, ["INSIDER.model", "INSIDER.app_version"])
    assert answer["successes"] == [{"INSIDER.model": "iPhone 15", "INSIDER.app_version": "4.1"}]


def test_a_session_without_udid_updates_the_device_that_has_its_token(
    server: Server, partner: Partner
) -> None:
    u, t, udid = uid(), token(), uid("udid")
    register(partner, {"uuid": u}, device_token=t, udid=udid, app_version="1.0")
    register(partner, {"uuid": u}, device_token=t, app_version="2.0")
    assert len(devices(server, partner, "d.token = ? OR d.udid = ?", t, udid)) == 1
    answer = push(partner, {"uuid": u}, ["INSIDER.app_version", "INSIDER.udid"])
    assert answer["successes"] == [{"INSIDER.app_version": "2.0", "INSIDER.udid": udid}]


def test_a_new_token_for_the_same_udid_revives_an_unregistered_device(
    server: Server, partner: Partner
) -> None:
    u, udid, dead, fresh = uid(), uid("udid"), token(), token()
    register(partner, {"uuid": u}, device_token=dead, udid=udid)
    with closing(server.db()) as db:
        changed = db.execute(
            "UPDATE devices SET status = 'unregistered' WHERE udid = ?", (udid,)
        ).rowcount
    assert changed == 1
    assert push(partner, {"uuid": u}) == {
        "successes": [],
        "errors": {"Unregistered": [{"uuid": u}]},
    }

    register(partner, {"uuid": u}, device_token=fresh, udid=udid)
    assert push(partner, {"uuid": u}) == {
        "successes": [{"INSIDER.device_token": fresh}],
        "errors": {},
    }
    assert devices(server, partner, "d.udid = ?", udid) == [(fresh, udid, "active")]


def test_the_last_active_device_wins(partner: Partner) -> None:
    u = uid()
    phone, tablet = token(), token()
    phone_udid, tablet_udid = uid("udid"), uid("udid")
    register(partner, {"uuid": u}, device_token=phone, udid=phone_udid)
    register(partner, {"uuid": u}, platform="android", device_token=tablet, udid=tablet_udid)
    assert sent_to(partner, {"uuid": u}) == [tablet]
    register(partner, {"uuid": u}, device_token=phone, udid=phone_udid)
    answer = push(partner, {"uuid": u}, ["INSIDER.device_token", "INSIDER.platform"])
    assert [s["INSIDER.device_token"] for s in answer["successes"]] == [phone]
    assert str(answer["successes"][0]["INSIDER.platform"]).lower() == "ios"


def test_a_session_with_push_optin_false_opts_the_user_out_until_opted_in_again(
    partner: Partner,
) -> None:
    u, t, udid = uid(), token(), uid("udid")
    register(partner, {"uuid": u}, device_token=t, udid=udid, push_optin=False)
    assert push(partner, {"uuid": u}) == {"successes": [], "errors": {"OptOut": [{"uuid": u}]}}
    register(partner, {"uuid": u}, device_token=t, udid=udid, push_optin=True)
    assert sent_to(partner, {"uuid": u}) == [t]


# --- report attributes ----------------------------------------------------------------------


def test_every_device_field_is_stored_as_an_insider_report_attribute(partner: Partner) -> None:
    email, u = f"{uid('all')}@mail.example", uid()
    device = {
        "platform": "ios",
        "device_token": token(),
        "environment": "production",
        "udid": uid("98BB170F"),
        "push_optin": True,
        "location_optin": False,
        "app_version": "4.0",
        "os_version": "17.1",
        "model": "iPhone 11",
        "carrier": "mycarrier",
        "sdk_version": "1.0",
        "timezone": "Europe/Helsinki",
        "device_language": "en",
        "package_name": "com.example.app",
        "screen_width": 1170,
        "screen_height": 2532,
        "idfa": "AF3CCF3F-0V8E-6571-B296-E9BDFF7",
    }
    r = session(
        partner,
        {
            "identifiers": {"email": email, "phone_number": "+6512345678", "uuid": u},
            "device": device,
            "attributes": {"name": "Ada"},
        },
    )
    assert r.status_code == 200
    insider_id = r.json()["insider_id"]
    expected = {f"INSIDER.{k}": v for k, v in device.items()}
    expected |= {
        "INSIDER.email": email,
        "INSIDER.phone_number": "+6512345678",
        "INSIDER.uuid": u,
        "INSIDER.name": "Ada",
        "INSIDER.insider_id": insider_id,
    }
    answer = push(partner, {"uuid": u}, list(expected))
    assert answer["errors"] == {}
    (report,) = answer["successes"]
    assert str(report.pop("INSIDER.platform")).lower() == "ios"
    expected.pop("INSIDER.platform")
    assert report == expected


def test_a_later_session_updates_the_reported_device_attributes(partner: Partner) -> None:
    u, udid, t = uid(), uid("udid"), token()
    register(partner, {"uuid": u}, device_token=t, udid=udid, app_version="4.0", carrier="a")
    register(partner, {"uuid": u}, device_token=t, udid=udid, app_version="4.1", carrier="b")
    answer = push(partner, {"uuid": u}, ["INSIDER.app_version", "INSIDER.carrier"])
    assert answer["successes"] == [{"INSIDER.app_version": "4.1", "INSIDER.carrier": "b"}]


def test_report_attributes_come_from_the_device_that_was_sent_to(partner: Partner) -> None:
    u = uid()
    register(partner, {"uuid": u}, device_token=token(), udid=uid("udid"), model="Old phone")
    t = token()
    register(
        partner, {"uuid": u}, platform="android", device_token=t, udid=uid("udid"), model="Pixel"
    )
    answer = push(partner, {"uuid": u}, ["INSIDER.model", "INSIDER.device_token"])
    assert answer["successes"] == [{"INSIDER.model": "Pixel", "INSIDER.device_token": t}]


def test_only_requested_report_attributes_appear_and_unknown_ones_are_null(
    partner: Partner,
) -> None:
    u = uid()
    register(partner, {"uuid": u}, device_token=token(), model="iPhone 11")
    answer = push(partner, {"uuid": u}, ["INSIDER.model", "INSIDER.surname"])
    assert answer["successes"] == [{"INSIDER.model": "iPhone 11", "INSIDER.surname": None}]


def test_session_attributes_are_stored_on_the_profile(partner: Partner) -> None:
    u = uid()
    register(partner, {"uuid": u}, device_token=token())
    r = session(
        partner,
        {
            "identifiers": {"uuid": u},
            "device": {"platform": "ios", "device_token": token()},
            "attributes": {"name": "Grace", "surname": "Hopper"},
        },
    )
    assert r.status_code == 200
    answer = push(partner, {"uuid": u}, ["INSIDER.name", "INSIDER.surname"])
    assert answer["successes"] == [{"INSIDER.name": "Grace", "INSIDER.surname": "Hopper"}]


@pytest.mark.parametrize("udid", [{"id": 1}, ["98BB170F"], []])
def test_a_non_string_udid_is_not_a_server_error(partner: Partner, udid: Any) -> None:
    r = session(
        partner,
        {
            "identifiers": {"uuid": uid()},
            "device": {"platform": "ios", "device_token": token(), "udid": udid},
        },
    )
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert_api_error(r, 400)
