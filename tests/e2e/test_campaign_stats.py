"""Campaign statistics end to end: the funnel of a campaign as the report, the campaign list,
the Insider-compatible Statistics API and the Message Center show it, after real deliveries to
the provider emulators and app events reported by the SDK.

Sources: docs/statistics.md (funnel, rates, shapes, errors), insider-ecosystem.md §2 (Statistics
API), §3 (Message Center), §6 (fail-record names), contract.md (`POST /api/sdk/v1/events`, the
emulators' control routes), targeted-push-api.txt (reasons, GFC), providers.md (FCM
`UNREGISTERED` is reported `NotRegistered`).

The acceptance scenario (module fixture `scenario`) is one partner with a cap of one push per user
per day, and two campaigns sent today:

- campaign A (camp_id 100, no image) to `capped` (android, GFC on), `ios1` and `unreg_ios`
  (GFC off): all three accepted.
- campaign B (camp_id 200, with image, GFC on) to twelve users: `ios1`, `ios2`, `and1`, `and2`,
  `hw1` (accepted); `unreg_ios` (its token now answered APNs `Unregistered`), `unreg_and1`,
  `unreg_and2` (answered FCM `UNREGISTERED`): failed; `optout` (only device opted out): OptOut;
  `capped` (already received A with GFC on): UserGloballyCapped; `nodevice` (a profile without a
  device): Unregistered; `nobody` (no profile): NoUserFound.

App events afterwards: B delivered by ios1, and1, hw1 and opened by ios1 (3 delivered, 1 opened:
"% 33.33"); A delivered by ios1 and opened (only) by capped (2 delivered, 1 opened).
"""

from __future__ import annotations

import calendar
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.emulated import (
    Control,
    device_token,
    jobs,
    notification,
    push_all,
    wait_jobs_final,
)
from tests.support.pushes import SETTINGS_DELAY, execute, partner_id, upsert_user
from tests.support.server import Partner, Server
from tests.support.stats_api import (
    epoch,
    error_code,
    event,
    funnel_totals,
    get_statistics,
    hour_of,
    inbox,
    iso,
    list_campaigns,
    message_center,
    report,
    report_json,
    send_events,
    series_sums,
    wait_campaign_settled,
    wait_next_second,
)

CAMP_A = 100
CAMP_B = 200
UNKNOWN_CAMP = 999
ZERO_PLATFORM = {"queued": 0, "accepted": 0, "failed": 0, "expired": 0}

A_CONTENT: dict[str, Any] = {
    "camp_name": "Spring sale teaser",
    "title": "Spring is coming",
    "message": "Our spring sale starts tomorrow",
    "image_url": "",
    "android": {"deep_link": {"ins_dl_internal": "https://shop.example.com/a"}},
    "ios": {"deep_link": {"ins_dl_url_scheme": "shop://a"}},
}
B_CONTENT: dict[str, Any] = {
    "camp_name": "Spring sale",
    "title": "Spring sale: 30% off",
    "message": "Everything in the cart is 30% off today",
    "image_url": "https://img.example.com/spring.jpg",
    "android": {"deep_link": {"ins_dl_internal": "https://shop.example.com/b", "page": "cart"}},
    "ios": {"deep_link": {"ins_dl_internal": "https://shop.example.com/b-ios", "ios_only": "1"}},
}


@dataclass
class User:
    name: str
    uuid: str
    platform: str | None = None
    token: str | None = None
    insider_id: str | None = None


@dataclass
class Scenario:
    partner: Partner
    users: dict[str, User]
    a_sent: tuple[float, float] = (0.0, 0.0)  # wall clock before and after A's request
    b_sent: tuple[float, float] = (0.0, 0.0)
    b_answer: dict[str, Any] = field(default_factory=dict)
    event_answers: list[tuple[int, Any]] = field(default_factory=list)
    events_at: float = 0.0

    def __getitem__(self, name: str) -> User:
        return self.users[name]


def register(partner: Partner, name: str, platform: str, **device: Any) -> User:
    token = device_token(platform)
    uuid = f"stats-{name}-{token[-8:]}"
    insider_id = partner.session(
        {"uuid": uuid}, platform, token, udid=f"UDID-{token[-12:]}", **device
    )
    return User(name, uuid, platform, token, insider_id)


def answer(r: Any) -> tuple[int, Any]:
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


