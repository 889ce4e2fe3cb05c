"""User data API: POST /api/user/v1/upsert, /profile and /delete (insider-ecosystem.md §4)."""

from __future__ import annotations

import json
import os
from contextlib import closing
from typing import Any

import httpx
import pytest

from tests.support.server import Partner, Server

EMAIL_RULE = r"regexp(^.+@.+\..+$)"
PHONE_RULE = r"regexp(^\+[1-9]\d{6,14}$)"
EVENT_NAME_RULE = r"regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"
MAX_BODY = 5_000_000


@pytest.fixture(scope="module")
def partner(server: Server) -> Partner:
    """One partner for the module (creating one per test costs a CLI run); every test
    uses identifiers of its own, and tests about partners create their own."""
    return server.create_partner()


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{os.urandom(6).hex()}"


def post_raw(partner: Partner, action: str, content: bytes, **headers: str) -> httpx.Response:
    return partner.server.client.post(
        f"/api/user/v1/{action}",
        content=content,
        headers={
            "Content-Type": "application/json",
            "X-PARTNER-NAME": partner.name,
            "X-REQUEST-TOKEN": partner.request_token,
            **headers,
        },
    )


def upsert(partner: Partner, *users: dict[str, Any]) -> dict[str, Any]:
    r = partner.user_api("upsert", {"users": list(users)})
    assert r.status_code == 200, r.text
    return dict(r.json())


def ok(count: int) -> dict[str, Any]:
    return {"data": {"successful": {"count": count}, "fail": {}}}


def push_report(partner: Partner, identifiers: dict[str, str], attributes: list[str]) -> Any:
    r = partner.push(
        {
            "report_attributes": attributes,
            "notifications": [
                {
                    "identifiers": identifiers,
                    "camp_id": 7,
                    "camp_name": "user data",
                    "title": "t",
                    "message": "m",
                    "image_url": "https://img.example/i.jpg",
                }
            ],
        }
    )
    assert r.status_code == 200, r.text
    return r.json()


def find_attribute(document: Any, name: str) -> Any:
    """The value of an attribute anywhere in a profile document, whatever its nesting,
    under its own name or its INSIDER. name (the profile shape is the developers' design)."""
    if isinstance(document, dict):
        for key in (name, f"INSIDER.{name}"):
            if key in document:
                return document[key]
        for value in document.values():
            found = find_attribute(value, name)
            if found is not None:
                return found
    elif isinstance(document, list):
        for value in document:
            found = find_attribute(value, name)
            if found is not None:
                return found
    return None


def read_profile(partner: Partner, identifiers: dict[str, Any]) -> Any:
    r = partner.user_api("profile", {"identifiers": identifiers})
    assert r.status_code == 200, r.text
    return r.json()


