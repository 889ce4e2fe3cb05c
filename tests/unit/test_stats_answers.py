"""The JSON answers of the statistics reads: Message Center, get_statistics, campaign list and
report (insider-ecosystem.md §2, §3; docs/statistics.md)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushgate.stats import campaign as campaign_json
from pushgate.stats import insider
from pushgate.stats.campaign import ListQuery, parse_instant, parse_list_query
from pushgate.stats.funnel import hour_of
from pushgate.stats.message_center import SentPush, answer
from tests.support.stats_builders import as_json, campaign

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
LINKS = {"android": {"Page": "Cart", "shared": "a"}, "ios": {"Screen": "Home", "shared": "i"}}


# ---- Message Center ----


def sent_push(
    platform: str = "ios", image_url: str = "https://img/1.jpg", **kw: object
) -> SentPush:
    fields: dict[str, object] = {
        "camp_id": 650,
        "variant_id": 1907,
        "platform": platform,
        "created_at": 1674497417.9,
        "title": "T",
        "message": "M",
        "image_url": image_url,
        "deep_links": LINKS,
    }
    fields.update(kw)
    return SentPush(**fields)  # type: ignore[arg-type]


def test_a_message_center_entry_has_insiders_keys_in_insiders_order() -> None:
    [entry] = as_json(answer([sent_push()]))
    assert list(entry) == [
        "camp_id",
        "camp_type",
        "created_at",
        "deep_links",
        "image_url",
        "message",
        "title",
        "variant_id",
    ]
    assert entry == {
        "camp_id": 650,
        "camp_type": "Single Push",
        "created_at": "2023-01-23T18:10:17Z",
        "deep_links": {"Screen": "Home", "shared": "i"},
        "image_url": "https://img/1.jpg",
        "message": "M",
        "title": "T",
        "variant_id": 1907,
    }


def test_image_url_appears_only_when_the_push_had_one() -> None:
    [entry] = as_json(answer([sent_push(image_url="")]))
    assert "image_url" not in entry
    assert list(entry) == [
        "camp_id",
        "camp_type",
        "created_at",
        "deep_links",
        "message",
        "title",
        "variant_id",
    ]


@pytest.mark.parametrize(
    ("platform", "links"),
    [
        ("ios", {"Screen": "Home", "shared": "i"}),
        ("android", {"Page": "Cart", "shared": "a"}),
        ("huawei", {"Page": "Cart", "shared": "a"}),
    ],
)
def test_deep_links_are_those_of_the_platform_the_push_went_to(
    platform: str, links: dict[str, str]
) -> None:
    [entry] = as_json(answer([sent_push(platform)]))
    assert entry["deep_links"] == links


def test_a_push_without_deep_links_for_its_platform_has_an_empty_object() -> None:
    [entry] = as_json(answer([sent_push("huawei", deep_links={"ios": {"Screen": "Home"}})]))
    assert entry["deep_links"] == {}


def test_the_answer_keeps_the_order_it_is_given() -> None:
    entries = as_json(answer([sent_push(camp_id=3), sent_push(camp_id=1), sent_push(camp_id=2)]))
    assert [e["camp_id"] for e in entries] == [3, 1, 2]


def test_no_pushes_is_an_empty_array() -> None:
    assert as_json(answer([])) == []


# ---- get_statistics ----


def test_statistics_of_one_campaign_is_insiders_shape() -> None:
    c = campaign(
        5125,
        counts={"delivered": 1_640_069, "opened": 1085, "accepted:ios": 2_000_000},
        name="My app push name",
        title="Ti",
        message="Me",
        image_url="https://img/p.png",
        deep_links={"android": {"dl_key1": "value1"}, "ios": {}},
    )
    assert as_json(insider.statistics([c])) == {
        "campaigns": [
            {
                "id": 5125,
                "name": "My app push name",
                "delivery_count": 1_640_069,
                "session_count": 1085,
                "open_rate": "% 0.07",
                "message": "Me",
                "title": "Ti",
                "segment_name": "Targeted Push API",
                "deep_link": {"dl_key1": "value1"},
                "push_image": "https://img/p.png",
                "scheduled_count": 0,
                "cancelled_count": 0,
            }
        ],
        "total_camp_count": 1,
        "total_delivery_count": 1_640_069,
        "total_session_count": 1085,
        "total_open_rate": "% 0.07",
    }


def test_the_open_rate_of_a_campaign_nothing_was_delivered_for_is_zero() -> None:
    stats = as_json(insider.statistics([campaign(counts={"accepted:android": 3})]))
    assert stats["campaigns"][0]["open_rate"] == "% 0.00"
    assert stats["total_open_rate"] == "% 0.00"


def test_a_campaign_without_an_image_has_an_empty_push_image() -> None:
    stats = as_json(insider.statistics([campaign(image_url="")]))
    assert stats["campaigns"][0]["push_image"] == ""


def test_totals_add_the_campaigns_and_the_total_open_rate_comes_from_the_totals() -> None:
    stats = as_json(
        insider.statistics(
            [
                campaign(1, counts={"delivered": 3, "opened": 1}),
                campaign(2, counts={"delivered": 1, "opened": 1}),
                campaign(3),
            ]
        )
    )
    assert [c["open_rate"] for c in stats["campaigns"]] == ["% 33.33", "% 100.00", "% 0.00"]
    assert stats["total_camp_count"] == 3
    assert stats["total_delivery_count"] == 4
    assert stats["total_session_count"] == 2
    # 2 of 4, not the mean of the campaigns' rates.
    assert stats["total_open_rate"] == "% 50.00"


def test_no_campaigns_today_is_all_zeros() -> None:
    assert as_json(insider.statistics([])) == {
        "campaigns": [],
        "total_camp_count": 0,
        "total_delivery_count": 0,
        "total_session_count": 0,
        "total_open_rate": "% 0.00",
    }


def test_the_deep_link_is_androids_keys_then_the_keys_only_ios_has() -> None:
    merged = insider.merged_deep_links(LINKS)
    assert list(merged.items()) == [("Page", "Cart"), ("shared", "a"), ("Screen", "Home")]


@pytest.mark.parametrize(
    ("links", "merged"),
    [
        ({}, {}),
        ({"ios": {"a": "1"}}, {"a": "1"}),
        ({"android": {"a": "1"}}, {"a": "1"}),
    ],
)
def test_a_campaign_with_links_for_one_family_only_has_those(
    links: dict[str, dict[str, str]], merged: dict[str, str]
) -> None:
    assert insider.merged_deep_links(links) == merged


@given(
    st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), max_size=5).map(
        lambda pairs: [(min(a, b), max(a, b)) for a, b in pairs]
    )
)
def test_every_open_rate_is_a_percent_sign_and_two_decimals(pairs: list[tuple[int, int]]) -> None:
    stats = as_json(
        insider.statistics(
            [campaign(i, counts={"opened": o, "delivered": d}) for i, (o, d) in enumerate(pairs)]
        )
    )
    rates = [c["open_rate"] for c in stats["campaigns"]] + [stats["total_open_rate"]]
    assert all(re.fullmatch(r"% \d+\.\d\d", r) for r in rates), rates


# ---- the campaign list's query ----


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1800000000", T0),
        ("1800000000.5", T0 + 0.5),
        ("0", 0.0),
        ("2027-01-15", T0 - 8 * 3600),
        ("2027-01-15T08:00:00", T0),
        ("2027-01-15T08:00:00Z", T0),
        ("2027-01-15T10:00:00+02:00", T0),
        (" 2027-01-15T08:00:00Z ", T0),
    ],
)
def test_an_instant_is_epoch_seconds_or_an_iso_date_or_date_time_in_utc(
    text: str, seconds: float
) -> None:
    assert parse_instant(text) == seconds


@pytest.fixture
def local_time_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_tokyo")
def test_an_instant_without_a_zone_is_utc_whatever_the_servers_zone() -> None:
    assert parse_instant("2027-01-15T08:00:00") == T0
    assert parse_instant("2027-01-15") == T0 - 8 * 3600


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999", "tomorrow", "2027-02-30", ""])
def test_an_instant_that_is_not_a_finite_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(text)


def test_the_list_query_defaults_to_every_campaign_first_page_of_fifty() -> None:
    query = parse_list_query({})
    assert query == ListQuery(start=-math.inf, end=math.inf, page=1, per_page=50)
    assert query.offset == 0


def test_empty_parameters_take_their_defaults() -> None:
    assert parse_list_query({"from": "", "to": "", "page": "", "per_page": ""}) == parse_list_query(
        {}
    )


def test_the_list_query_reads_range_and_page() -> None:
    query = parse_list_query(
        {"from": "2027-01-15", "to": "1800003600", "page": "3", "per_page": "20"}
    )
    assert query == ListQuery(start=T0 - 8 * 3600, end=T0 + 3600, page=3, per_page=20)
    assert query.offset == 40


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from": "soon"}, "'from'"),
        ({"to": "nan"}, "'to'"),
        ({"page": "0"}, "'page'"),
        ({"page": "x"}, "'page'"),
        ({"page": "1.5"}, "'page'"),
        ({"per_page": "0"}, "'per_page'"),
        ({"per_page": "201"}, "'per_page'"),
        ({"per_page": "-5"}, "'per_page'"),
    ],
)
def test_a_bad_parameter_is_named_in_the_error(params: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_list_query(params)


def test_per_page_goes_up_to_two_hundred() -> None:
    assert parse_list_query({"per_page": "200"}).per_page == 200


# ---- the campaign list and report ----

FULL_COUNTS = {
    "requested": 10,
    "excluded:NoUserFound": 1,
    "queued:ios": 3,
    "queued:android": 5,
    "accepted:ios": 2,
    "accepted:android": 5,
    "failed:ios:Unregistered": 1,
    "delivered": 5,
    "opened": 2,
}


def test_a_list_entry_has_the_header_and_the_funnels_totals() -> None:
    c = campaign(7, counts=FULL_COUNTS, name="N", title="T", message="M", created_at=T0 + 723)
    listing = as_json(campaign_json.listing(12, ListQuery(0, 1e10, 2, 10), [c]))
    assert listing == {
        "campaigns": [
            {
                "camp_id": 7,
                "name": "N",
                "title": "T",
                "message": "M",
                "created_at": "2027-01-15T08:12:03Z",
                "requested": 10,
                "queued": 8,
                "scheduled": 0,
                "accepted": 7,
                "failed": 1,
                "cancelled": 0,
                "expired": 0,
                "delivered": 5,
                "opened": 2,
                "open_rate": 40.0,
            }
        ],
        "page": 2,
        "per_page": 10,
        "total": 12,
    }


def test_the_report_has_the_documented_shape() -> None:
    c = campaign(
        7,
        counts=FULL_COUNTS,
        name="N",
        title="T",
        message="M",
        image_url="https://img/x.png",
        created_at=T0 + 723,
    )
    h = hour_of(T0)
    hours = [(h, name, count) for name, count in FULL_COUNTS.items()]
    report = as_json(
        campaign_json.report(c, hours, [("Unregistered", "ios", 1)], {"Unregistered": ["tok-9"]})
    )
    assert report == {
        "camp_id": 7,
        "name": "N",
        "title": "T",
        "message": "M",
        "image_url": "https://img/x.png",
        "created_at": "2027-01-15T08:12:03Z",
        "funnel": {
            "requested": 10,
            "resolved": 9,
            "excluded": {"NoUserFound": 1},
            "queued": 8,
            "scheduled": 0,
            "accepted": 7,
            "failed": 1,
            "cancelled": 0,
            "expired": 0,
            "pending": 0,
            "delivered": 5,
            "opened": 2,
        },
        "rates": {"delivery_rate": 71.43, "open_rate": 40.0},
        "platforms": {
            "ios": {"queued": 3, "accepted": 2, "failed": 1, "expired": 0},
            "android": {"queued": 5, "accepted": 5, "failed": 0, "expired": 0},
            "huawei": {"queued": 0, "accepted": 0, "failed": 0, "expired": 0},
        },
        "fail_records": [
            {
                "name": "Unregistered",
                "count": 1,
                "platforms": {"ios": 1},
                "sample_tokens": ["tok-9"],
            }
        ],
        "series": [
            {
                "hour": "2027-01-15T08:00:00Z",
                "requested": 10,
                "queued": 8,
                "accepted": 7,
                "failed": 1,
                "expired": 0,
                "delivered": 5,
                "opened": 2,
            }
        ],
    }


def test_a_report_of_a_campaign_with_no_counts_lists_three_empty_platforms() -> None:
    report = as_json(campaign_json.report(campaign(), [], [], {}))
    assert list(report["platforms"]) == ["ios", "android", "huawei"]
    assert report["fail_records"] == []
    assert report["series"] == []
    assert report["rates"] == {"delivery_rate": 0.0, "open_rate": 0.0}