@pytest.fixture(scope="module")
def scenario(server: Server, control: Control) -> Scenario:
    partner = server.create_partner()
    partner.update("--gfc-limit", "1")
    settings_changed = time.monotonic()
    users: dict[str, User] = {}
    for name, platform in [
        ("ios1", "ios"),
        ("ios2", "ios"),
        ("and1", "android"),
        ("and2", "android"),
        ("hw1", "huawei"),
        ("capped", "android"),
        ("unreg_ios", "ios"),
        ("unreg_and1", "android"),
        ("unreg_and2", "android"),
    ]:
        users[name] = register(partner, name, platform)
    users["optout"] = register(partner, "optout", "ios", push_optin=False)
    users["nodevice"] = User("nodevice", f"stats-nodevice-{os.urandom(4).hex()}")
    upsert_user(partner, {"uuid": users["nodevice"].uuid}, name="No Device")
    users["nobody"] = User("nobody", f"stats-nobody-{os.urandom(4).hex()}")
    for name in ("unreg_and1", "unreg_and2"):
        control.token_outcome("android", str(users[name].token), "UNREGISTERED")
    time.sleep(max(0.0, SETTINGS_DELAY - (time.monotonic() - settings_changed)))
    s = Scenario(partner, users)

    # Campaign A: GFC only for `capped`, so that B finds it at the cap and nobody else.
    before = time.time()
    r = partner.push(
        {
            "notifications": [
                notification(s["capped"].uuid, camp_id=CAMP_A, GFC_enabled=True, **A_CONTENT),
                notification(s["ios1"].uuid, camp_id=CAMP_A, **A_CONTENT),
                notification(s["unreg_ios"].uuid, camp_id=CAMP_A, **A_CONTENT),
            ]
        }
    )
    s.a_sent = (before, time.time())
    assert r.status_code == 200, r.text
    assert r.json()["errors"] == {}, r.text
    wait_jobs_final(partner, 3, timeout=20)
    control.token_outcome("ios", str(s["unreg_ios"].token), "Unregistered")

    # Campaign B, in a later second than A (Message Center orders by request time).
    wait_next_second(s.a_sent[1])
    order = [
        "ios1", "ios2", "and1", "and2", "hw1", "unreg_ios", "unreg_and1", "unreg_and2",
        "optout", "capped", "nodevice", "nobody",
    ]  # fmt: skip
    before = time.time()
    r = partner.push(
        {
            "notifications": [
                notification(s[n].uuid, camp_id=CAMP_B, GFC_enabled=True, **B_CONTENT)
                for n in order
            ]
        }
    )
    s.b_sent = (before, time.time())
    assert r.status_code == 200, r.text
    s.b_answer = r.json()
    wait_jobs_final(partner, 3 + 8, timeout=30)

    # App events.
    s.events_at = time.time()
    now = iso(s.events_at)
    calls = [
        ("ios1", [event("push_delivered", CAMP_B, now), event("push_session", CAMP_B, now),
                  event("push_delivered", CAMP_A, now)]),
        ("and1", [event("push_delivered", CAMP_B, now)]),
        ("hw1", [event("push_delivered", CAMP_B, now), event("push_delivered", CAMP_B, now)]),
        ("capped", [event("push_session", CAMP_A, now)]),
        ("ios1", [event("push_delivered", CAMP_B, now), event("push_session", UNKNOWN_CAMP, now)]),
    ]  # fmt: skip
    for name, events in calls:
        s.event_answers.append(answer(send_events(partner, str(s[name].insider_id), events)))
    return s


def uuids(s: Scenario, *names: str) -> list[dict[str, str]]:
    return [{"uuid": s[n].uuid} for n in names]


# ---- the scenario as the push API and the events endpoint answered it ----


def test_push_answer_lists_the_sends_and_each_exclusion_reason(scenario: Scenario) -> None:
    s = scenario
    sent = ["ios1", "ios2", "and1", "and2", "hw1", "unreg_ios", "unreg_and1", "unreg_and2"]
    assert sorted(x["INSIDER.device_token"] for x in s.b_answer["successes"]) == sorted(
        str(s[n].token) for n in sent
    )
    assert s.b_answer["errors"] == {
        "OptOut": uuids(s, "optout"),
        "UserGloballyCapped": uuids(s, "capped"),
        "Unregistered": uuids(s, "nodevice"),
        "NoUserFound": uuids(s, "nobody"),
    }


def test_event_answers_count_accepted_duplicate_and_unknown_campaign_events(
    scenario: Scenario,
) -> None:
    assert scenario.event_answers == [
        (200, {"accepted": 3, "duplicates": 0, "unknown_campaigns": 0}),
        (200, {"accepted": 1, "duplicates": 0, "unknown_campaigns": 0}),
        (200, {"accepted": 1, "duplicates": 1, "unknown_campaigns": 0}),  # twice in one request
        (200, {"accepted": 1, "duplicates": 0, "unknown_campaigns": 0}),
        (200, {"accepted": 0, "duplicates": 1, "unknown_campaigns": 1}),
    ]


# ---- GET /api/v1/campaigns/{camp_id}/report ----


def test_report_funnel_counts_every_stage_exactly(scenario: Scenario) -> None:
    rep = wait_campaign_settled(scenario.partner, CAMP_B)

    assert rep["funnel"] == {
        "requested": 12,
        "resolved": 11,
        "excluded": {"NoUserFound": 1, "OptOut": 1, "UserGloballyCapped": 1, "Unregistered": 1},
        "queued": 8,
        "scheduled": 0,
        "accepted": 5,
        "failed": 3,
        "cancelled": 0,
        "expired": 0,
        "pending": 0,
        "delivered": 3,  # ios1, and1, hw1; duplicates counted once
        "opened": 1,
    }
    assert rep["rates"] == {"delivery_rate": 60.0, "open_rate": 33.33}


def test_report_describes_the_campaign_as_first_sent(scenario: Scenario) -> None:
    rep = wait_campaign_settled(scenario.partner, CAMP_B)

    created = epoch(rep["created_at"])
    assert int(scenario.b_sent[0]) <= created <= scenario.b_sent[1]
    assert {k: rep[k] for k in ("camp_id", "name", "title", "message", "image_url")} == {
        "camp_id": CAMP_B,
        "name": B_CONTENT["camp_name"],
        "title": B_CONTENT["title"],
        "message": B_CONTENT["message"],
        "image_url": B_CONTENT["image_url"],
    }