def assert_error_only(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


# --- authentication -------------------------------------------------------------------------


def test_upsert_with_the_partners_name_and_data_token_succeeds(partner: Partner) -> None:
    r = partner.user_api(
        "upsert", {"users": [{"identifiers": {"uuid": uid()}, "attributes": {"name": "Ada"}}]}
    )
    assert r.status_code == 200
    assert r.json() == ok(1)


@pytest.mark.parametrize("action", ["upsert", "profile", "delete"])
@pytest.mark.parametrize(
    "case", ["wrong_token", "wrong_name", "no_headers", "api_key_as_token", "sdk_key_as_token"]
)
def test_bad_partner_name_or_request_token_is_forbidden(
    partner: Partner, action: str, case: str
) -> None:
    headers = {
        "wrong_token": {"X-PARTNER-NAME": partner.name, "X-REQUEST-TOKEN": "pgt_not-a-token"},
        "wrong_name": {"X-PARTNER-NAME": "someoneelse", "X-REQUEST-TOKEN": partner.request_token},
        "no_headers": {},
        "api_key_as_token": {"X-PARTNER-NAME": partner.name, "X-REQUEST-TOKEN": partner.api_key},
        "sdk_key_as_token": {"X-PARTNER-NAME": partner.name, "X-REQUEST-TOKEN": partner.sdk_key},
    }[case]
    body = {"users": [{"identifiers": {"uuid": "x1"}, "attributes": {"name": "A"}}]}
    if action != "upsert":
        body = {"identifiers": {"uuid": "x1"}}
    r = partner.server.client.post(f"/api/user/v1/{action}", json=body, headers=headers)
    assert_error_only(r, 403)


def test_forbidden_upsert_stores_nothing(partner: Partner) -> None:
    u = uid()
    r = partner.server.client.post(
        "/api/user/v1/upsert",
        json={"users": [{"identifiers": {"uuid": u}, "attributes": {"name": "A"}}]},
        headers={"X-PARTNER-NAME": partner.name, "X-REQUEST-TOKEN": "nope"},
    )
    assert r.status_code == 403
    r = partner.user_api("profile", {"identifiers": {"uuid": u}})
    assert r.status_code == 404


def test_a_partners_token_does_not_open_another_partners_data(
    server: Server, partner: Partner
) -> None:
    other = server.create_partner()
    r = server.client.post(
        "/api/user/v1/upsert",
        json={"users": [{"identifiers": {"uuid": "x"}, "attributes": {"name": "A"}}]},
        headers={"X-PARTNER-NAME": other.name, "X-REQUEST-TOKEN": partner.request_token},
    )
    assert_error_only(r, 403)


def test_user_api_rate_limit_answers_429_with_the_documented_body(server: Server) -> None:
    limited = server.create_partner()
    limited.update("--rate-limit", "3")
    statuses = []
    for _ in range(10):
        r = limited.user_api(
            "upsert", {"users": [{"identifiers": {"uuid": uid()}, "attributes": {"age": 1}}]}
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.json() == {"error": "rejected: too many requests"}
    assert 429 in statuses, statuses
    assert set(statuses) <= {200, 429}


# --- answer shape and validation ------------------------------------------------------------


def test_upsert_counts_every_valid_user(partner: Partner) -> None:
    users = [
        {
            "identifiers": {"email": f"{uid('m')}@mail.example", "phone_number": "+6512345678"},
            "attributes": {"name": "Ada", "surname": "L", "email_optin": True, "age": 30},
        },
        {
            "identifiers": {"uuid": uid(), "custom": {"user_loyalty_id": uid("loy")}},
            "events": [
                {
                    "event_name": "purchase",
                    "timestamp": "2021-01-10T21:35:20Z",
                    "event_params": {"custom": {}},
                }
            ],
        },
    ]
    assert partner.user_api("upsert", {"users": users}).json() == ok(2)


def test_spec_sample_user_is_accepted(partner: Partner) -> None:
    sample = {
        "identifiers": {
            "email": "a@b.co",
            "phone_number": "+6512345678",
            "uuid": "1x2y3z",
            "custom": {"user_loyalty_id": "xyz123"},
        },
        "attributes": {
            "name": "Ada",
            "surname": "L",
            "email_optin": True,
            "age": 30,
            "language": "en_US",
            "birthday": "1980-01-01T00:00:00Z",
            "custom": {"loyalty": "Gold"},
        },
        "events": [
            {
                "event_name": "purchase",
                "timestamp": "2021-01-10T21:35:20Z",
                "event_params": {"custom": {}},
            }
        ],
    }
    r = partner.user_api("upsert", {"users": [sample]})
    assert r.status_code == 200
    assert r.json() == ok(1)
    profile = read_profile(partner, {"uuid": "1x2y3z"})
    assert find_attribute(profile, "name") == "Ada"
    assert find_attribute(profile, "loyalty") == "Gold"


def test_invalid_email_is_reported_under_its_rule_key_with_the_documented_message(
    partner: Partner,
) -> None:
    r = partner.user_api(
        "upsert", {"users": [{"identifiers": {"email": "sample"}, "attributes": {"name": "x"}}]}
    )
    assert r.status_code == 200
    assert r.json() == {
        "data": {
            "successful": {"count": 0},
            "fail": {
                "count": 1,
                "errors": {
                    f"users.0.identifiers.email.{EMAIL_RULE}": ["not a valid email address: sample"]
                },
            },
        }
    }


def test_invalid_email_beside_a_valid_uuid_fails_the_user_under_the_email_rule(
    partner: Partner,
) -> None:
    u = uid()
    r = partner.user_api(
        "upsert",
        {"users": [{"identifiers": {"uuid": u, "email": "sample"}, "attributes": {"name": "x"}}]},
    )
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["successful"] == {"count": 0}
    assert data["fail"] == {
        "count": 1,
        "errors": {
            f"users.0.identifiers.email.{EMAIL_RULE}": ["not a valid email address: sample"]
        },
    }


@pytest.mark.parametrize("email", ["a@b", "@b.co", "a@.co", "ab.co", "a@b.co\n", "a\n@b.co"])
def test_emails_outside_the_rule_fail_under_the_email_rule(partner: Partner, email: str) -> None:
    r = partner.user_api(
        "upsert",
        {"users": [{"identifiers": {"uuid": uid(), "email": email}, "attributes": {"age": 1}}]},
    )
    assert r.status_code == 200
    assert r.json()["data"] == {
        "successful": {"count": 0},
        "fail": {
            "count": 1,
            "errors": {
                f"users.0.identifiers.email.{EMAIL_RULE}": [f"not a valid email address: {email}"]
            },
        },
    }


@pytest.mark.parametrize("email", ["a@b.co", "first.last+tag@mail.example.com", "x@y.z"])
def test_emails_matching_the_rule_are_accepted(partner: Partner, email: str) -> None:
    r = partner.user_api(
        "upsert", {"users": [{"identifiers": {"email": email}, "attributes": {"age": 1}}]}
    )
    assert r.json() == ok(1)


@pytest.mark.parametrize(
    "phone",
    [
        "123",
        "6512345678",
        "+0512345678",
        "+65 1234 5678",
        "+65",
        "+6512345678\n",
        "+1234567890123456",
        "+\u0665\u0661\u0662\u0663\u0664\u0665\u0666\u0667",
    ],
)
def test_invalid_phone_number_is_reported_under_the_phone_rule(
    partner: Partner, phone: str
) -> None:
    r = partner.user_api(
        "upsert",
        {
            "users": [
                {"identifiers": {"uuid": uid(), "phone_number": phone}, "attributes": {"age": 1}}
            ]
        },
    )
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["successful"] == {"count": 0}
    assert data["fail"]["count"] == 1
    errors = data["fail"]["errors"]
    assert list(errors) == [f"users.0.identifiers.phone_number.{PHONE_RULE}"]
    (messages,) = errors.values()
    assert len(messages) == 1 and isinstance(messages[0], str) and phone in messages[0]


def test_non_string_uuid_is_reported_under_the_type_rule(partner: Partner) -> None:
    r = partner.user_api(
        "upsert",
        {"users": [{"identifiers": {"uuid": 12345, "email": "ok@b.co"}, "attributes": {"a": 1}}]},
    )
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["successful"] == {"count": 0}
    assert data["fail"]["count"] == 1
    assert list(data["fail"]["errors"]) == ["users.0.identifiers.uuid.type(string)"]


@pytest.mark.parametrize("name", ["Purchase", "bad name", "-start", "", "ürün", "buy\n"])
def test_invalid_event_name_is_reported_under_the_event_name_rule(
    partner: Partner, name: str
) -> None:
    r = partner.user_api(
        "upsert",
        {"users": [{"identifiers": {"uuid": uid()}, "events": [{"event_name": name}]}]},
    )
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["successful"] == {"count": 0}
    assert data["fail"]["count"] == 1
    keys = list(data["fail"]["errors"])
    assert len(keys) == 1, keys
    assert keys[0].startswith("users.0.events.0.") and keys[0].endswith(EVENT_NAME_RULE), keys


@pytest.mark.parametrize("name", ["purchase", "add_to_cart", "p2.view-item", "0day", "viewedItem"])
def test_valid_event_names_are_accepted(partner: Partner, name: str) -> None:
    r = partner.user_api(
        "upsert", {"users": [{"identifiers": {"uuid": uid()}, "events": [{"event_name": name}]}]}
    )
    assert r.json() == ok(1)


def test_rule_keys_carry_the_index_of_the_failing_user_and_valid_users_are_kept(
    partner: Partner,
) -> None:
    good = [uid(), uid()]
    r = partner.user_api(
        "upsert",
        {
            "users": [
                {"identifiers": {"uuid": good[0]}, "attributes": {"name": "first"}},
                {"identifiers": {"uuid": uid(), "email": "nope"}, "attributes": {"name": "x"}},
                {"identifiers": {"uuid": good[1]}, "attributes": {"name": "third"}},
            ]
        },
    )
    assert r.status_code == 200
    assert r.json() == {
        "data": {
            "successful": {"count": 2},
            "fail": {
                "count": 1,
                "errors": {
                    f"users.1.identifiers.email.{EMAIL_RULE}": ["not a valid email address: nope"]
                },
            },
        }
    }
    assert find_attribute(read_profile(partner, {"uuid": good[0]}), "name") == "first"
    assert find_attribute(read_profile(partner, {"uuid": good[1]}), "name") == "third"


def test_a_user_with_neither_attributes_nor_events_fails(partner: Partner) -> None:
    r = partner.user_api("upsert", {"users": [{"identifiers": {"uuid": uid()}}]})
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["successful"] == {"count": 0}
    assert data["fail"]["count"] == 1 and len(data["fail"]["errors"]) >= 1


def test_a_user_without_identifiers_or_insider_id_fails(partner: Partner) -> None:
    r = partner.user_api("upsert", {"users": [{"attributes": {"name": "nobody"}}]})
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["successful"] == {"count": 0}
    assert data["fail"]["count"] == 1 and len(data["fail"]["errors"]) >= 1


def test_upsert_by_insider_id_updates_that_profile(partner: Partner) -> None:
    u = uid()
    insider_id = partner.session({"uuid": u})
    r = partner.user_api(
        "upsert", {"users": [{"insider_id": insider_id, "attributes": {"name": "ById"}}]}
    )
    assert r.json() == ok(1)
    answer = push_report(partner, {"uuid": u}, ["INSIDER.name", "INSIDER.insider_id"])
    assert answer["successes"] == [{"INSIDER.name": "ById", "INSIDER.insider_id": insider_id}]


@pytest.mark.parametrize("body", [{}, {"user": []}, {"users": None}])
def test_missing_users_is_a_bad_request(partner: Partner, body: dict[str, Any]) -> None:
    r = partner.user_api("upsert", body)
    assert r.status_code == 400
    assert r.json() == {"error": "users must be defined: bad request"}


@pytest.mark.parametrize("content", [b"", b"not json", b"{", b"[1, 2]", b'"users"', b"null"])
def test_malformed_upsert_bodies_get_400_in_the_user_api_error_shape(
    partner: Partner, content: bytes
) -> None:
    assert_error_only(post_raw(partner, "upsert", content), 400)


def test_a_thousand_users_are_accepted(partner: Partner) -> None:
    users = [{"identifiers": {"uuid": uid("k")}, "attributes": {"age": i}} for i in range(1000)]
    r = partner.user_api("upsert", {"users": users})
    assert r.status_code == 200
    assert r.json() == ok(1000)


def test_more_than_a_thousand_users_is_a_bad_request_and_stores_nothing(partner: Partner) -> None:
    users = [{"identifiers": {"uuid": uid("k")}, "attributes": {"age": i}} for i in range(1001)]
    r = partner.user_api("upsert", {"users": users})
    assert_error_only(r, 400)
    assert partner.user_api("profile", {"identifiers": users[0]["identifiers"]}).status_code == 404


def _body_of_size(size: int, uuid: str) -> bytes:
    head = json.dumps(
        {"users": [{"identifiers": {"uuid": uuid}, "attributes": {"custom": {"blob": ""}}}]},
        separators=(",", ":"),
    ).encode()
    cut = head.index(b'"blob":""') + len(b'"blob":"')
    body = head[:cut] + b"x" * (size - len(head)) + head[cut:]
    assert len(body) == size
    return body


def test_a_body_of_exactly_5000000_bytes_is_accepted(partner: Partner) -> None:
    u = uid()
    r = post_raw(partner, "upsert", _body_of_size(MAX_BODY, u))
    assert r.status_code == 200, r.text[:300]
    assert r.json() == ok(1)


def test_a_body_over_5000000_bytes_is_too_large_and_stores_nothing(partner: Partner) -> None:
    u = uid()
    r = post_raw(partner, "upsert", _body_of_size(MAX_BODY + 1, u))
    assert_error_only(r, 413)
    assert partner.user_api("profile", {"identifiers": {"uuid": u}}).status_code == 404


# --- attribute merging ----------------------------------------------------------------------


def _tags(partner: Partner, u: str) -> Any:
    return find_attribute(read_profile(partner, {"uuid": u}), "tags")


def test_array_attributes_append_by_default(partner: Partner) -> None:
    u = uid()
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"custom": {"tags": ["a", "b"]}}})
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"custom": {"tags": ["c"]}}})
    assert _tags(partner, u) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "flags",
    [{"not_append": True}, {"append": False}, {"append": False, "not_append": False}],
    ids=["not_append", "append_false", "append_wins_over_not_append_false"],
)
def test_array_attributes_are_replaced_when_not_appending(
    partner: Partner, flags: dict[str, bool]
) -> None:
    u = uid()
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"custom": {"tags": ["a", "b"]}}})
    upsert(
        partner, {"identifiers": {"uuid": u}, "attributes": {"custom": {"tags": ["c"]}}, **flags}
    )
    assert _tags(partner, u) == ["c"]


