"""Per-user outcomes of the Targeted Push API (HTTP 200): who is sent to, on which device,
and the documented reasons a user is excluded.

Sources: targeted-push-api.txt (reason names, GFC), insider-ecosystem.md §1 (errors shape,
send_single_user, identifier spellings), contract.md (device choice, check_optin, reasons).
"""

from __future__ import annotations

import time

import pytest

from tests.support.pushes import (
    SETTINGS_DELAY,
    execute,
    jobs,
    notification,
    partner_id,
    push_one,
    query,
    set_device_status,
    upsert_user,
)
from tests.support.server import Partner, Server

# ---- NoUserFound, and the errors shape ----


def test_unknown_uuid_is_reported_no_user_found(partner: Partner) -> None:
    r = push_one(partner, {"INSIDER.uuid": "u1u2i3d4"})

    assert r.status_code == 200, r.text
    assert r.json() == {"successes": [], "errors": {"NoUserFound": [{"INSIDER.uuid": "u1u2i3d4"}]}}
    assert jobs(partner) == []


def test_errors_list_the_identifier_objects_exactly_as_sent(partner: Partner) -> None:
    first = {"email": "Nobody@Example.COM", "INSIDER.phone_number": "+6500000001", "loyalty": "L1"}
    second = {"INSIDER.uuid": "  spaced  "}

    r = partner.push({"notifications": [notification(first), notification(second, camp_id=2)]})

    assert r.status_code == 200, r.text
    assert r.json() == {"successes": [], "errors": {"NoUserFound": [first, second]}}


def test_successes_and_errors_are_reported_together(partner: Partner) -> None:
    partner.session({"uuid": "present"}, token="11" * 32)

    r = partner.push(
        {
            "notifications": [
                notification({"uuid": "absent"}),
                notification({"uuid": "present"}),
            ]
        }
    )

    assert r.json() == {
        "successes": [{"INSIDER.device_token": "11" * 32}],
        "errors": {"NoUserFound": [{"uuid": "absent"}]},
    }
    assert len(jobs(partner)) == 1


# ---- OptOut ----


def test_user_whose_device_opted_out_is_reported_opt_out(partner: Partner) -> None:
    partner.session({"uuid": "opted-out"}, token="12" * 32, push_optin=False)

    r = push_one(partner, {"uuid": "opted-out"})

    assert r.status_code == 200, r.text
    assert r.json() == {"successes": [], "errors": {"OptOut": [{"uuid": "opted-out"}]}}
    assert jobs(partner) == []


def test_opted_out_user_is_not_sent_to_even_without_check_optin(partner: Partner) -> None:
    partner.session({"uuid": "opted-out-2"}, token="13" * 32, push_optin=False)

    r = push_one(partner, {"uuid": "opted-out-2"}, check_optin=False)

    assert r.json()["errors"] == {"OptOut": [{"uuid": "opted-out-2"}]}
    assert r.json()["successes"] == []
    assert jobs(partner) == []


# ---- Unregistered ----


def test_user_without_any_device_is_reported_unregistered(partner: Partner) -> None:
    upsert_user(partner, {"uuid": "no-device"}, name="Ada")

    r = push_one(partner, {"uuid": "no-device"})

    assert r.status_code == 200, r.text
    assert r.json() == {"successes": [], "errors": {"Unregistered": [{"uuid": "no-device"}]}}
    assert jobs(partner) == []


def test_user_whose_only_device_is_unregistered_is_reported_unregistered(partner: Partner) -> None:
    partner.session({"uuid": "dead-device"}, token="14" * 32)
    set_device_status(partner, "14" * 32, "unregistered")

    r = push_one(partner, {"uuid": "dead-device"})

    assert r.json() == {"successes": [], "errors": {"Unregistered": [{"uuid": "dead-device"}]}}
    assert jobs(partner) == []


# ---- InvalidCertificate ----


def test_device_on_a_platform_without_credential_is_reported_invalid_certificate(
    partner: Partner,
) -> None:
    partner.session({"uuid": "droid"}, platform="android", token="fcm-droid")
    partner.session({"uuid": "apple"}, platform="ios", token="15" * 32)
    deleted = execute(
        partner,
        "DELETE FROM credentials WHERE partner_id = ? AND platform = 'android'",
        partner_id(partner),
    )
    assert deleted == 1
    time.sleep(SETTINGS_DELAY)

    r = partner.push(
        {"notifications": [notification({"uuid": "droid"}), notification({"uuid": "apple"})]}
    )

    assert r.status_code == 200, r.text
    assert r.json() == {
        "successes": [{"INSIDER.device_token": "15" * 32}],
        "errors": {"InvalidCertificate": [{"uuid": "droid"}]},
    }
    assert [j["platform"] for j in jobs(partner)] == ["ios"]