def test_report_splits_sends_by_platform(scenario: Scenario) -> None:
    rep = wait_campaign_settled(scenario.partner, CAMP_B)

    assert rep["platforms"] == {
        "ios": {"queued": 3, "accepted": 2, "failed": 1, "expired": 0},
        "android": {"queued": 4, "accepted": 2, "failed": 2, "expired": 0},
        "huawei": {"queued": 1, "accepted": 1, "failed": 0, "expired": 0},
    }


def test_report_groups_fail_records_by_name_most_frequent_first(scenario: Scenario) -> None:
    s = scenario
    rep = wait_campaign_settled(s.partner, CAMP_B)

    records = rep["fail_records"]
    assert [(f["name"], f["count"], f["platforms"]) for f in records] == [
        ("NotRegistered", 2, {"android": 2}),  # FCM UNREGISTERED (providers.md)
        ("Unregistered", 1, {"ios": 1}),
    ]
    assert sorted(records[0]["sample_tokens"]) == sorted(
        [s["unreg_and1"].token, s["unreg_and2"].token]
    )
    assert records[1]["sample_tokens"] == [s["unreg_ios"].token]


def test_report_series_sums_equal_the_funnel_totals(scenario: Scenario) -> None:
    s = scenario
    rep = wait_campaign_settled(s.partner, CAMP_B)

    assert series_sums(rep) == funnel_totals(rep)
    hours = [h["hour"] for h in rep["series"]]
    assert hours == sorted(set(hours))  # oldest first, one entry per hour
    # Every hour lies between the request and the events (the events' timestamp hour).
    first, last = hour_of(s.b_sent[0]), hour_of(time.time())
    assert all(first <= h <= last for h in hours), hours
    for h in rep["series"]:
        assert any(h.get(k) for k in funnel_totals(rep)), h  # only hours with a count


def test_report_of_a_campaign_without_exclusions(scenario: Scenario) -> None:
    rep = wait_campaign_settled(scenario.partner, CAMP_A)

    assert rep["funnel"] == {
        "requested": 3,
        "resolved": 3,
        "excluded": {},
        "queued": 3,
        "scheduled": 0,
        "accepted": 3,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
        "pending": 0,
        "delivered": 2,  # ios1 reported delivery, capped only an open
        "opened": 1,
    }
    assert rep["rates"] == {"delivery_rate": 66.67, "open_rate": 50.0}
    assert rep["platforms"] == {
        "ios": {"queued": 2, "accepted": 2, "failed": 0, "expired": 0},
        "android": {"queued": 1, "accepted": 1, "failed": 0, "expired": 0},
        "huawei": ZERO_PLATFORM,
    }
    assert rep["fail_records"] == []
    assert series_sums(rep) == funnel_totals(rep)


def test_report_of_an_unknown_campaign_is_not_found(scenario: Scenario) -> None:
    r = report(scenario.partner, 4242)

    assert r.status_code == 404, r.text
    assert error_code(r) == "campaign_not_found"


@pytest.mark.parametrize("key", ["", "not-a-key"])
def test_report_with_a_bad_key_is_unauthorized(scenario: Scenario, key: str) -> None:
    r = report(scenario.partner, CAMP_B, api_key=key)

    assert r.status_code == 401, r.text
    assert error_code(r) == "invalid_api_key"


def test_report_without_a_key_is_unauthorized(scenario: Scenario) -> None:
    r = scenario.partner.server.client.get(f"/api/v1/campaigns/{CAMP_B}/report")

    assert r.status_code == 401, r.text
    assert error_code(r) == "invalid_api_key"


# ---- POST /api/v1/notification/get_statistics ----


def test_statistics_list_todays_campaigns_with_counts_and_open_rate(scenario: Scenario) -> None:
    r = get_statistics(scenario.partner)

    assert r.status_code == 200, r.text
    by_id = {c["id"]: c for c in r.json()["campaigns"]}
    assert sorted(by_id) == [CAMP_A, CAMP_B]
    assert by_id[CAMP_B] == {
        "id": CAMP_B,
        "name": B_CONTENT["camp_name"],
        "delivery_count": 3,
        "session_count": 1,
        "open_rate": "% 33.33",
        "message": B_CONTENT["message"],
        "title": B_CONTENT["title"],
        "segment_name": "Targeted Push API",
        "deep_link": {
            "ins_dl_internal": "https://shop.example.com/b",
            "page": "cart",
            "ios_only": "1",
        },
        "push_image": B_CONTENT["image_url"],
        "scheduled_count": 0,
        "cancelled_count": 0,
    }
    # Android's (and Huawei's) keys first, then the keys only iOS has.
    assert list(by_id[CAMP_B]["deep_link"]) == ["ins_dl_internal", "page", "ios_only"]
    assert by_id[CAMP_A] == {
        "id": CAMP_A,
        "name": A_CONTENT["camp_name"],
        "delivery_count": 2,
        "session_count": 1,
        "open_rate": "% 50.00",
        "message": A_CONTENT["message"],
        "title": A_CONTENT["title"],
        "segment_name": "Targeted Push API",
        "deep_link": {
            "ins_dl_internal": "https://shop.example.com/a",
            "ins_dl_url_scheme": "shop://a",
        },
        "push_image": "",
        "scheduled_count": 0,
        "cancelled_count": 0,
    }