def test_append_true_wins_over_not_append(partner: Partner) -> None:
    u = uid()
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"custom": {"tags": ["a"]}}})
    upsert(
        partner,
        {
            "identifiers": {"uuid": u},
            "attributes": {"custom": {"tags": ["c"]}},
            "append": True,
            "not_append": True,
        },
    )
    assert _tags(partner, u) == ["a", "c"]


def test_scalar_attributes_are_overwritten_and_others_kept(partner: Partner) -> None:
    u = uid()
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"name": "Ada", "age": 30}})
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"name": "Grace"}})
    profile = read_profile(partner, {"uuid": u})
    assert find_attribute(profile, "name") == "Grace"
    assert find_attribute(profile, "age") == 30


# --- profile read ---------------------------------------------------------------------------


def test_profile_is_read_by_any_of_its_identifiers(partner: Partner) -> None:
    u, email = uid(), f"{uid('p')}@mail.example"
    upsert(
        partner,
        {
            "identifiers": {"uuid": u, "email": email, "phone_number": "+6598765432"},
            "attributes": {"name": "Lin", "custom": {"loyalty": "Gold"}},
        },
    )
    for identifiers in ({"uuid": u}, {"email": email}, {"email": email.upper()}):
        profile = read_profile(partner, identifiers)
        assert find_attribute(profile, "name") == "Lin", identifiers
        assert find_attribute(profile, "loyalty") == "Gold", identifiers


