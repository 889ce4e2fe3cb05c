"""Who gets each notification, and the answer body (insider-ecosystem.md §1, contract.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import pytest

from pushgate.targeting import decide
from pushgate.targeting.decide import DeviceView, Outcome, ProfileView
from pushgate.targeting.push import Identifier, Push
from pushgate.targeting.validate import decode, validate

ALL_PLATFORMS = frozenset({"ios", "android", "huawei"})


def answer_json(outcomes: Sequence[Outcome], report_attributes: Sequence[str] | None) -> Any:
    """The answer as the client reads it: what `decide.answer` builds, as JSON values."""
    return msgspec.to_builtins(decide.answer(outcomes, report_attributes))


def make_push(identifiers: Mapping[str, Any] | None = None, **fields: Any) -> Push:
    n: dict[str, Any] = {
        "identifiers": dict(identifiers or {"INSIDER.email": "a@b.co"}),
        "camp_id": 1,
        "camp_name": "c",
        "title": "t",
        "message": "m",
        "image_url": "https://img.example/i.jpg",
    }
    n.update(fields)
    decoded = decode(json.dumps({"api_key": "k", "notifications": [n]}).encode())
    assert decoded.request is not None
    [push] = validate(decoded.request)
    return push


def device(
    id: int,
    *,
    platform: str = "ios",
    token: str | None = None,
    optin: bool = True,
    live: bool = True,
    active: float = 100.0,
    attributes: Mapping[str, Any] | None = None,
) -> DeviceView:
    return DeviceView(
        id=id,
        platform=platform,
        token=f"token-{id}" if token is None else token,
        environment="production",
        push_optin=optin,
        live=live,
        last_active_at=active,
        attributes=dict(attributes or {}),
    )


def profile(
    id: int,
    devices: Sequence[DeviceView] = (),
    *,
    active: float = 100.0,
    attributes: Mapping[str, Any] | None = None,
) -> ProfileView:
    return ProfileView(
        id=id,
        insider_id=f"insider-{id}",
        last_active_at=active,
        attributes=dict(attributes or {}),
        devices=tuple(devices),
    )


def plan_one(
    push: Push,
    profiles: Sequence[ProfileView],
    matches: Mapping[Identifier, Sequence[int]] | None = None,
    platforms: frozenset[str] = ALL_PLATFORMS,
) -> list[Outcome]:
    if matches is None:
        matches = {push.identifiers[0]: [p.id for p in profiles]}
    return decide.plan([push], matches, {p.id: p for p in profiles}, platforms)


# --- choose_device ---------------------------------------------------------------------------


def test_most_recently_active_opted_in_live_device_is_chosen() -> None:
    chosen = device(2, active=300)
    p = profile(1, [device(1, active=200), chosen, device(3, active=100)])
    assert decide.choose_device(p) == chosen


def test_more_recent_opted_out_device_is_passed_over() -> None:
    older = device(1, active=100)
    p = profile(1, [older, device(2, active=500, optin=False)])
    assert decide.choose_device(p) == older


def test_more_recent_dead_device_is_passed_over() -> None:
    older = device(1, active=100)
    p = profile(1, [older, device(2, active=500, live=False)])
    assert decide.choose_device(p) == older


def test_device_with_empty_token_is_passed_over() -> None:
    older = device(1, active=100)
    p = profile(1, [older, device(2, active=500, token="")])
    assert decide.choose_device(p) == older


def test_user_whose_devices_all_opted_out_is_opt_out() -> None:
    p = profile(1, [device(1, optin=False), device(2, optin=False, active=500)])
    assert decide.choose_device(p) == "OptOut"


def test_user_with_no_live_device_is_unregistered() -> None:
    p = profile(1, [device(1, live=False), device(2, live=False)])
    assert decide.choose_device(p) == "Unregistered"


def test_user_with_no_devices_is_unregistered() -> None:
    assert decide.choose_device(profile(1, [])) == "Unregistered"


def test_tie_on_activity_is_broken_by_device_id() -> None:
    p = profile(1, [device(4, active=100), device(9, active=100), device(2, active=100)])
    chosen = decide.choose_device(p)
    assert isinstance(chosen, DeviceView)
    assert chosen.id == 9


# --- plan -----------------------------------------------------------------------------------------


def test_unknown_user_is_no_user_found() -> None:
    push = make_push({"INSIDER.uuid": "u1u2i3d4"})
    [outcome] = decide.plan([push], {}, {}, ALL_PLATFORMS)
    assert (outcome.profile, outcome.device, outcome.reason) == (None, None, "NoUserFound")


def test_match_to_a_missing_profile_is_no_user_found() -> None:
    push = make_push()
    [outcome] = decide.plan([push], {push.identifiers[0]: [42]}, {}, ALL_PLATFORMS)
    assert outcome.reason == "NoUserFound"


def test_known_user_with_live_device_is_a_send_to_that_device() -> None:
    d = device(7, platform="android")
    p = profile(1, [d])
    [outcome] = plan_one(make_push(), [p])
    assert (outcome.profile, outcome.device, outcome.reason) == (p, d, None)


@pytest.mark.parametrize("platform", ["ios", "android", "huawei"])
def test_device_platform_without_validated_credential_is_invalid_certificate(
    platform: str,
) -> None:
    others = ALL_PLATFORMS - {platform}
    [outcome] = plan_one(
        make_push(), [profile(1, [device(1, platform=platform)])], platforms=others
    )
    assert (outcome.device, outcome.reason) == (None, "InvalidCertificate")


def test_chosen_device_platform_decides_invalid_certificate() -> None:
    # The push goes to the most recently active device; its platform's credential is what counts.
    p = profile(
        1, [device(1, platform="ios", active=100), device(2, platform="huawei", active=900)]
    )
    [outcome] = plan_one(make_push(), [p], platforms=frozenset({"ios"}))
    assert outcome.reason == "InvalidCertificate"


def test_opt_out_is_reported_before_certificate_problems() -> None:
    p = profile(1, [device(1, platform="huawei", optin=False)])
    [outcome] = plan_one(make_push(), [p], platforms=frozenset({"ios"}))
    assert outcome.reason == "OptOut"


def test_each_profile_matched_by_a_notification_is_a_separate_send() -> None:
    push = make_push({"email": "a@b.co", "uuid": "u-2"})
    p1 = profile(1, [device(11)])
    p2 = profile(2, [device(22)])
    matches = {Identifier("email", "a@b.co"): [1], Identifier("uuid", "u-2"): [2]}
    outcomes = plan_one(push, [p1, p2], matches)
    assert [
        (o.profile.id if o.profile else None, o.device.id if o.device else None) for o in outcomes
    ] == [
        (1, 11),
        (2, 22),
    ]


def test_profile_matched_by_two_identifiers_is_sent_once() -> None:
    push = make_push({"email": "a@b.co", "uuid": "u-1"})
    p = profile(1, [device(11)])
    matches = {Identifier("email", "a@b.co"): [1], Identifier("uuid", "u-1"): [1]}
    assert len(plan_one(push, [p], matches)) == 1


def test_several_profiles_get_their_own_exclusion_reasons() -> None:
    push = make_push({"email": "a@b.co", "uuid": "u-2"})
    p1 = profile(1, [device(11, optin=False)])
    p2 = profile(2, [])
    matches = {Identifier("email", "a@b.co"): [1], Identifier("uuid", "u-2"): [2]}
    assert [o.reason for o in plan_one(push, [p1, p2], matches)] == ["OptOut", "Unregistered"]


def test_send_single_user_picks_the_most_recently_active_profile() -> None:
    push = make_push({"email": "a@b.co", "uuid": "u-2"}, send_single_user=True)
    p1 = profile(1, [device(11)], active=500)
    p2 = profile(2, [device(22)], active=900)
    p3 = profile(3, [device(33)], active=100)
    matches = {Identifier("email", "a@b.co"): [1, 3], Identifier("uuid", "u-2"): [2]}
    [outcome] = plan_one(push, [p1, p2, p3], matches)
    assert outcome.profile == p2
    assert outcome.device is not None
    assert outcome.device.id == 22


def test_matched_profiles_without_single_user_keeps_all_in_identifier_order() -> None:
    push = make_push({"uuid": "u-2", "email": "a@b.co"})
    p1, p2 = profile(1, active=900), profile(2, active=100)
    matches = {Identifier("email", "a@b.co"): [1], Identifier("uuid", "u-2"): [2]}
    assert decide.matched_profiles(push, matches, {1: p1, 2: p2}) == [p2, p1]


def test_outcomes_follow_notification_order() -> None:
    first = make_push({"uuid": "one"}, camp_id=1)
    second = make_push({"uuid": "two"}, camp_id=2)
    p = profile(1, [device(1)])
    matches = {Identifier("uuid", "two"): [1]}
    outcomes = decide.plan([first, second], matches, {1: p}, ALL_PLATFORMS)
    assert [(o.push.camp_id, o.reason) for o in outcomes] == [(1, "NoUserFound"), (2, None)]


# --- apply_cap ----------------------------------------------------------------------------------


def test_capped_sends_become_user_globally_capped() -> None:
    push = make_push(GFC_enabled=True)
    outcomes = plan_one(push, [profile(1, [device(1)]), profile(2, [device(2)])])
    capped = decide.apply_cap(outcomes, [1])
    assert capped[0] == outcomes[0]
    assert capped[1].device is None
    assert capped[1].reason == "UserGloballyCapped"
    assert capped[1].profile == outcomes[1].profile


def test_apply_cap_with_nothing_capped_changes_nothing() -> None:
    outcomes = plan_one(make_push(), [profile(1, [device(1)])])
    assert decide.apply_cap(outcomes, []) == outcomes


def test_only_sends_with_gfc_enabled_want_the_cap() -> None:
    [with_gfc] = plan_one(make_push(GFC_enabled=True), [profile(1, [device(1)])])
    [without_gfc] = plan_one(make_push(), [profile(1, [device(1)])])
    [excluded] = plan_one(make_push(GFC_enabled=True), [profile(1, [])])
    assert (with_gfc.wants_cap, without_gfc.wants_cap, excluded.wants_cap) == (True, False, False)


# --- answer ------------------------------------------------------------------------------------


def test_answer_for_unknown_uuid_matches_the_documented_example() -> None:
    push = make_push({"INSIDER.uuid": "u1u2i3d4"})
    outcomes = decide.plan([push], {}, {}, ALL_PLATFORMS)
    assert answer_json(outcomes, None) == {
        "successes": [],
        "errors": {"NoUserFound": [{"INSIDER.uuid": "u1u2i3d4"}]},
    }


def test_success_without_report_attributes_is_only_the_device_token() -> None:
    p = profile(1, [device(1, token="d0795102")], attributes={"INSIDER.email": "a@b.co"})
    outcomes = plan_one(make_push(), [p])
    assert answer_json(outcomes, None) == {
        "successes": [{"INSIDER.device_token": "d0795102"}],
        "errors": {},
    }


def test_success_with_report_attributes_lists_each_requested_attribute() -> None:
    d = device(
        1,
        token="tok",
        attributes={"INSIDER.platform": "iOS", "INSIDER.app_version": "4.0"},
    )
    p = profile(1, [d], attributes={"INSIDER.email": "sample@mail.com", "INSIDER.name": "John"})
    wanted = [
        "INSIDER.email",
        "INSIDER.name",
        "INSIDER.platform",
        "INSIDER.app_version",
        "INSIDER.insider_id",
        "INSIDER.device_token",
        "INSIDER.age",
    ]
    assert answer_json(plan_one(make_push(), [p]), wanted)["successes"] == [
        {
            "INSIDER.email": "sample@mail.com",
            "INSIDER.name": "John",
            "INSIDER.platform": "iOS",
            "INSIDER.app_version": "4.0",
            "INSIDER.insider_id": "insider-1",
            "INSIDER.device_token": "tok",
            "INSIDER.age": None,
        }
    ]


def test_unknown_report_attribute_is_null() -> None:
    p = profile(1, [device(1)])
    [success] = answer_json(plan_one(make_push(), [p]), ["INSIDER.birthday"])["successes"]
    assert success == {"INSIDER.birthday": None}


def test_device_token_appears_only_when_requested_with_report_attributes() -> None:
    p = profile(1, [device(1)], attributes={"INSIDER.email": "a@b.co"})
    [success] = answer_json(plan_one(make_push(), [p]), ["INSIDER.email"])["successes"]
    assert success == {"INSIDER.email": "a@b.co"}


def test_repeated_report_attribute_names_appear_once() -> None:
    p = profile(1, [device(1, attributes={"INSIDER.carrier": "mycarrier"})])
    names = ["INSIDER.carrier", "INSIDER.idfa", "INSIDER.carrier", "INSIDER.idfa"]
    [success] = answer_json(plan_one(make_push(), [p]), names)["successes"]
    assert success == {"INSIDER.carrier": "mycarrier", "INSIDER.idfa": None}


def test_device_attributes_describe_the_chosen_device() -> None:
    old = device(1, active=100, attributes={"INSIDER.model": "old phone"})
    new = device(2, active=200, attributes={"INSIDER.model": "iPhone 11"})
    p = profile(1, [old, new], attributes={"INSIDER.model": "profile value"})
    [success] = answer_json(plan_one(make_push(), [p]), ["INSIDER.model"])["successes"]
    assert success == {"INSIDER.model": "iPhone 11"}


def test_errors_group_identifier_objects_by_reason_exactly_as_sent() -> None:
    sent_a = {"INSIDER.email": " Ada@Example.com "}
    sent_b = {"uuid": "u-b", "custom": {"loyalty": "L1"}}
    sent_c = {"phone_number": "+6512345678"}
    a, b, c = make_push(sent_a), make_push(sent_b), make_push(sent_c)
    opted_out = profile(1, [device(1, optin=False)])
    unregistered = profile(2, [device(2, live=False)])
    matches = {a.identifiers[0]: [1], c.identifiers[0]: [2]}
    outcomes = decide.plan([a, b, c], matches, {1: opted_out, 2: unregistered}, ALL_PLATFORMS)
    assert answer_json(outcomes, None) == {
        "successes": [],
        "errors": {"OptOut": [sent_a], "NoUserFound": [sent_b], "Unregistered": [sent_c]},
    }


def test_same_reason_for_several_notifications_lists_each_identifier_object() -> None:
    a, b = make_push({"uuid": "x"}), make_push({"uuid": "y"})
    outcomes = decide.plan([a, b], {}, {}, ALL_PLATFORMS)
    assert answer_json(outcomes, None)["errors"] == {"NoUserFound": [{"uuid": "x"}, {"uuid": "y"}]}


def test_capped_user_is_reported_as_user_globally_capped() -> None:
    sent = {"email": "a@b.co"}
    outcomes = decide.apply_cap(
        plan_one(make_push(sent, GFC_enabled=True), [profile(1, [device(1)])]), [0]
    )
    assert answer_json(outcomes, None) == {
        "successes": [],
        "errors": {"UserGloballyCapped": [sent]},
    }


def test_invalid_certificate_is_reported_per_user() -> None:
    sent = {"email": "a@b.co"}
    outcomes = plan_one(
        make_push(sent), [profile(1, [device(1, platform="huawei")])], platforms=frozenset({"ios"})
    )
    assert answer_json(outcomes, None)["errors"] == {"InvalidCertificate": [sent]}


def test_answer_has_no_optin_delivery_count_without_check_optin() -> None:
    outcomes = plan_one(make_push(), [profile(1, [device(1)])])
    assert "optin_delivery_count" not in answer_json(outcomes, None)


def test_check_optin_adds_the_number_of_users_sent_to() -> None:
    push = make_push({"email": "a@b.co", "uuid": "u"}, check_optin=True)
    sent_to = profile(1, [device(1)])
    opted_out = profile(2, [device(2, optin=False)])
    matches = {Identifier("email", "a@b.co"): [1], Identifier("uuid", "u"): [2]}
    body = answer_json(plan_one(push, [sent_to, opted_out], matches), None)
    assert body["optin_delivery_count"] == 1
    assert len(body["successes"]) == 1
    assert body["errors"] == {"OptOut": [{"email": "a@b.co", "uuid": "u"}]}


def test_check_optin_with_nobody_reached_counts_zero() -> None:
    push = make_push(check_optin=True)
    body = answer_json(decide.plan([push], {}, {}, ALL_PLATFORMS), None)
    assert body["optin_delivery_count"] == 0


def test_answer_keeps_success_order_of_outcomes() -> None:
    a, b = make_push({"uuid": "a"}), make_push({"uuid": "b"})
    pa, pb = profile(1, [device(1, token="tok-a")]), profile(2, [device(2, token="tok-b")])
    outcomes = decide.plan(
        [a, b], {a.identifiers[0]: [1], b.identifiers[0]: [2]}, {1: pa, 2: pb}, ALL_PLATFORMS
    )
    assert answer_json(outcomes, None)["successes"] == [
        {"INSIDER.device_token": "tok-a"},
        {"INSIDER.device_token": "tok-b"},
    ]