def test_statistics_totals_add_the_campaigns_and_rate_the_totals(scenario: Scenario) -> None:
    body = get_statistics(scenario.partner).json()

    assert {k: v for k, v in body.items() if k != "campaigns"} == {
        "total_camp_count": 2,
        "total_delivery_count": 5,
        "total_session_count": 2,
        "total_open_rate": "% 40.00",
    }


@pytest.mark.parametrize("key", ["", "wrong-key"])
def test_statistics_with_a_bad_key_is_unauthorized(scenario: Scenario, key: str) -> None:
    r = get_statistics(scenario.partner, api_key=key)

    assert r.status_code == 401, r.text
    assert r.json() == {"error": "Bad Api Key."}


def test_statistics_without_a_key_is_unauthorized(server: Server) -> None:
    r = server.client.post("/api/v1/notification/get_statistics", json={})

    assert r.status_code == 401, r.text
    assert r.json() == {"error": "Bad Api Key."}


def test_statistics_body_that_is_not_json_is_a_bad_request(server: Server) -> None:
    r = server.client.post(
        "/api/v1/notification/get_statistics",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert r.status_code == 400, r.text
    assert error_code(r) == "invalid_json"


def test_statistics_of_a_partner_without_campaigns_are_zero(server: Server) -> None:
    r = get_statistics(server.create_partner())

    assert r.status_code == 200, r.text
    assert r.json() == {
        "campaigns": [],
        "total_camp_count": 0,
        "total_delivery_count": 0,
        "total_session_count": 0,
        "total_open_rate": "% 0.00",
    }


def test_statistics_cover_campaigns_first_used_since_midnight_utc(partner: Partner) -> None:
    partner.session({"uuid": "day-user"}, "ios", device_token("ios"))
    push_all(partner, [notification("day-user", camp_id=c) for c in (1, 2)])
    midnight = calendar.timegm((*time.gmtime()[:3], 0, 0, 0))
    # Campaign 1 was first used a second before midnight, campaign 2 exactly at midnight.
    for camp, at in ((1, midnight - 1), (2, midnight)):
        changed = execute(
            partner,
            "UPDATE campaigns SET created_at = ? WHERE partner_id = ? AND camp_id = ?",
            at,
            partner_id(partner),
            camp,
        )
        assert changed == 1

    body = get_statistics(partner).json()

    assert [c["id"] for c in body["campaigns"]] == [2]
    assert body["total_camp_count"] == 1
    listed = list_campaigns(partner, **{"from": time.strftime("%Y-%m-%d", time.gmtime())})
    assert [c["camp_id"] for c in listed.json()["campaigns"]] == [2]
    assert list_campaigns(partner).json()["total"] == 2


# ---- GET /api/v1/campaigns ----


def summary(rep: dict[str, Any]) -> dict[str, Any]:
    """A report as the campaign list summarises it."""
    f = rep["funnel"]
    return {
        "camp_id": rep["camp_id"],
        "name": rep["name"],
        "title": rep["title"],
        "message": rep["message"],
        "created_at": rep["created_at"],
        **{
            k: f[k] for k in ("requested", "queued", "scheduled", "accepted", "failed", "cancelled")
        },
        "expired": f["expired"],
        "delivered": f["delivered"],
        "opened": f["opened"],
        "open_rate": rep["rates"]["open_rate"],
    }


def test_campaign_list_shows_each_campaign_newest_first(scenario: Scenario) -> None:
    s = scenario
    r = list_campaigns(s.partner)

    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("page", "per_page", "total")} == {
        "page": 1,
        "per_page": 50,
        "total": 2,
    }
    b, a = body["campaigns"]
    assert b == {
        "camp_id": CAMP_B,
        "name": B_CONTENT["camp_name"],
        "title": B_CONTENT["title"],
        "message": B_CONTENT["message"],
        "created_at": b["created_at"],
        "requested": 12,
        "queued": 8,
        "scheduled": 0,
        "accepted": 5,
        "failed": 3,
        "cancelled": 0,
        "expired": 0,
        "delivered": 3,
        "opened": 1,
        "open_rate": 33.33,
    }
    assert b == summary(report_json(s.partner, CAMP_B))
    assert a == summary(report_json(s.partner, CAMP_A))
    assert int(s.a_sent[0]) <= epoch(a["created_at"]) <= s.a_sent[1]


def test_campaign_list_pages(scenario: Scenario) -> None:
    partner = scenario.partner

    first = list_campaigns(partner, per_page=1).json()
    second = list_campaigns(partner, per_page=1, page=2).json()
    beyond = list_campaigns(partner, per_page=1, page=3).json()

    assert [c["camp_id"] for c in first["campaigns"]] == [CAMP_B]
    assert [c["camp_id"] for c in second["campaigns"]] == [CAMP_A]
    assert beyond["campaigns"] == []
    assert [(p["page"], p["per_page"], p["total"]) for p in (first, second, beyond)] == [
        (1, 1, 2),
        (2, 1, 2),
        (3, 1, 2),
    ]


def test_campaign_list_date_range_in_the_past_lists_nothing(scenario: Scenario) -> None:
    r = list_campaigns(scenario.partner, **{"from": "2020-01-01", "to": "2020-01-02"})

    assert r.status_code == 200, r.text
    assert r.json() == {"campaigns": [], "page": 1, "per_page": 50, "total": 0}