def test_profile_of_unknown_identifiers_is_404(partner: Partner) -> None:
    r = partner.user_api("profile", {"identifiers": {"uuid": uid("ghost")}})
    assert r.status_code == 404
    assert r.json() == {"error": "no such user for these identifiers: no data"}


def test_profiles_are_private_to_their_partner(server: Server, partner: Partner) -> None:
    u = uid()
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"name": "Mine"}})
    other = server.create_partner()
    r = other.user_api("profile", {"identifiers": {"uuid": u}})
    assert r.status_code == 404
    assert r.json() == {"error": "no such user for these identifiers: no data"}


# --- upserted attributes in push reports ----------------------------------------------------


def test_upserted_attributes_show_up_as_insider_report_attributes(partner: Partner) -> None:
    u, email = uid(), f"{uid('r')}@mail.example"
    upsert(
        partner,
        {
            "identifiers": {"uuid": u, "email": email, "phone_number": "+6512345678"},
            "attributes": {
                "name": "Ada",
                "surname": "Lovelace",
                "age": 36,
                "gender": "female",
                "birthday": "1815-12-10T00:00:00Z",
                "language": "en_GB",
                "email_optin": True,
                "sms_optin": False,
            },
        },
    )
    token = os.urandom(32).hex()
    insider_id = partner.session({"uuid": u}, token=token)
    wanted = [
        "INSIDER.name",
        "INSIDER.surname",
        "INSIDER.age",
        "INSIDER.gender",
        "INSIDER.birthday",
        "INSIDER.language",
        "INSIDER.email_optin",
        "INSIDER.sms_optin",
        "INSIDER.email",
        "INSIDER.phone_number",
        "INSIDER.uuid",
        "INSIDER.insider_id",
        "INSIDER.device_token",
    ]
    answer = push_report(partner, {"INSIDER.uuid": u}, wanted)
    assert answer == {
        "successes": [
            {
                "INSIDER.name": "Ada",
                "INSIDER.surname": "Lovelace",
                "INSIDER.age": 36,
                "INSIDER.gender": "female",
                "INSIDER.birthday": "1815-12-10T00:00:00Z",
                "INSIDER.language": "en_GB",
                "INSIDER.email_optin": True,
                "INSIDER.sms_optin": False,
                "INSIDER.email": email,
                "INSIDER.phone_number": "+6512345678",
                "INSIDER.uuid": u,
                "INSIDER.insider_id": insider_id,
                "INSIDER.device_token": token,
            }
        ],
        "errors": {},
    }