# ---- UserGloballyCapped (GFC) ----


@pytest.fixture(scope="module")
def capped(server: Server) -> Partner:
    """One partner with a cap of one push per user per day, shared by the GFC tests (each
    uses its own users), so that the wait for the settings to apply is paid once."""
    partner = server.create_partner()
    partner.update("--gfc-limit", "1")
    time.sleep(SETTINGS_DELAY)
    return partner


def user_counter(partner: Partner, uuid: str) -> int:
    """The user's frequency-cap count, in the database with or without Redis."""
    rows = query(
        partner,
        "SELECT coalesce(sum(g.count), 0) FROM gfc_counters g JOIN identifiers i"
        " ON i.profile_id = g.profile_id AND i.partner_id = g.partner_id"
        " WHERE g.partner_id = ? AND i.kind = 'uuid' AND i.value = ?",
        partner_id(partner),
        uuid,
    )
    return int(rows[0][0])


def jobs_to(partner: Partner, token: str) -> int:
    return sum(1 for j in jobs(partner) if j["token"] == token)


def test_global_frequency_cap_excludes_a_user_at_the_cap(capped: Partner) -> None:
    capped.session({"uuid": "capped"}, token="16" * 32)

    first = push_one(capped, {"uuid": "capped"}, GFC_enabled=True)
    second = push_one(capped, {"uuid": "capped"}, GFC_enabled=True)

    assert first.json() == {"successes": [{"INSIDER.device_token": "16" * 32}], "errors": {}}
    assert second.status_code == 200, second.text
    assert second.json() == {
        "successes": [],
        "errors": {"UserGloballyCapped": [{"uuid": "capped"}]},
    }
    assert jobs_to(capped, "16" * 32) == 1
    # "the count is not incremented" for the blocked send
    assert user_counter(capped, "capped") == 1


def test_cap_is_neither_checked_nor_counted_when_gfc_is_disabled(capped: Partner) -> None:
    capped.session({"uuid": "uncapped"}, token="17" * 32)

    explicit = [push_one(capped, {"uuid": "uncapped"}, GFC_enabled=False) for _ in range(2)]
    default = push_one(capped, {"uuid": "uncapped"})

    for r in [*explicit, default]:
        assert r.json() == {"successes": [{"INSIDER.device_token": "17" * 32}], "errors": {}}
    assert user_counter(capped, "uncapped") == 0
    assert jobs_to(capped, "17" * 32) == 3
    # Not counted: the user still has the whole allowance for a capped send.
    capped_send = push_one(capped, {"uuid": "uncapped"}, GFC_enabled=True)
    assert capped_send.json()["successes"] == [{"INSIDER.device_token": "17" * 32}]
    assert user_counter(capped, "uncapped") == 1


def test_cap_is_per_user(capped: Partner) -> None:
    capped.session({"uuid": "cap-a"}, token="18" * 32)
    capped.session({"uuid": "cap-b"}, token="19" * 32)

    first = push_one(capped, {"uuid": "cap-a"}, GFC_enabled=True)
    r = capped.push(
        {
            "notifications": [
                notification({"uuid": "cap-a"}, GFC_enabled=True),
                notification({"uuid": "cap-b"}, GFC_enabled=True),
            ]
        }
    )

    assert first.json()["successes"] == [{"INSIDER.device_token": "18" * 32}]
    assert r.json() == {
        "successes": [{"INSIDER.device_token": "19" * 32}],
        "errors": {"UserGloballyCapped": [{"uuid": "cap-a"}]},
    }
    assert (user_counter(capped, "cap-a"), user_counter(capped, "cap-b")) == (1, 1)


def test_one_request_cannot_exceed_the_cap_for_a_user(capped: Partner) -> None:
    capped.session({"uuid": "cap-twice"}, token="3a" * 32)

    r = capped.push(
        {
            "notifications": [
                notification({"uuid": "cap-twice"}, camp_id=1, GFC_enabled=True),
                notification({"uuid": "cap-twice"}, camp_id=2, GFC_enabled=True),
            ]
        }
    )

    assert r.json() == {
        "successes": [{"INSIDER.device_token": "3a" * 32}],
        "errors": {"UserGloballyCapped": [{"uuid": "cap-twice"}]},
    }
    assert jobs_to(capped, "3a" * 32) == 1


