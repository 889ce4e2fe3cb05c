"""User data validation (insider-ecosystem.md §4) and SDK sessions (contract.md)."""

from __future__ import annotations

from typing import Any

import pytest

from pushgate.targeting.errors import ApiError
from pushgate.targeting.push import Identifier
from pushgate.targeting.users import UserDataError, validate_session, validate_users

EMAIL_RULE = r"regexp(^.+@.+\..+$)"
PHONE_RULE = r"regexp(^\+[1-9]\d{6,14}$)"
EVENT_RULE = r"regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"


def user(identifiers: Any = None, **fields: Any) -> dict[str, Any]:
    u: dict[str, Any] = {
        "identifiers": {"uuid": "1x2y3z"} if identifiers is None else identifiers,
        "attributes": {"name": "Ada"},
    }
    u.update(fields)
    return u


def check(*users: Any) -> tuple[int, dict[str, list[str]], int]:
    valid, problems, failed = validate_users({"users": list(users)})
    return len(valid), problems, failed


def documented_user() -> dict[str, Any]:
    return {
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


# --- request level -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [{}, {"users": None}, {"users": "x"}, {"users": {"0": {}}}, [], None, "users"]
)
def test_missing_users_is_users_must_be_defined(body: Any) -> None:
    with pytest.raises(UserDataError) as info:
        validate_users(body)
    assert info.value.status == 400
    assert info.value.error == "users must be defined: bad request"


def test_one_thousand_users_are_accepted() -> None:
    valid, problems, failed = validate_users({"users": [user() for _ in range(1000)]})
    assert (len(valid), problems, failed) == (1000, {}, 0)


def test_more_than_one_thousand_users_is_rejected() -> None:
    with pytest.raises(UserDataError) as info:
        validate_users({"users": [user() for _ in range(1001)]})
    assert info.value.status == 400
    assert info.value.error.endswith(": bad request")


def test_empty_users_list_is_valid_and_empty() -> None:
    assert check() == (0, {}, 0)


# --- the documented user ----------------------------------------------------------------------------


def test_documented_user_is_valid() -> None:
    valid, problems, failed = validate_users({"users": [documented_user()]})
    assert (problems, failed) == ({}, 0)
    [u] = valid
    assert u.identifiers.identifiers == (
        Identifier("email", "a@b.co"),
        Identifier("phone_number", "+6512345678"),
        Identifier("uuid", "1x2y3z"),
        Identifier("user_loyalty_id", "xyz123"),
    )
    assert u.identifiers.attributes == {
        "INSIDER.email": "a@b.co",
        "INSIDER.phone_number": "+6512345678",
        "INSIDER.uuid": "1x2y3z",
    }
    assert u.attributes["INSIDER.name"] == "Ada"
    assert u.attributes["INSIDER.age"] == 30
    assert u.attributes["loyalty"] == "Gold"
    assert [e["event_name"] for e in u.events] == ["purchase"]
    assert u.append_arrays is True


# --- identifier rules ----------------------------------------------------------------------------------


def test_invalid_email_is_reported_under_its_rule_key() -> None:
    count, problems, failed = check(user({"email": "sample", "uuid": "u1"}))
    assert (count, failed) == (0, 1)
    assert problems == {
        f"users.0.identifiers.email.{EMAIL_RULE}": ["not a valid email address: sample"]
    }


def test_documented_rule_key_is_byte_exact() -> None:
    _, problems, _ = check(user({"email": "sample", "uuid": "u1"}))
    assert list(problems) == ["users.0.identifiers.email.regexp(^.+@.+\\..+$)"]


def test_prefixed_email_key_follows_the_same_rule() -> None:
    _, problems, _ = check(user({"INSIDER.email": "nope", "uuid": "u1"}))
    assert problems == {
        f"users.0.identifiers.email.{EMAIL_RULE}": ["not a valid email address: nope"]
    }


@pytest.mark.parametrize("email", ["a@b.co", "first.last@sub.example.com", "x+y@z.io"])
def test_valid_emails_pass(email: str) -> None:
    assert check(user({"email": email})) == (1, {}, 0)