def test_campaign_list_date_range_is_half_open(scenario: Scenario) -> None:
    """`[from, to)`: a campaign created exactly at `to` is left out, one at `from` is in."""
    partner = scenario.partner
    a = epoch(report_json(partner, CAMP_A)["created_at"])
    b = epoch(report_json(partner, CAMP_B)["created_at"])
    assert a < b

    only_a = list_campaigns(partner, **{"from": a - 3600, "to": b}).json()
    only_b = list_campaigns(partner, **{"from": iso(b), "to": iso(b + 1)}).json()
    today = list_campaigns(partner, **{"from": time.strftime("%Y-%m-%d", time.gmtime())}).json()

    assert [c["camp_id"] for c in only_a["campaigns"]] == [CAMP_A]
    assert [c["camp_id"] for c in only_b["campaigns"]] == [CAMP_B]
    assert [c["camp_id"] for c in today["campaigns"]] == [CAMP_B, CAMP_A]


@pytest.mark.parametrize(
    "params",
    [{"per_page": 0}, {"per_page": 201}, {"page": 0}, {"from": "yesterday"}, {"to": "2020-13-45"}],
    ids=["per_page-0", "per_page-201", "page-0", "from-word", "to-bad-date"],
)
def test_campaign_list_rejects_bad_parameters(scenario: Scenario, params: dict[str, Any]) -> None:
    r = list_campaigns(scenario.partner, **params)

    assert r.status_code == 400, r.text
    assert error_code(r) == "invalid_parameter"


def test_campaign_list_with_a_bad_key_is_unauthorized(scenario: Scenario) -> None:
    r = list_campaigns(scenario.partner, api_key="nope")

    assert r.status_code == 401, r.text
    assert error_code(r) == "invalid_api_key"


# ---- POST /api/message_center/v1 ----


def entry(s: Scenario, camp: int, content: dict[str, Any], platform: str) -> dict[str, Any]:
    """The Message Center entry expected for a push of this campaign (variant_id and created_at
    are checked separately)."""
    expected: dict[str, Any] = {
        "camp_id": camp,
        "camp_type": "Single Push",
        "deep_links": content["ios" if platform == "ios" else "android"]["deep_link"],
        "message": content["message"],
        "title": content["title"],
    }
    if content["image_url"]:
        expected["image_url"] = content["image_url"]
    return expected


def without_ids(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("created_at", "variant_id")} for e in entries]


def test_message_center_lists_the_users_pushes_newest_first(scenario: Scenario) -> None:
    s = scenario
    entries = inbox(s.partner, s["ios1"].uuid)

    assert without_ids(entries) == [
        entry(s, CAMP_B, B_CONTENT, "ios"),
        entry(s, CAMP_A, A_CONTENT, "ios"),  # A had no image: no image_url
    ]
    b, a = entries
    assert int(s.b_sent[0]) <= epoch(b["created_at"]) <= s.b_sent[1]
    assert int(s.a_sent[0]) <= epoch(a["created_at"]) <= s.a_sent[1]
    assert isinstance(b["variant_id"], int) and isinstance(a["variant_id"], int)
    assert b["variant_id"] != a["variant_id"]


@pytest.mark.parametrize(("name", "platform"), [("and1", "android"), ("hw1", "huawei")])
def test_message_center_shows_the_deep_links_of_the_platform_sent_to(
    scenario: Scenario, name: str, platform: str
) -> None:
    s = scenario
    entries = inbox(s.partner, s[name].uuid)

    assert without_ids(entries) == [entry(s, CAMP_B, B_CONTENT, platform)]
    # Same content as ios1's push of B: the same variant.
    assert entries[0]["variant_id"] == inbox(s.partner, s["ios1"].uuid)[0]["variant_id"]


def test_message_center_limit_one_returns_only_the_newest(scenario: Scenario) -> None:
    s = scenario
    entries = inbox(s.partner, s["ios1"].uuid, limit=1)

    assert [e["camp_id"] for e in entries] == [CAMP_B]


def test_message_center_date_range_is_inclusive_and_can_exclude_everything(
    scenario: Scenario,
) -> None:
    s = scenario
    uuid = s["ios1"].uuid
    b, a = inbox(s.partner, uuid)
    a_at, b_at = epoch(a["created_at"]), epoch(b["created_at"])

    assert [e["camp_id"] for e in inbox(s.partner, uuid, start_date=b_at)] == [CAMP_B]
    assert [e["camp_id"] for e in inbox(s.partner, uuid, end_date=a_at)] == [CAMP_A]
    assert [e["camp_id"] for e in inbox(s.partner, uuid, start_date=a_at, end_date=b_at)] == [
        CAMP_B,
        CAMP_A,
    ]
    assert inbox(s.partner, uuid, start_date=1000, end_date=2000) == []
    later = int(time.time()) + 3600
    assert inbox(s.partner, uuid, start_date=later, end_date=later + 3600) == []


def test_message_center_leaves_out_a_push_the_provider_refused(scenario: Scenario) -> None:
    s = scenario

    # unreg_ios received A; B was answered Unregistered.
    assert [e["camp_id"] for e in inbox(s.partner, s["unreg_ios"].uuid)] == [CAMP_A]
    assert inbox(s.partner, s["unreg_and1"].uuid) == []
    # Excluded users were never sent B.
    assert inbox(s.partner, s["optout"].uuid) == []
    assert [e["camp_id"] for e in inbox(s.partner, s["capped"].uuid)] == [CAMP_A]