# ---- which device, which users ----


def test_push_goes_to_the_most_recently_active_device(partner: Partner) -> None:
    partner.session({"uuid": "two-phones"}, token="1a" * 32, udid="PHONE-A")
    partner.session({"uuid": "two-phones"}, token="1b" * 32, udid="PHONE-B")

    r1 = push_one(partner, {"uuid": "two-phones"})
    partner.session({"uuid": "two-phones"}, token="1a" * 32, udid="PHONE-A")
    r2 = push_one(partner, {"uuid": "two-phones"})

    assert r1.json()["successes"] == [{"INSIDER.device_token": "1b" * 32}]
    assert r2.json()["successes"] == [{"INSIDER.device_token": "1a" * 32}]
    assert [j["token"] for j in jobs(partner)] == ["1b" * 32, "1a" * 32]


def test_most_recent_device_across_platforms_is_chosen(partner: Partner) -> None:
    partner.session({"uuid": "mixed"}, platform="ios", token="1c" * 32, udid="MIX-IOS")
    partner.session({"uuid": "mixed"}, platform="android", token="fcm-mixed", udid="MIX-AND")

    r = push_one(partner, {"uuid": "mixed"})

    assert r.json()["successes"] == [{"INSIDER.device_token": "fcm-mixed"}]
    (job,) = jobs(partner)
    assert (job["platform"], job["token"]) == ("android", "fcm-mixed")


def test_opted_out_recent_device_is_passed_over_for_an_opted_in_one(partner: Partner) -> None:
    partner.session({"uuid": "optin-mix"}, token="1d" * 32, udid="OLD")
    partner.session({"uuid": "optin-mix"}, token="1e" * 32, udid="NEW", push_optin=False)

    r = push_one(partner, {"uuid": "optin-mix"})

    assert r.json() == {"successes": [{"INSIDER.device_token": "1d" * 32}], "errors": {}}


def test_unregistered_recent_device_is_passed_over_for_a_live_one(partner: Partner) -> None:
    partner.session({"uuid": "live-mix"}, token="1f" * 32, udid="LIVE")
    partner.session({"uuid": "live-mix"}, token="20" * 32, udid="DEAD")
    set_device_status(partner, "20" * 32, "unregistered")

    r = push_one(partner, {"uuid": "live-mix"})

    assert r.json() == {"successes": [{"INSIDER.device_token": "1f" * 32}], "errors": {}}


def test_identifiers_matching_several_profiles_send_to_each(partner: Partner) -> None:
    partner.session({"email": "first@example.com"}, token="21" * 32)
    partner.session({"uuid": "second-user"}, token="22" * 32)

    r = push_one(partner, {"email": "first@example.com", "uuid": "second-user"})

    assert r.status_code == 200, r.text
    assert sorted(s["INSIDER.device_token"] for s in r.json()["successes"]) == [
        "21" * 32,
        "22" * 32,
    ]
    assert r.json()["errors"] == {}
    assert sorted(j["token"] for j in jobs(partner)) == ["21" * 32, "22" * 32]


def test_send_single_user_sends_to_the_most_recently_active_profile_only(
    partner: Partner,
) -> None:
    partner.session({"email": "older@example.com"}, token="23" * 32)
    partner.session({"uuid": "newer-user"}, token="24" * 32)

    r = push_one(
        partner, {"email": "older@example.com", "uuid": "newer-user"}, send_single_user=True
    )

    assert r.json() == {"successes": [{"INSIDER.device_token": "24" * 32}], "errors": {}}
    assert [j["token"] for j in jobs(partner)] == ["24" * 32]


def test_identifiers_of_one_profile_send_once(partner: Partner) -> None:
    partner.session(
        {"email": "one@example.com", "phone_number": "+6512345678", "uuid": "one"},
        token="25" * 32,
    )

    r = push_one(
        partner,
        {"INSIDER.email": "one@example.com", "INSIDER.phone_number": "+6512345678", "uuid": "one"},
    )

    assert r.json() == {"successes": [{"INSIDER.device_token": "25" * 32}], "errors": {}}
    assert len(jobs(partner)) == 1