@pytest.mark.parametrize("email", ["sample", "a@b", "@b.co", "a@.co", "a@b.", ""])
def test_invalid_emails_fail(email: str) -> None:
    count, problems, failed = check(user({"email": email, "uuid": "u"}))
    assert (count, failed) == (0, 1)
    assert f"users.0.identifiers.email.{EMAIL_RULE}" in problems


def test_invalid_phone_is_reported_under_its_rule_key() -> None:
    _, problems, failed = check(user({"phone_number": "12345", "uuid": "u1"}))
    assert failed == 1
    assert problems == {
        f"users.0.identifiers.phone_number.{PHONE_RULE}": ["not a valid phone number: 12345"]
    }


@pytest.mark.parametrize("phone", ["+6512345678", "+1234567", "+123456789012345"])
def test_valid_phones_pass(phone: str) -> None:
    assert check(user({"phone_number": phone})) == (1, {}, 0)


@pytest.mark.parametrize(
    "phone",
    [
        "6512345678",
        "+0512345678",
        "+123456",
        "+1234567890123456",
        "+65 1234 5678",
        "+65123abc",
        "+6512345678\n",
        "+1٢٣٤٥٦٧٨",
    ],
    ids=[
        "no-plus",
        "leading-zero",
        "too-short",
        "too-long",
        "spaces",
        "letters",
        "trailing-newline",
        "arabic-indic-digits",
    ],
)
def test_invalid_phones_fail(phone: str) -> None:
    count, problems, failed = check(user({"phone_number": phone, "uuid": "u"}))
    assert (count, failed) == (0, 1)
    assert f"users.0.identifiers.phone_number.{PHONE_RULE}" in problems


def test_non_string_uuid_is_a_type_failure() -> None:
    _, problems, failed = check(user({"uuid": 5, "email": "a@b.co"}))
    assert failed == 1
    assert problems == {"users.0.identifiers.uuid.type(string)": ["uuid must be a string: 5"]}


def test_rule_keys_carry_the_user_index() -> None:
    _, problems, failed = check(user(), user(), user({"email": "bad", "uuid": "u"}))
    assert failed == 1
    assert list(problems) == [f"users.2.identifiers.email.{EMAIL_RULE}"]


def test_valid_users_beside_invalid_ones_are_kept() -> None:
    valid, problems, failed = validate_users(
        {
            "users": [
                user({"uuid": "ok-1"}),
                user({"email": "bad", "uuid": "x"}),
                user({"uuid": "ok-2"}),
            ]
        }
    )
    assert failed == 1
    assert [u.identifiers.identifiers for u in valid] == [
        (Identifier("uuid", "ok-1"),),
        (Identifier("uuid", "ok-2"),),
    ]
    assert len(problems) == 1


def test_same_rule_failing_for_two_users_has_separate_keys() -> None:
    _, problems, failed = check(
        user({"email": "x", "uuid": "1"}), user({"email": "y", "uuid": "2"})
    )
    assert failed == 2
    assert problems == {
        f"users.0.identifiers.email.{EMAIL_RULE}": ["not a valid email address: x"],
        f"users.1.identifiers.email.{EMAIL_RULE}": ["not a valid email address: y"],
    }


def test_user_without_identifiers_or_insider_id_fails() -> None:
    count, problems, failed = check({"attributes": {"name": "x"}})
    assert (count, failed) == (0, 1)
    assert problems


def test_insider_id_stands_instead_of_identifiers() -> None:
    valid, problems, failed = validate_users(
        {"users": [{"insider_id": "abc", "attributes": {"a": 1}}]}
    )
    assert (problems, failed) == ({}, 0)
    assert valid[0].identifiers.insider_id == "abc"


def test_insider_id_inside_identifiers_is_accepted() -> None:
    valid, _, failed = validate_users({"users": [user({"INSIDER.insider_id": "abc"})]})
    assert failed == 0
    assert valid[0].identifiers.insider_id == "abc"


def test_user_needs_attributes_or_events() -> None:
    count, problems, failed = check({"identifiers": {"uuid": "u"}})
    assert (count, failed) == (0, 1)
    assert problems


def test_events_alone_are_enough() -> None:
    assert check({"identifiers": {"uuid": "u"}, "events": [{"event_name": "login"}]}) == (1, {}, 0)


def test_user_that_is_not_an_object_fails() -> None:
    count, problems, failed = check("not a user")
    assert (count, failed) == (0, 1)
    assert problems