def test_message_center_accepts_lower_case_identifier_keys(scenario: Scenario) -> None:
    s = scenario
    r = message_center(s.partner, {"identifiers": {"uuid": s["ios1"].uuid}})

    assert r.status_code == 200, r.text
    assert [e["camp_id"] for e in r.json()] == [CAMP_B, CAMP_A]


def test_message_center_of_an_unknown_user_is_empty(scenario: Scenario) -> None:
    assert inbox(scenario.partner, scenario["nobody"].uuid) == []


def plain(r: Any) -> tuple[int, str]:
    return r.status_code, r.text


def test_message_center_start_after_end_is_a_bad_payload(scenario: Scenario) -> None:
    r = message_center(
        scenario.partner,
        {"identifiers": {"Uuid": scenario["ios1"].uuid}, "start_date": 2000, "end_date": 1000},
    )

    assert plain(r) == (400, "bad payload")
    assert r.headers["content-type"].startswith("text/plain"), r.headers


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_message_center_limit_outside_1_to_100_is_rejected(scenario: Scenario, limit: int) -> None:
    r = message_center(
        scenario.partner, {"identifiers": {"Uuid": scenario["ios1"].uuid}, "limit": limit}
    )

    assert plain(r) == (400, "limit should be between 1 and 100.")


@pytest.mark.parametrize("limit", [1, 100])
def test_message_center_limit_bounds_are_allowed(scenario: Scenario, limit: int) -> None:
    entries = inbox(scenario.partner, scenario["ios1"].uuid, limit=limit)

    assert len(entries) == min(limit, 2)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"start_date": 1}',
        b'{"identifiers": {}}',
        b'{"identifiers": {"Uuid": "x"}, "limit": "ten"}',
    ],
    ids=["not-json", "no-identifiers", "empty-identifiers", "limit-not-a-number"],
)
def test_message_center_malformed_body_is_a_bad_payload(scenario: Scenario, body: bytes) -> None:
    assert plain(message_center(scenario.partner, body)) == (400, "bad payload")


@pytest.mark.parametrize("key", ["", "wrong-key"])
def test_message_center_with_a_bad_key_is_unauthorized(scenario: Scenario, key: str) -> None:
    r = message_center(scenario.partner, {"identifiers": {"Uuid": scenario["ios1"].uuid}}, key)

    assert plain(r) == (401, "bad api key")


def test_message_center_without_a_key_is_unauthorized(scenario: Scenario) -> None:
    r = scenario.partner.server.client.post(
        "/api/message_center/v1", json={"identifiers": {"Uuid": scenario["ios1"].uuid}}
    )

    assert plain(r) == (401, "bad api key")


# ---- tenant isolation ----


def test_another_partner_sees_none_of_the_campaigns(scenario: Scenario, server: Server) -> None:
    other = server.create_partner()

    r = report(other, CAMP_B)
    assert r.status_code == 404, r.text
    assert error_code(r) == "campaign_not_found"
    stats = get_statistics(other).json()
    assert stats["campaigns"] == [] and stats["total_camp_count"] == 0, stats
    assert list_campaigns(other).json()["total"] == 0
    assert inbox(other, scenario["ios1"].uuid) == []


def test_another_partners_sdk_key_cannot_report_events_for_this_partners_user(
    scenario: Scenario, server: Server
) -> None:
    s = scenario
    other = server.create_partner()
    before = report_json(s.partner, CAMP_B)["funnel"]

    r = send_events(
        s.partner, str(s["ios2"].insider_id), [event("push_session", CAMP_B)], other.sdk_key
    )

    assert r.status_code == 404, r.text
    assert error_code(r) == "user_not_found"
    assert report_json(s.partner, CAMP_B)["funnel"] == before


def test_the_same_camp_id_of_another_partner_is_a_separate_campaign(
    scenario: Scenario, server: Server
) -> None:
    s = scenario
    other = server.create_partner()
    token = device_token("ios")
    insider_id = other.session({"uuid": "other-user"}, "ios", token)
    before = report_json(s.partner, CAMP_B)

    push_all(other, [notification("other-user", camp_id=CAMP_B, camp_name="Other's campaign")])
    wait_jobs_final(other, 1, timeout=20)
    r = send_events(other, insider_id, [event("push_session", CAMP_B)])
    assert r.json() == {"accepted": 1, "duplicates": 0, "unknown_campaigns": 0}

    theirs = wait_campaign_settled(other, CAMP_B)
    assert theirs["name"] == "Other's campaign"
    assert {k: theirs["funnel"][k] for k in ("requested", "accepted", "delivered", "opened")} == {
        "requested": 1,
        "accepted": 1,
        "delivered": 1,
        "opened": 1,
    }
    assert report_json(s.partner, CAMP_B) == before


# ---- POST /api/sdk/v1/events: errors record nothing ----


@pytest.fixture
def one_push(partner: Partner) -> tuple[Partner, str]:
    """A fresh partner with one ios user sent campaign 1; returns the partner and the user's
    insider_id (events need only the campaign to exist, not its delivery)."""
    insider_id = partner.session({"uuid": "evt-user"}, "ios", device_token("ios"))
    push_all(partner, [notification("evt-user", camp_id=1)])
    return partner, insider_id