def test_an_upsert_after_the_session_changes_the_reported_attributes(partner: Partner) -> None:
    u = uid()
    partner.session({"uuid": u})
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"name": "Before"}})
    assert push_report(partner, {"uuid": u}, ["INSIDER.name"])["successes"] == [
        {"INSIDER.name": "Before"}
    ]
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"name": "After"}})
    assert push_report(partner, {"uuid": u}, ["INSIDER.name"])["successes"] == [
        {"INSIDER.name": "After"}
    ]


def test_a_user_who_failed_validation_is_not_stored(partner: Partner) -> None:
    u = uid()
    r = partner.user_api(
        "upsert",
        {"users": [{"identifiers": {"uuid": u, "email": "bad"}, "attributes": {"name": "No"}}]},
    )
    assert r.json()["data"]["successful"] == {"count": 0}
    assert partner.user_api("profile", {"identifiers": {"uuid": u}}).status_code == 404


# --- delete ---------------------------------------------------------------------------------


def test_delete_answers_empty_object_and_the_profile_is_gone(partner: Partner) -> None:
    u = uid()
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"name": "Gone"}})
    r = partner.user_api("delete", {"identifiers": {"uuid": u}})
    assert r.status_code == 200
    assert r.json() == {}
    r = partner.user_api("profile", {"identifiers": {"uuid": u}})
    assert r.status_code == 404
    assert r.json() == {"error": "no such user for these identifiers: no data"}