@pytest.mark.parametrize(
    ("registered", "pushed"),
    [
        ("Mixed.Case@Example.com", "mixed.case@EXAMPLE.COM"),
        ("lower@example.com", "LOWER@EXAMPLE.COM"),
        ("UPPER@EXAMPLE.COM", "upper@example.com"),
    ],
)
def test_email_matches_case_insensitively(partner: Partner, registered: str, pushed: str) -> None:
    partner.session({"email": registered}, token="26" * 32)

    r = push_one(partner, {"INSIDER.email": pushed})

    assert r.json() == {"successes": [{"INSIDER.device_token": "26" * 32}], "errors": {}}


def test_uuid_matches_case_sensitively(partner: Partner) -> None:
    partner.session({"uuid": "CaseSensitive"}, token="27" * 32)

    r = push_one(partner, {"uuid": "casesensitive"})

    assert r.json() == {"successes": [], "errors": {"NoUserFound": [{"uuid": "casesensitive"}]}}


@pytest.mark.parametrize(
    ("registered", "pushed"),
    [
        ({"email": "plain@example.com"}, {"INSIDER.email": "plain@example.com"}),
        ({"INSIDER.email": "plain@example.com"}, {"email": "plain@example.com"}),
        ({"phone_number": "+6598765432"}, {"INSIDER.phone_number": "+6598765432"}),
        ({"INSIDER.phone_number": "+6598765432"}, {"phone_number": "+6598765432"}),
        ({"uuid": "plain-uuid"}, {"INSIDER.uuid": "plain-uuid"}),
        ({"INSIDER.uuid": "plain-uuid"}, {"uuid": "plain-uuid"}),
    ],
    ids=["email", "INSIDER.email", "phone", "INSIDER.phone", "uuid", "INSIDER.uuid"],
)
def test_identifier_keys_match_with_and_without_insider_prefix(
    partner: Partner, registered: dict[str, str], pushed: dict[str, str]
) -> None:
    partner.session(registered, token="28" * 32)

    r = push_one(partner, pushed)

    assert r.json() == {"successes": [{"INSIDER.device_token": "28" * 32}], "errors": {}}


def test_custom_identifier_matches_by_its_own_name(partner: Partner) -> None:
    partner.session({"loyalty_id": "LOY-7"}, token="29" * 32)

    hit = push_one(partner, {"loyalty_id": "LOY-7"})
    miss = push_one(partner, {"other_id": "LOY-7"})

    assert hit.json() == {"successes": [{"INSIDER.device_token": "29" * 32}], "errors": {}}
    assert miss.json() == {"successes": [], "errors": {"NoUserFound": [{"other_id": "LOY-7"}]}}


def test_users_of_another_partner_are_not_found(partner: Partner) -> None:
    other = partner.server.create_partner()
    other.session({"uuid": "not-yours"}, token="2a" * 32)

    r = push_one(partner, {"uuid": "not-yours"})

    assert r.json() == {"successes": [], "errors": {"NoUserFound": [{"uuid": "not-yours"}]}}


# ---- check_optin ----


def test_check_optin_reports_how_many_users_were_sent_to(partner: Partner) -> None:
    partner.session({"uuid": "in-1"}, token="2b" * 32)
    partner.session({"uuid": "in-2"}, platform="android", token="fcm-in-2")
    partner.session({"uuid": "out-1"}, token="2c" * 32, push_optin=False)

    r = partner.push(
        {
            "notifications": [
                notification({"uuid": u}, check_optin=True)
                for u in ("in-1", "in-2", "out-1", "nobody")
            ]
        }
    )

    body = r.json()
    assert body["optin_delivery_count"] == 2
    assert len(body["successes"]) == 2
    assert body["errors"] == {"OptOut": [{"uuid": "out-1"}], "NoUserFound": [{"uuid": "nobody"}]}


def test_check_optin_counts_zero_when_nobody_was_sent_to(partner: Partner) -> None:
    partner.session({"uuid": "out-only"}, token="2d" * 32, push_optin=False)

    r = push_one(partner, {"uuid": "out-only"}, check_optin=True)

    assert r.json() == {
        "successes": [],
        "errors": {"OptOut": [{"uuid": "out-only"}]},
        "optin_delivery_count": 0,
    }


@pytest.mark.parametrize("check_optin", [False, None])
def test_without_check_optin_the_count_is_absent(
    partner: Partner, check_optin: bool | None
) -> None:
    partner.session({"uuid": "count-absent"}, token="2e" * 32)
    extra = {} if check_optin is None else {"check_optin": check_optin}

    r = push_one(partner, {"uuid": "count-absent"}, **extra)

    assert "optin_delivery_count" not in r.json()
    assert r.json() == {"successes": [{"INSIDER.device_token": "2e" * 32}], "errors": {}}