def app_counts(partner: Partner, camp_id: int = 1) -> tuple[int, int]:
    funnel = report_json(partner, camp_id)["funnel"]
    return funnel["delivered"], funnel["opened"]


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([event("push_session", 1), event("push_opened", 1)], "invalid_event"),
        ([event("push_session", 1), {"event_name": "push_session"}], "missing_field"),
        ([event("push_session", 1), event("push_session", "one")], "invalid_type"),
        ([event("push_session", 1), {"event_name": 7, "camp_id": 1}], "invalid_type"),
    ],
    ids=["other-event-name", "no-camp-id", "camp-id-string", "name-number"],
)
def test_invalid_event_in_a_batch_is_rejected_and_nothing_is_recorded(
    one_push: tuple[Partner, str], events: list[dict[str, Any]], code: str
) -> None:
    partner, insider_id = one_push

    r = send_events(partner, insider_id, events)

    assert r.status_code == 400, r.text
    assert error_code(r) == code
    assert app_counts(partner) == (0, 0)
    # The valid event was not recorded: reporting it now is not a duplicate.
    ok = send_events(partner, insider_id, [event("push_session", 1)])
    assert ok.json() == {"accepted": 1, "duplicates": 0, "unknown_campaigns": 0}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"events": [{"event_name": "push_session", "camp_id": 1}]}', "missing_field"),
        (b'{"insider_id": "x"}', "missing_field"),
        (b'{"insider_id": "x", "events": {"event_name": "push_session"}}', "invalid_type"),
    ],
    ids=["not-json", "no-insider-id", "no-events", "events-not-a-list"],
)
def test_malformed_event_request_is_a_bad_request(
    one_push: tuple[Partner, str], body: bytes, code: str
) -> None:
    partner, _ = one_push
    r = partner.server.client.post(
        "/api/sdk/v1/events",
        content=body,
        headers={"X-SDK-KEY": partner.sdk_key, "Content-Type": "application/json"},
    )

    assert r.status_code == 400, r.text
    assert error_code(r) == code


@pytest.mark.parametrize("count", [0, 1001])
def test_event_count_outside_1_to_1000_is_a_bad_request(
    one_push: tuple[Partner, str], count: int
) -> None:
    partner, insider_id = one_push

    r = send_events(partner, insider_id, [event("push_delivered", 1)] * count)

    assert r.status_code == 400, r.text
    error_code(r)
    assert app_counts(partner) == (0, 0)


@pytest.mark.parametrize("key", ["", "not-an-sdk-key"])
def test_events_with_a_bad_sdk_key_are_unauthorized(
    one_push: tuple[Partner, str], key: str
) -> None:
    partner, insider_id = one_push

    r = send_events(partner, insider_id, [event("push_session", 1)], sdk_key=key)

    assert r.status_code == 401, r.text
    assert error_code(r) == "bad_sdk_key"
    assert app_counts(partner) == (0, 0)


def test_events_with_the_api_key_instead_of_the_sdk_key_are_unauthorized(
    one_push: tuple[Partner, str],
) -> None:
    partner, insider_id = one_push

    r = send_events(partner, insider_id, [event("push_session", 1)], sdk_key=partner.api_key)

    assert r.status_code == 401, r.text
    assert error_code(r) == "bad_sdk_key"


def test_events_for_an_unknown_insider_id_are_not_found(one_push: tuple[Partner, str]) -> None:
    partner, _ = one_push

    r = send_events(partner, "no-such-insider-id", [event("push_session", 1)])

    assert r.status_code == 404, r.text
    assert error_code(r) == "user_not_found"
    assert app_counts(partner) == (0, 0)


def test_an_open_counts_as_a_delivery_and_each_user_once(one_push: tuple[Partner, str]) -> None:
    partner, insider_id = one_push
    second = partner.session({"uuid": "evt-user-2"}, "android", device_token("android"))
    push_all(partner, [notification("evt-user-2", camp_id=1)])

    send_events(partner, insider_id, [event("push_session", 1)])
    send_events(partner, insider_id, [event("push_delivered", 1), event("push_session", 1)])
    send_events(partner, second, [event("push_delivered", 1)])

    assert app_counts(partner) == (2, 1)
    assert get_statistics(partner).json()["campaigns"][0]["open_rate"] == "% 50.00"


def test_event_with_a_future_timestamp_counts_in_the_hour_it_was_received(
    one_push: tuple[Partner, str],
) -> None:
    partner, insider_id = one_push
    before = time.time()

    r = send_events(partner, insider_id, [event("push_session", 1, iso(before + 30 * 86400))])

    assert r.status_code == 200, r.text
    series = report_json(partner, 1)["series"]
    opened_hours = [h["hour"] for h in series if h.get("opened")]
    assert opened_hours in ([hour_of(before)], [hour_of(time.time())]), series


def test_event_timestamp_sets_the_hour_of_the_series(one_push: tuple[Partner, str]) -> None:
    partner, insider_id = one_push
    earlier = time.time() - 2 * 3600

    send_events(partner, insider_id, [event("push_delivered", 1, iso(earlier))])

    series = report_json(partner, 1)["series"]
    assert [h["hour"] for h in series if h.get("delivered")] == [hour_of(earlier)], series
    assert series[0]["hour"] == hour_of(earlier)  # oldest first


# ---- variants ----