def test_delete_erases_the_devices_so_a_later_push_finds_no_user(
    server: Server, partner: Partner
) -> None:
    u = uid()
    tokens = [os.urandom(32).hex(), os.urandom(32).hex()]
    partner.session({"uuid": u}, token=tokens[0], udid=uid("udid"))
    partner.session({"uuid": u}, platform="android", token=tokens[1], udid=uid("udid"))
    before = push_report(partner, {"uuid": u}, ["INSIDER.device_token"])
    assert before["successes"] == [{"INSIDER.device_token": tokens[1]}]

    r = partner.user_api("delete", {"identifiers": {"uuid": u}})
    assert r.status_code == 200 and r.json() == {}

    after = push_report(partner, {"uuid": u}, ["INSIDER.device_token"])
    assert after == {"successes": [], "errors": {"NoUserFound": [{"uuid": u}]}}
    with closing(server.db()) as db:
        left = db.execute("SELECT count(*) FROM devices WHERE token IN (?, ?)", tokens).fetchone()[
            0
        ]
    assert left == 0


def test_delete_by_email_erases_the_profile_found_by_its_other_identifiers(
    partner: Partner,
) -> None:
    u, email = uid(), f"{uid('d')}@mail.example"
    upsert(partner, {"identifiers": {"uuid": u, "email": email}, "attributes": {"name": "x"}})
    assert partner.user_api("delete", {"identifiers": {"email": email}}).status_code == 200
    assert partner.user_api("profile", {"identifiers": {"uuid": u}}).status_code == 404


def test_delete_leaves_other_partners_users_alone(server: Server, partner: Partner) -> None:
    u = uid()
    other = server.create_partner()
    upsert(partner, {"identifiers": {"uuid": u}, "attributes": {"name": "Keep"}})
    upsert(other, {"identifiers": {"uuid": u}, "attributes": {"name": "Other"}})
    assert other.user_api("delete", {"identifiers": {"uuid": u}}).status_code == 200
    assert find_attribute(read_profile(partner, {"uuid": u}), "name") == "Keep"


# --- odd values ------------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", [{"at": 1}, [2021], None, 1610314520, True])
def test_odd_event_timestamps_are_answered_in_the_200_user_report(
    partner: Partner, timestamp: Any
) -> None:
    r = partner.user_api(
        "upsert",
        {
            "users": [
                {
                    "identifiers": {"uuid": uid()},
                    "events": [{"event_name": "purchase", "timestamp": timestamp}],
                }
            ]
        },
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["successful"]["count"] + data["fail"].get("count", 0) == 1, data