# --- events ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["purchase", "add_to_cart", "0day", "v1.2-beta", "aB.c_d-e"])
def test_valid_event_names_pass(name: str) -> None:
    assert check(user(events=[{"event_name": name}])) == (1, {}, 0)


@pytest.mark.parametrize(
    "name", ["Purchase", "_private", "-x", "add to cart", "", "purchase!", "purchase\n"]
)
def test_invalid_event_name_is_reported_under_its_rule_key(name: str) -> None:
    count, problems, failed = check(user(events=[{"event_name": "ok"}, {"event_name": name}]))
    assert (count, failed) == (0, 1)
    assert problems == {
        f"users.0.events.1.event_name.{EVENT_RULE}": [f"not a valid event name: {name}"]
    }


def test_event_without_name_fails_the_event_rule() -> None:
    _, problems, failed = check(user(events=[{"timestamp": "2021-01-10T21:35:20Z"}]))
    assert failed == 1
    assert f"users.0.events.0.event_name.{EVENT_RULE}" in problems


# --- append / not_append ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "append"),
    [
        ({}, True),
        ({"not_append": True}, False),
        ({"not_append": False}, True),
        ({"append": False}, False),
        ({"append": True}, True),
        ({"append": True, "not_append": True}, True),
        ({"append": False, "not_append": False}, False),
    ],
)
def test_arrays_append_unless_told_otherwise_and_append_wins(
    flags: dict[str, bool], append: bool
) -> None:
    valid, _, _ = validate_users({"users": [user(**flags)]})
    assert valid[0].append_arrays is append


# --- sessions ---------------------------------------------------------------------------------------------


def session(**device: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"platform": "ios", "device_token": "ab" * 32, "push_optin": True}
    d.update(device)
    return {
        "identifiers": {"email": "a@b.co", "uuid": "u-1"},
        "device": d,
        "attributes": {"name": "Ada"},
    }


def session_error(body: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        validate_session(body)
    assert info.value.status == 400
    assert info.value.code == "invalid_session"
    return info.value


def test_valid_session_is_parsed() -> None:
    s = validate_session(session())
    assert s.identifiers.identifiers == (Identifier("email", "a@b.co"), Identifier("uuid", "u-1"))
    assert s.device["device_token"] == "ab" * 32
    assert s.attributes == {"INSIDER.name": "Ada"}


@pytest.mark.parametrize("platform", ["ios", "android", "huawei", "IOS", "Android"])
def test_session_accepts_each_platform(platform: str) -> None:
    assert (
        validate_session(session(platform=platform)).device["platform"].lower() == platform.lower()
    )


@pytest.mark.parametrize("platform", ["windows", "", None, 1])
def test_session_with_unknown_platform_is_invalid(platform: Any) -> None:
    session_error(session(platform=platform))


@pytest.mark.parametrize("token", ["", "   ", None, 5])
def test_session_needs_a_device_token(token: Any) -> None:
    session_error(session(device_token=token))


def test_session_token_is_trimmed() -> None:
    assert validate_session(session(device_token="  tok  ")).device["device_token"] == "tok"


@pytest.mark.parametrize("flag", ["push_optin", "location_optin"])
def test_session_optin_flags_must_be_booleans(flag: str) -> None:
    session_error(session(**{flag: "yes"}))


def test_session_without_device_is_invalid() -> None:
    body = session()
    del body["device"]
    session_error(body)


@pytest.mark.parametrize("body", [[], "x", None, 3])
def test_session_body_must_be_an_object(body: Any) -> None:
    session_error(body)


def test_session_identifiers_must_be_an_object() -> None:
    body = session()
    body["identifiers"] = ["a@b.co"]
    session_error(body)


def test_session_with_invalid_email_names_the_rule() -> None:
    body = session()
    body["identifiers"] = {"email": "sample"}
    error = session_error(body)
    assert error.message == f"identifiers.email.{EMAIL_RULE}: not a valid email address: sample"


def test_session_attributes_must_be_an_object() -> None:
    body = session()
    body["attributes"] = ["x"]
    session_error(body)


def test_session_insider_id_is_kept() -> None:
    body = session()
    body["insider_id"] = "ins-1"
    assert validate_session(body).identifiers.insider_id == "ins-1"