def test_later_content_under_the_same_camp_id_is_a_new_variant(partner: Partner) -> None:
    first = {"title": "First title", "message": "First message"}
    second = {"title": "Second title", "message": "Second message"}
    for uuid in ("var-x", "var-y"):
        partner.session({"uuid": uuid}, "ios", device_token("ios"))

    push_all(partner, [notification("var-x", camp_id=3, **first)])
    wait_next_second(time.time())
    push_all(partner, [notification("var-x", camp_id=3, **second)])
    wait_next_second(time.time())
    push_all(partner, [notification("var-y", camp_id=3, **first)])
    wait_jobs_final(partner, 3, timeout=20)
    wait_campaign_settled(partner, 3)

    x_second, x_first = inbox(partner, "var-x")
    (y_first,) = inbox(partner, "var-y")
    assert [(e["title"], e["message"]) for e in (x_second, x_first, y_first)] == [
        ("Second title", "Second message"),
        ("First title", "First message"),
        ("First title", "First message"),
    ]
    assert x_second["variant_id"] != x_first["variant_id"]
    assert y_first["variant_id"] == x_first["variant_id"]
    rep = report_json(partner, 3)
    assert (rep["title"], rep["message"]) == ("First title", "First message")
    assert rep["funnel"]["requested"] == 3
    assert rep["funnel"]["accepted"] == 3


# ---- retries ----


def test_retried_sends_are_counted_once(partner: Partner, emulator: Control) -> None:
    users = []
    for n in range(20):
        token = device_token("android")
        uuid = f"retry-{n}-{token[-6:]}"
        partner.session({"uuid": uuid}, "android", token)
        users.append((uuid, token))
    tokens = [t for _, t in users]
    emulator.fault("android", status=503, rate=0.5, retry_after=1)

    push_all(partner, [notification(u, camp_id=7, ttl=120) for u, _ in users])
    settled_jobs = wait_jobs_final(partner, 20, timeout=60)
    emulator.fault("android", status=503, rate=0)
    rep = wait_campaign_settled(partner, 7)

    assert Counter(j["state"] for j in settled_jobs) == {"done": 20}
    assert sum(j["attempts"] for j in settled_jobs) > 20, "the faults caused no retry"
    assert {k: v for k, v in rep["funnel"].items() if k != "excluded"} == {
        "requested": 20,
        "resolved": 20,
        "queued": 20,
        "scheduled": 0,
        "accepted": 20,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
        "pending": 0,
        "delivered": 0,
        "opened": 0,
    }
    assert rep["funnel"]["excluded"] == {}
    assert rep["platforms"] == {
        "ios": ZERO_PLATFORM,
        "android": {"queued": 20, "accepted": 20, "failed": 0, "expired": 0},
        "huawei": ZERO_PLATFORM,
    }
    assert rep["fail_records"] == []
    assert series_sums(rep) == funnel_totals(rep)
    (listed,) = list_campaigns(partner).json()["campaigns"]
    assert (listed["accepted"], listed["failed"]) == (20, 0)
    delivered = Counter(d["token"] for d in emulator.deliveries(platform="android"))
    assert {t: delivered[t] for t in tokens} == dict.fromkeys(tokens, 1)
    assert len(jobs(partner)) == 20


# ---- expiry, async requests ----


def test_push_not_accepted_within_its_ttl_is_counted_expired(
    partner: Partner, emulator: Control
) -> None:
    ios_token, android_token = device_token("ios"), device_token("android")
    partner.session({"uuid": "exp-ios"}, "ios", ios_token)
    partner.session({"uuid": "exp-android"}, "android", android_token)
    emulator.fault("ios", status=503, rate=1.0, retry_after=1)

    push_all(partner, [notification(u, camp_id=8, ttl=2) for u in ("exp-ios", "exp-android")])
    wait_jobs_final(partner, 2, timeout=15)
    emulator.fault("ios", status=503, rate=0)
    rep = wait_campaign_settled(partner, 8)

    assert {
        k: rep["funnel"][k] for k in ("queued", "accepted", "failed", "expired", "pending")
    } == {
        "queued": 2,
        "accepted": 1,
        "failed": 0,
        "expired": 1,
        "pending": 0,
    }
    assert rep["platforms"] == {
        "ios": {"queued": 1, "accepted": 0, "failed": 0, "expired": 1},
        "android": {"queued": 1, "accepted": 1, "failed": 0, "expired": 0},
        "huawei": ZERO_PLATFORM,
    }
    assert series_sums(rep) == funnel_totals(rep)
    assert inbox(partner, "exp-ios", end_date=int(time.time()) + 1) == []
    assert [e["camp_id"] for e in inbox(partner, "exp-android", end_date=int(time.time()) + 1)] == [
        8
    ]


def test_async_request_is_counted_like_a_synchronous_one(partner: Partner) -> None:
    partner.session({"uuid": "async-user"}, "huawei", device_token("huawei"))

    r = partner.push(
        {
            "async": True,
            "notifications": [
                notification("async-user", camp_id=9),
                notification("async-nobody", camp_id=9),
            ],
        }
    )
    assert r.status_code == 202, r.text
    wait_jobs_final(partner, 1, timeout=15)
    rep = wait_campaign_settled(partner, 9)

    assert rep["funnel"] == {
        "requested": 2,
        "resolved": 1,
        "excluded": {"NoUserFound": 1},
        "queued": 1,
        "scheduled": 0,
        "accepted": 1,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
        "pending": 0,
        "delivered": 0,
        "opened": 0,
    }
    assert rep["platforms"]["huawei"] == {"queued": 1, "accepted": 1, "failed": 0, "expired": 0}
