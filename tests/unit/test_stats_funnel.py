"""Campaign counters and the funnel read from them (docs/statistics.md, "The funnel")."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushgate.jobs import DEAD, DONE, EXPIRED, FAILED, LEASED, QUEUED
from pushgate.stats import funnel
from pushgate.stats.funnel import Funnel, funnel_of
from tests.support.stats_builders import as_json, excluded, make_push, sent

HOUR = 3600
T0 = 1_800_000_000  # 2027-01-15T08:00:00Z, on an hour boundary
OPEN_RATE = re.compile(r"^% \d+\.\d\d$")


# ---- time ----


def test_hour_of_is_the_utc_hour_since_the_epoch() -> None:
    assert funnel.hour_of(T0) == T0 // HOUR
    assert funnel.hour_of(T0 + HOUR - 0.001) == T0 // HOUR
    assert funnel.hour_of(T0 + HOUR) == T0 // HOUR + 1


def test_hour_of_a_time_before_the_epoch_is_the_hour_it_falls_in() -> None:
    assert funnel.hour_of(-1) == -1


def test_an_instant_is_utc_to_the_second_with_a_z() -> None:
    assert as_json(funnel.instant(0)) == "1970-01-01T00:00:00Z"
    assert as_json(funnel.instant(T0 + 3723.9)) == "2027-01-15T09:02:03Z"
    assert msgspec.json.encode(funnel.instant(T0 + 3723.9)) == b'"2027-01-15T09:02:03Z"'


def test_an_hour_instant_is_the_start_of_the_hour() -> None:
    assert as_json(funnel.hour_instant(funnel.hour_of(T0 + 1799))) == "2027-01-15T08:00:00Z"


# ---- what the API counts ----


def test_outcome_counts_count_each_user_requested_once() -> None:
    push = make_push(camp_id=7)
    counts = funnel.outcome_counts(
        [sent(push, 1), sent(push, 2, "android"), excluded(push, "OptOut", 3)]
    )
    assert counts[7, "requested"] == 3


def test_outcome_counts_split_queued_by_the_platform_of_the_device() -> None:
    push = make_push(camp_id=7)
    counts = funnel.outcome_counts(
        [sent(push, 1, "ios"), sent(push, 2, "android"), sent(push, 3, "android")]
    )
    assert counts[7, "queued:ios"] == 1
    assert counts[7, "queued:android"] == 2
    assert (7, "queued:huawei") not in counts


def test_outcome_counts_split_exclusions_by_reason() -> None:
    push = make_push(camp_id=7)
    counts = funnel.outcome_counts(
        [
            excluded(push, "NoUserFound"),
            excluded(push, "OptOut", 1),
            excluded(push, "OptOut", 2),
            excluded(push, "UserGloballyCapped", 3),
        ]
    )
    assert dict(counts) == {
        (7, "requested"): 4,
        (7, "excluded:NoUserFound"): 1,
        (7, "excluded:OptOut"): 2,
        (7, "excluded:UserGloballyCapped"): 1,
    }


def test_outcome_counts_keep_campaigns_apart() -> None:
    first, second = make_push(camp_id=7), make_push(camp_id=8, index=1)
    counts = funnel.outcome_counts([sent(first, 1), sent(second, 1, "huawei")])
    assert dict(counts) == {
        (7, "requested"): 1,
        (7, "queued:ios"): 1,
        (8, "requested"): 1,
        (8, "queued:huawei"): 1,
    }


def test_outcome_counts_of_nothing_is_empty() -> None:
    assert not funnel.outcome_counts([])


# ---- what the worker counts ----


@pytest.mark.parametrize(
    ("state", "platform", "reason", "name"),
    [
        (DONE, "ios", None, "accepted:ios"),
        (EXPIRED, "android", "Expired", "expired:android"),
        (FAILED, "huawei", "NotRegistered", "failed:huawei:NotRegistered"),
        (FAILED, "ios", "Unregistered", "failed:ios:Unregistered"),
        (DEAD, "android", "InvalidRegistration", "failed:android:InvalidRegistration"),
        (DEAD, "ios", None, "failed:ios:Unknown"),
    ],
)
def test_a_final_state_increments_its_counter(
    state: str, platform: str, reason: str | None, name: str
) -> None:
    assert funnel.settled_counter(state, platform, reason) == name


@pytest.mark.parametrize("state", [QUEUED, LEASED])
def test_a_job_still_to_be_retried_increments_nothing(state: str) -> None:
    assert funnel.settled_counter(state, "ios", "Whatever") is None


# ---- rates ----


def test_percent_has_two_decimals() -> None:
    assert funnel.percent(2, 3) == 66.67
    assert funnel.percent(2, 5) == 40.0


def test_percent_of_nothing_is_zero() -> None:
    assert funnel.percent(0, 0) == 0.0
    assert funnel.percent(5, 0) == 0.0


def test_open_rate_text_matches_insiders_example() -> None:
    # insider-ecosystem.md §2: 1085 sessions of 1640069 deliveries is "% 0.07".
    assert funnel.open_rate_text(1085, 1_640_069) == "% 0.07"


@pytest.mark.parametrize(
    ("opened", "delivered", "text"),
    [(0, 0, "% 0.00"), (3, 0, "% 0.00"), (0, 9, "% 0.00"), (2, 5, "% 40.00"), (7, 7, "% 100.00")],
)
def test_open_rate_text_always_has_two_decimals(opened: int, delivered: int, text: str) -> None:
    assert funnel.open_rate_text(opened, delivered) == text


@given(delivered=st.integers(0, 10**12), data=st.data())
def test_open_rate_text_is_always_a_percent_sign_and_two_decimals(
    delivered: int, data: st.DataObject
) -> None:
    opened = data.draw(st.integers(0, delivered))
    text = funnel.open_rate_text(opened, delivered)
    assert OPEN_RATE.match(text), text
    assert float(text[2:]) == pytest.approx(funnel.percent(opened, delivered), abs=0.005)


# ---- the funnel ----


def test_an_empty_funnel_has_all_three_platforms_at_zero() -> None:
    f = Funnel()
    assert f.platforms == {
        p: {"queued": 0, "accepted": 0, "failed": 0, "expired": 0}
        for p in ("ios", "android", "huawei")
    }
    assert as_json(f.summary()) == {
        "requested": 0,
        "resolved": 0,
        "excluded": {},
        "queued": 0,
        "scheduled": 0,
        "accepted": 0,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
        "pending": 0,
        "delivered": 0,
        "opened": 0,
    }
    assert as_json(f.rates()) == {"delivery_rate": 0.0, "open_rate": 0.0}


def test_the_funnel_sums_every_counter_into_its_total() -> None:
    f = funnel_of(
        [
            ("requested", 10),
            ("excluded:NoUserFound", 1),
            ("excluded:OptOut", 1),
            ("queued:ios", 3),
            ("queued:android", 4),
            ("queued:huawei", 1),
            ("accepted:ios", 2),
            ("accepted:android", 4),
            ("accepted:huawei", 1),
            ("failed:ios:Unregistered", 1),
            ("delivered", 5),
            ("opened", 2),
        ]
    )
    assert as_json(f.summary()) == {
        "requested": 10,
        "resolved": 9,
        "excluded": {"NoUserFound": 1, "OptOut": 1},
        "queued": 8,
        "scheduled": 0,
        "accepted": 7,
        "failed": 1,
        "cancelled": 0,
        "expired": 0,
        "pending": 0,
        "delivered": 5,
        "opened": 2,
    }
    assert as_json(f.rates()) == {"delivery_rate": 71.43, "open_rate": 40.0}


def test_the_same_counter_of_several_hours_adds_up() -> None:
    f = funnel_of([("accepted:ios", 2), ("accepted:ios", 3), ("requested", 1), ("requested", 4)])
    assert f.platforms["ios"]["accepted"] == 5
    assert f.requested == 5


def test_resolved_is_requested_minus_users_not_found_only() -> None:
    f = funnel_of([("requested", 10), ("excluded:NoUserFound", 3), ("excluded:OptOut", 2)])
    assert f.resolved == 7


def test_pending_is_queued_less_every_final_answer() -> None:
    f = funnel_of(
        [
            ("queued:ios", 10),
            ("queued:android", 5),
            ("accepted:ios", 4),
            ("failed:ios:BadDeviceToken", 1),
            ("expired:android", 2),
        ]
    )
    assert f.pending == 8


def test_failures_are_kept_per_platform_and_per_name() -> None:
    f = funnel_of(
        [
            ("failed:ios:Unregistered", 2),
            ("failed:android:NotRegistered", 1),
            ("failed:huawei:NotRegistered", 4),
        ]
    )
    assert {p: split["failed"] for p, split in f.platforms.items()} == {
        "ios": 2,
        "android": 1,
        "huawei": 4,
    }
    assert f.failed_by_name == {"Unregistered": 2, "NotRegistered": 5}
    assert as_json(f.summary())["failed"] == 7


def test_excluded_reasons_are_listed_in_name_order_and_only_when_they_occurred() -> None:
    f = funnel_of([("excluded:UserGloballyCapped", 1), ("excluded:OptOut", 2)])
    assert list(as_json(f.summary())["excluded"].items()) == [
        ("OptOut", 2),
        ("UserGloballyCapped", 1),
    ]


def test_counters_the_funnel_does_not_know_are_ignored() -> None:
    f = funnel_of([("resolved", 4), ("something:else", 9), ("requested", 1)])
    assert as_json(f.summary()) == {**as_json(Funnel().summary()), "requested": 1, "resolved": 1}


def test_delivery_rate_is_delivered_over_accepted_and_open_rate_opened_over_delivered() -> None:
    f = funnel_of([("accepted:android", 8), ("delivered", 6), ("opened", 3)])
    assert as_json(f.rates()) == {"delivery_rate": 75.0, "open_rate": 50.0}


# One platform's counts with no more final answers than sends queued.
SETTLED = st.builds(
    lambda accepted, failed, expired, still: {
        "queued": accepted + failed + expired + still,
        "accepted": accepted,
        "failed": failed,
        "expired": expired,
    },
    *(st.integers(0, 1000) for _ in range(4)),
)


@settings(max_examples=200)
@given(
    splits=st.fixed_dictionaries({p: SETTLED for p in ("ios", "android", "huawei")}),
    hours=st.integers(1, 4),
    data=st.data(),
)
def test_pending_is_never_negative_when_no_more_settle_than_were_queued(
    splits: dict[str, dict[str, int]], hours: int, data: st.DataObject
) -> None:
    rows: list[tuple[str, int]] = []
    for platform, split in splits.items():
        for kind, total in split.items():
            # Spread each total over a few hourly rows, in any order.
            cuts = sorted(
                data.draw(st.lists(st.integers(0, total), min_size=hours - 1, max_size=hours - 1))
            )
            parts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
            name = f"failed:{platform}:Unregistered" if kind == "failed" else f"{kind}:{platform}"
            rows.extend((name, n) for n in parts)
    rows = data.draw(st.permutations(rows))
    f = funnel_of(rows)
    assert f.pending >= 0
    assert f.pending == sum(
        s["queued"] - s["accepted"] - s["failed"] - s["expired"] for s in splits.values()
    )
    assert as_json(f.summary())["queued"] == sum(s["queued"] for s in splits.values())


# ---- the series ----


def test_series_has_one_point_per_hour_oldest_first() -> None:
    h = funnel.hour_of(T0)
    points = as_json(
        funnel.series([(h + 2, "opened", 1), (h, "requested", 3), (h + 1, "accepted:ios", 2)])
    )
    assert [p["hour"] for p in points] == [
        "2027-01-15T08:00:00Z",
        "2027-01-15T09:00:00Z",
        "2027-01-15T10:00:00Z",
    ]


def test_a_series_point_adds_the_platforms_and_names_of_one_kind() -> None:
    h = funnel.hour_of(T0)
    [point] = as_json(
        funnel.series(
            [
                (h, "requested", 10),
                (h, "queued:ios", 3),
                (h, "queued:android", 5),
                (h, "accepted:ios", 2),
                (h, "failed:ios:Unregistered", 1),
                (h, "failed:android:NotRegistered", 1),
                (h, "expired:huawei", 1),
                (h, "delivered", 4),
                (h, "opened", 1),
            ]
        )
    )
    assert point == {
        "hour": "2027-01-15T08:00:00Z",
        "requested": 10,
        "queued": 8,
        "accepted": 2,
        "failed": 2,
        "expired": 1,
        "delivered": 4,
        "opened": 1,
    }


def test_hours_with_only_exclusions_are_not_in_the_series() -> None:
    h = funnel.hour_of(T0)
    points = as_json(funnel.series([(h, "excluded:OptOut", 3), (h + 1, "requested", 1)]))
    assert [p["hour"] for p in points] == ["2027-01-15T09:00:00Z"]
    assert points[0]["requested"] == 1


def test_series_of_nothing_is_empty() -> None:
    assert as_json(funnel.series([])) == []


# ---- fail records ----


def test_fail_groups_are_ordered_by_count_then_name() -> None:
    groups = funnel.fail_groups(
        [
            ("Unregistered", "ios", 1),
            ("NotRegistered", "android", 3),
            ("BadDeviceToken", "ios", 1),
            ("InvalidRegistration", "huawei", 2),
            ("InvalidRegistration", "android", 1),
        ],
        {},
    )
    assert [(g.name, g.count) for g in groups] == [
        ("InvalidRegistration", 3),
        ("NotRegistered", 3),
        ("BadDeviceToken", 1),
        ("Unregistered", 1),
    ]


def test_a_fail_group_splits_its_count_by_platform_with_its_samples() -> None:
    [group] = funnel.fail_groups(
        [("NotRegistered", "huawei", 2), ("NotRegistered", "android", 1)],
        {"NotRegistered": ["t2", "t1"], "Other": ["x"]},
    )
    assert as_json(group.record()) == {
        "name": "NotRegistered",
        "count": 3,
        "platforms": {"android": 1, "huawei": 2},
        "sample_tokens": ["t2", "t1"],
    }


def test_a_fail_groups_platforms_are_in_name_order() -> None:
    [group] = funnel.fail_groups(
        [("NotRegistered", "huawei", 2), ("NotRegistered", "android", 1)], {}
    )
    assert list(group.platforms) == ["android", "huawei"]


def test_a_fail_group_without_samples_has_an_empty_list() -> None:
    [group] = funnel.fail_groups([("Unregistered", "ios", 1)], {})
    assert as_json(group.record())["sample_tokens"] == []
