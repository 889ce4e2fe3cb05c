"""Campaign statistics in a real SQLite file: counters written with what they count, campaigns and
variants, app events, and the reads behind the report, the list and the Message Center
(docs/statistics.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from pushgate.delivery import outcome as outcomes
from pushgate.jobs import DONE, QUEUED, DeliveryOutcome, Job, NewJob, expired
from pushgate.payloads.build import build_all
from pushgate.queue import table as job_table
from pushgate.stats.events import AppEvent
from pushgate.stats.funnel import hour_of
from pushgate.stats.message_center import answer, parse_query
from pushgate.store import campaign_stats, deliveries, sends
from pushgate.store.campaign_stats import EventsRecorded
from pushgate.store.models import Partner
from tests.support.stats_builders import OTHER_PARTNER, PARTNER, as_json, make_push, open_db, sent

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR = 3600
LEASE = 30.0
W1, W2 = "worker-1", "worker-2"
CAMP = 7


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(tmp_path)
    yield c
    c.close()


def record_campaign(
    conn: sqlite3.Connection,
    camp_id: int = CAMP,
    at: float = NOW,
    partner: int = PARTNER,
    **fields: object,
) -> int:
    """The campaign's first use (or a later one); returns the variant of its content."""
    return sends.record_campaigns(conn, partner, [make_push(camp_id, **fields)], at)[0]


def queue_job(
    conn: sqlite3.Connection,
    user: int = 1,
    platform: str = "ios",
    camp_id: int = CAMP,
    variant_id: int = 0,
    at: float = NOW,
) -> None:
    job_table.enqueue(
        conn,
        [
            NewJob(
                partner_id=PARTNER,
                camp_id=camp_id,
                profile_id=user,
                device_id=user,
                platform=platform,
                token=f"token-{user}",
                environment="production",
                payload=b"{}",
                push_type="alert",
                priority=10,
                expires_at=at + 3600,
                variant_id=variant_id,
            )
        ],
        at,
    )


def claim(conn: sqlite3.Connection, worker: str = W1, at: float = NOW) -> Job:
    (job,) = job_table.claim(conn, worker, 1, LEASE, at)
    return job


def counters(
    conn: sqlite3.Connection, camp_id: int = CAMP, partner: int = PARTNER
) -> dict[str, int]:
    return dict(
        conn.execute(
            "SELECT name, sum(count) FROM campaign_stats WHERE partner_id = ? AND camp_id = ?"
            " GROUP BY name",
            (partner, camp_id),
        ).fetchall()
    )


def counter_hours(conn: sqlite3.Connection, name: str) -> dict[int, int]:
    return dict(
        conn.execute(
            "SELECT hour, count FROM campaign_stats WHERE camp_id = ? AND name = ?", (CAMP, name)
        ).fetchall()
    )


def inbox_rows(conn: sqlite3.Connection) -> list[tuple[int, int, int, int, str, float]]:
    return conn.execute(
        "SELECT profile_id, camp_id, variant_id, job_id, platform, created_at FROM inbox"
    ).fetchall()


OK = DeliveryOutcome(DONE)


# ---- counters written with the job's final state ----


def test_a_job_settled_done_counts_accepted_once_and_writes_one_inbox_row(
    conn: sqlite3.Connection,
) -> None:
    variant = record_campaign(conn)
    queue_job(conn, user=2, platform="android", variant_id=variant, at=NOW - 5)
    job = claim(conn)
    assert deliveries.record(conn, job, W1, OK, NOW)
    assert counters(conn) == {"accepted:android": 1}
    assert inbox_rows(conn) == [(2, CAMP, variant, job.id, "android", NOW - 5)]


def test_a_settled_job_counts_in_the_hour_of_the_providers_answer(
    conn: sqlite3.Connection,
) -> None:
    queue_job(conn, at=NOW - 2 * HOUR)
    job = claim(conn, at=NOW - 2 * HOUR)
    deliveries.record(conn, job, W1, OK, NOW + 60)
    assert counter_hours(conn, "accepted:ios") == {hour_of(NOW): 1}


def test_retried_job_is_not_counted(conn: sqlite3.Connection) -> None:
    queue_job(conn)
    job = claim(conn)
    retry = DeliveryOutcome(QUEUED, detail="ServiceUnavailable", retry_at=NOW + 10)
    assert deliveries.record(conn, job, W1, retry, NOW)
    assert counters(conn) == {}
    assert inbox_rows(conn) == []
    assert conn.execute("SELECT count(*) FROM fail_records").fetchone() == (0,)
    assert conn.execute("SELECT state FROM jobs").fetchone() == (QUEUED,)


def test_a_retried_job_is_counted_once_when_it_finally_succeeds(conn: sqlite3.Connection) -> None:
    queue_job(conn)
    first = claim(conn)
    retry = DeliveryOutcome(QUEUED, detail="503", retry_at=NOW + 10)
    deliveries.record(conn, first, W1, retry, NOW)
    second = claim(conn, at=NOW + 10)
    deliveries.record(conn, second, W1, OK, NOW + 11)
    assert counters(conn) == {"accepted:ios": 1}
    assert len(inbox_rows(conn)) == 1


def test_a_worker_that_lost_the_lease_counts_nothing(conn: sqlite3.Connection) -> None:
    queue_job(conn)
    job = claim(conn, W1)
    assert not deliveries.record(conn, job, W2, OK, NOW)
    assert counters(conn) == {}
    assert inbox_rows(conn) == []


def test_a_job_delivered_twice_after_its_lease_expired_is_counted_once(
    conn: sqlite3.Connection,
) -> None:
    queue_job(conn)
    first = claim(conn, W1, at=NOW)
    # W1 stalls past its lease; W2 takes the job over and delivers it as well.
    second = claim(conn, W2, at=NOW + LEASE + 1)
    assert second.id == first.id
    assert deliveries.record(conn, second, W2, OK, NOW + LEASE + 2)
    assert not deliveries.record(conn, first, W1, OK, NOW + LEASE + 3)
    assert counters(conn) == {"accepted:ios": 1}
    assert len(inbox_rows(conn)) == 1


def test_a_permanent_failure_counts_failed_by_platform_and_name(conn: sqlite3.Connection) -> None:
    queue_job(conn, user=3, platform="huawei")
    job = claim(conn)
    failure = outcomes.decide(job, "dead_token", "NotRegistered", now=NOW)
    assert deliveries.record(conn, job, W1, failure, NOW)
    assert counters(conn) == {"failed:huawei:NotRegistered": 1}
    assert inbox_rows(conn) == []
    assert conn.execute("SELECT reason, token FROM fail_records").fetchall() == [
        ("NotRegistered", "token-3")
    ]


def test_an_expired_job_counts_expired_by_platform(conn: sqlite3.Connection) -> None:
    queue_job(conn, platform="android")
    job = claim(conn)
    assert deliveries.record(conn, job, W1, expired("ttl"), NOW)
    assert counters(conn) == {"expired:android": 1}
    assert inbox_rows(conn) == []
    assert conn.execute("SELECT reason FROM fail_records").fetchall() == [("Expired",)]


def test_with_counting_off_nothing_is_counted_but_the_inbox_is_written(
    conn: sqlite3.Connection,
) -> None:
    queue_job(conn, user=1)
    queue_job(conn, user=2, platform="android")
    ok_job, failed_job = job_table.claim(conn, W1, 2, LEASE, NOW)
    assert deliveries.record(conn, ok_job, W1, OK, NOW, count_stats=False)
    failure = outcomes.decide(failed_job, "dead_token", "BadDeviceToken", now=NOW)
    assert deliveries.record(conn, failed_job, W1, failure, NOW, count_stats=False)
    assert counters(conn) == {}
    assert [row[0] for row in inbox_rows(conn)] == [1]


def test_settled_jobs_of_several_campaigns_count_for_their_own(conn: sqlite3.Connection) -> None:
    queue_job(conn, user=1, camp_id=7)
    queue_job(conn, user=2, camp_id=8, platform="android")
    for job in job_table.claim(conn, W1, 2, LEASE, NOW):
        deliveries.record(conn, job, W1, OK, NOW)
    assert counters(conn, 7) == {"accepted:ios": 1}
    assert counters(conn, 8) == {"accepted:android": 1}


def test_add_counts_adds_to_the_same_hour_and_keeps_hours_apart(conn: sqlite3.Connection) -> None:
    h = hour_of(NOW)
    campaign_stats.add_counts(conn, PARTNER, {(CAMP, "requested"): 2}, h)
    campaign_stats.add_counts(conn, PARTNER, {(CAMP, "requested"): 3}, h)
    campaign_stats.add_counts(conn, PARTNER, {(CAMP, "requested"): 1}, h + 1)
    campaign_stats.add_counts(conn, OTHER_PARTNER, {(CAMP, "requested"): 9}, h)
    assert conn.execute(
        "SELECT partner_id, hour, count FROM campaign_stats ORDER BY partner_id, hour"
    ).fetchall() == [(PARTNER, h, 5), (PARTNER, h + 1, 1), (OTHER_PARTNER, h, 9)]


# ---- campaigns and variants ----


def test_the_same_content_is_the_same_variant(conn: sqlite3.Connection) -> None:
    first = record_campaign(conn)
    again = record_campaign(conn, at=NOW + 60, identifiers={"INSIDER.uuid": "someone-else"})
    assert first == again
    assert conn.execute("SELECT count(*) FROM campaign_variants").fetchone() == (1,)


def test_different_content_of_the_same_campaign_is_a_new_variant(
    conn: sqlite3.Connection,
) -> None:
    first = record_campaign(conn, title="First")
    second = record_campaign(conn, at=NOW + 60, title="Second")
    assert first != second
    assert record_campaign(conn, at=NOW + 120, title="First") == first


def test_a_campaign_keeps_the_content_of_its_first_use(conn: sqlite3.Connection) -> None:
    record_campaign(conn, title="First", camp_name="Launch")
    record_campaign(conn, at=NOW + 60, title="Second", camp_name="Renamed")
    assert conn.execute(
        "SELECT name, title, created_at FROM campaigns WHERE camp_id = ?", (CAMP,)
    ).fetchall() == [("Launch", "First", NOW)]


def test_the_same_content_under_another_camp_id_is_another_variant(
    conn: sqlite3.Connection,
) -> None:
    assert record_campaign(conn, camp_id=7) != record_campaign(conn, camp_id=8)


def test_one_request_gets_a_variant_for_every_notification(conn: sqlite3.Connection) -> None:
    pushes = [
        make_push(7, index=0, title="A"),
        make_push(7, index=1, title="B"),
        make_push(7, index=2, title="A", identifiers={"INSIDER.uuid": "u"}),
        make_push(8, index=3, title="A"),
    ]
    variants = sends.record_campaigns(conn, PARTNER, pushes, NOW)
    assert set(variants) == {0, 1, 2, 3}
    assert variants[0] == variants[2]
    assert len({variants[0], variants[1], variants[3]}) == 3


def test_queued_jobs_carry_the_variant_of_their_notification(conn: sqlite3.Connection) -> None:
    partner = Partner(PARTNER, "p1", 10, 10, 0, 86400, (), frozenset({"ios", "android"}))
    pushes = [make_push(7, index=0, title="A"), make_push(7, index=1, title="B")]
    built = [build_all(p) for p in pushes]
    planned = [sent(pushes[0], 1, "ios"), sent(pushes[1], 2, "android")]
    assert sends.commit_sends(conn, partner, pushes, built, planned, NOW) == []
    variants = dict(
        conn.execute("SELECT title, id FROM campaign_variants WHERE camp_id = 7").fetchall()
    )
    assert conn.execute("SELECT profile_id, variant_id FROM jobs ORDER BY id").fetchall() == [
        (1, variants["A"]),
        (2, variants["B"]),
    ]


def test_a_known_variant_is_taken_without_reading_the_database(
    conn: sqlite3.Connection,
) -> None:
    push = make_push(7, title="A")
    found: dict[sends.VariantKey, int] = {}
    first = sends.record_campaigns(conn, PARTNER, [push], NOW, found=found)[0]
    assert list(found.values()) == [first]
    conn.execute("DELETE FROM campaign_variants")  # a read now would insert the variant again
    known = sends.KnownVariants()
    known.add(PARTNER, found)
    again = sends.record_campaigns(conn, PARTNER, [push], NOW + 60, known.of(PARTNER))
    assert again == {0: first}
    assert conn.execute("SELECT count(*) FROM campaign_variants").fetchone() == (0,)
    assert known.of(OTHER_PARTNER) == {}


def test_known_variants_start_over_past_their_limit() -> None:
    known = sends.KnownVariants()
    known.add(PARTNER, {(n, b"h"): n for n in range(known.LIMIT)})
    known.add(OTHER_PARTNER, {(1, b"h"): 5})
    assert known.of(PARTNER) == {}
    assert known.of(OTHER_PARTNER) == {(1, b"h"): 5}


# ---- app events ----


def delivered(camp_id: int = CAMP, at: float = NOW) -> AppEvent:
    return AppEvent("push_delivered", camp_id, at)


def session(camp_id: int = CAMP, at: float = NOW) -> AppEvent:
    return AppEvent("push_session", camp_id, at)


def test_a_receipt_counts_the_user_as_delivered(conn: sqlite3.Connection) -> None:
    record_campaign(conn)
    assert campaign_stats.record_events(conn, PARTNER, 1, [delivered()]) == EventsRecorded(1, 0, 0)
    assert counters(conn) == {"delivered": 1}


def test_the_same_event_of_the_same_user_counts_once(conn: sqlite3.Connection) -> None:
    record_campaign(conn)
    assert campaign_stats.record_events(conn, PARTNER, 1, [delivered(), delivered(at=NOW + 5)]) == (
        EventsRecorded(accepted=1, duplicates=1)
    )
    assert campaign_stats.record_events(conn, PARTNER, 1, [delivered()]) == EventsRecorded(
        duplicates=1
    )
    assert counters(conn) == {"delivered": 1}


def test_each_user_counts_for_themselves(conn: sqlite3.Connection) -> None:
    record_campaign(conn)
    for user in (1, 2, 3):
        campaign_stats.record_events(conn, PARTNER, user, [delivered()])
    assert counters(conn) == {"delivered": 3}


def test_a_session_counts_the_user_as_opened_and_delivered(conn: sqlite3.Connection) -> None:
    record_campaign(conn)
    opened = EventsRecorded(accepted=1, opened=(CAMP,))  # its webhook event is push.opened
    assert campaign_stats.record_events(conn, PARTNER, 1, [session()]) == opened
    assert counters(conn) == {"delivered": 1, "opened": 1}


def test_a_session_after_a_receipt_counts_delivered_only_once(conn: sqlite3.Connection) -> None:
    record_campaign(conn)
    campaign_stats.record_events(conn, PARTNER, 1, [delivered()])
    opened = EventsRecorded(accepted=1, opened=(CAMP,))  # its webhook event is push.opened
    assert campaign_stats.record_events(conn, PARTNER, 1, [session()]) == opened
    assert counters(conn) == {"delivered": 1, "opened": 1}


def test_a_receipt_after_a_session_is_a_duplicate(conn: sqlite3.Connection) -> None:
    record_campaign(conn)
    campaign_stats.record_events(conn, PARTNER, 1, [session()])
    assert campaign_stats.record_events(conn, PARTNER, 1, [delivered()]) == EventsRecorded(
        duplicates=1
    )
    assert counters(conn) == {"delivered": 1, "opened": 1}


def test_events_for_unknown_campaigns_are_reported_and_not_counted(
    conn: sqlite3.Connection,
) -> None:
    record_campaign(conn)
    recorded = campaign_stats.record_events(
        conn, PARTNER, 1, [delivered(99), session(99), delivered(CAMP), session(-1)]
    )
    assert recorded == EventsRecorded(accepted=1, duplicates=0, unknown_campaigns=3)
    assert counters(conn, 99) == {}
    assert conn.execute("SELECT count(*) FROM campaign_events").fetchone() == (1,)


def test_another_partners_campaign_is_unknown(conn: sqlite3.Connection) -> None:
    record_campaign(conn, partner=OTHER_PARTNER)
    assert campaign_stats.record_events(conn, PARTNER, 1, [delivered()]) == EventsRecorded(
        unknown_campaigns=1
    )
    assert counters(conn) == {}
    assert counters(conn, partner=OTHER_PARTNER) == {}


def test_events_count_in_the_hour_they_happened(conn: sqlite3.Connection) -> None:
    record_campaign(conn)
    campaign_stats.record_events(conn, PARTNER, 1, [delivered(at=NOW - 3 * HOUR + 59)])
    campaign_stats.record_events(conn, PARTNER, 2, [session(at=NOW + 1800)])
    assert counter_hours(conn, "delivered") == {hour_of(NOW) - 3: 1, hour_of(NOW): 1}
    assert counter_hours(conn, "opened") == {hour_of(NOW): 1}


# ---- reads: report ----


def deliver(conn: sqlite3.Connection, user: int, platform: str, at: float = NOW) -> Job:
    queue_job(conn, user=user, platform=platform, at=at)
    job = claim(conn, at=at)
    deliveries.record(conn, job, W1, OK, at)
    return job


def fail(conn: sqlite3.Connection, user: int, platform: str, reason: str, n: int) -> None:
    for i in range(n):
        queue_job(conn, user=user, platform=platform)
        job = claim(conn)
        # Each failed send carries its own token, so the samples can be told apart.
        job = msgspec.structs.replace(job, token=f"{reason}-{i}")
        deliveries.record(conn, job, W1, DeliveryOutcome("failed", reason), NOW)


def test_the_report_of_an_unknown_campaign_is_none(conn: sqlite3.Connection) -> None:
    record_campaign(conn, partner=OTHER_PARTNER)
    assert as_json(campaign_stats.campaign_report(conn, PARTNER, CAMP)) is None
    assert as_json(campaign_stats.campaign_report(conn, PARTNER, 12345)) is None


def test_the_report_reads_back_what_was_counted(conn: sqlite3.Connection) -> None:
    record_campaign(conn, camp_name="Launch", title="T", message="M")
    campaign_stats.add_counts(
        conn,
        PARTNER,
        {
            (CAMP, "requested"): 4,
            (CAMP, "excluded:OptOut"): 1,
            (CAMP, "queued:ios"): 2,
            (CAMP, "queued:android"): 1,
        },
        hour_of(NOW),
    )
    deliver(conn, 1, "ios")
    deliver(conn, 2, "android", at=NOW + HOUR)
    fail(conn, 1, "ios", "Unregistered", 1)
    campaign_stats.record_events(conn, PARTNER, 1, [session(at=NOW + 2 * HOUR)])
    report = as_json(campaign_stats.campaign_report(conn, PARTNER, CAMP))
    assert report is not None
    assert (report["camp_id"], report["name"], report["title"], report["message"]) == (
        CAMP,
        "Launch",
        "T",
        "M",
    )
    assert report["image_url"] == "https://img.example/i.jpg"
    assert report["created_at"] == "2027-01-15T08:00:00Z"
    assert report["funnel"] == {
        "requested": 4,
        "resolved": 4,
        "excluded": {"OptOut": 1},
        "queued": 3,
        "scheduled": 0,
        "accepted": 2,
        "failed": 1,
        "cancelled": 0,
        "expired": 0,
        "pending": 0,
        "delivered": 1,
        "opened": 1,
    }
    assert report["platforms"]["ios"] == {"queued": 2, "accepted": 1, "failed": 1, "expired": 0}
    assert [(p["hour"], p["accepted"], p["opened"]) for p in report["series"]] == [
        ("2027-01-15T08:00:00Z", 1, 0),
        ("2027-01-15T09:00:00Z", 1, 0),
        ("2027-01-15T10:00:00Z", 0, 1),
    ]
    assert report["fail_records"] == [
        {
            "name": "Unregistered",
            "count": 1,
            "platforms": {"ios": 1},
            "sample_tokens": ["Unregistered-0"],
        }
    ]


def test_fail_records_keep_the_five_newest_tokens_largest_group_first(
    conn: sqlite3.Connection,
) -> None:
    record_campaign(conn)
    fail(conn, 1, "ios", "Unregistered", 2)
    fail(conn, 2, "android", "NotRegistered", 7)
    fail(conn, 3, "huawei", "NotRegistered", 1)
    report = as_json(campaign_stats.campaign_report(conn, PARTNER, CAMP))
    assert report is not None
    assert report["fail_records"] == [
        {
            "name": "NotRegistered",
            "count": 8,
            "platforms": {"android": 7, "huawei": 1},
            "sample_tokens": [
                "NotRegistered-0",  # huawei's, the newest
                "NotRegistered-6",
                "NotRegistered-5",
                "NotRegistered-4",
                "NotRegistered-3",
            ],
        },
        {
            "name": "Unregistered",
            "count": 2,
            "platforms": {"ios": 2},
            "sample_tokens": ["Unregistered-1", "Unregistered-0"],
        },
    ]
    assert report["funnel"]["failed"] == 10


def test_the_report_leaves_out_other_partners_counters(conn: sqlite3.Connection) -> None:
    record_campaign(conn)
    record_campaign(conn, partner=OTHER_PARTNER)
    campaign_stats.add_counts(conn, OTHER_PARTNER, {(CAMP, "requested"): 9}, hour_of(NOW))
    report = as_json(campaign_stats.campaign_report(conn, PARTNER, CAMP))
    assert report is not None
    assert report["funnel"]["requested"] == 0
    assert report["series"] == []


# ---- reads: list and today's campaigns ----


def make_campaigns(conn: sqlite3.Connection, *created: float) -> None:
    for i, at in enumerate(created):
        record_campaign(conn, camp_id=100 + i, at=at)


def test_the_list_is_newest_first_with_the_total(conn: sqlite3.Connection) -> None:
    make_campaigns(conn, NOW, NOW + 20, NOW + 10)
    record_campaign(conn, camp_id=1, at=NOW + 30, partner=OTHER_PARTNER)
    total, found = campaign_stats.list_campaigns(conn, PARTNER, float("-inf"), float("inf"), 0, 50)
    assert total == 3
    assert [c.camp_id for c in found] == [101, 102, 100]


def test_the_list_is_paged(conn: sqlite3.Connection) -> None:
    make_campaigns(conn, *(NOW + i for i in range(5)))
    pages = [
        [c.camp_id for c in campaign_stats.list_campaigns(conn, PARTNER, 0, 1e12, offset, 2)[1]]
        for offset in (0, 2, 4, 6)
    ]
    assert pages == [[104, 103], [102, 101], [100], []]
    assert campaign_stats.list_campaigns(conn, PARTNER, 0, 1e12, 4, 2)[0] == 5


def test_the_list_range_includes_its_start_and_excludes_its_end(conn: sqlite3.Connection) -> None:
    make_campaigns(conn, NOW - 1, NOW, NOW + 10, NOW + 20)
    total, found = campaign_stats.list_campaigns(conn, PARTNER, NOW, NOW + 20, 0, 50)
    assert total == 2
    assert [c.camp_id for c in found] == [102, 101]


def test_listed_campaigns_carry_their_funnels(conn: sqlite3.Connection) -> None:
    make_campaigns(conn, NOW, NOW + 1)
    campaign_stats.add_counts(
        conn, PARTNER, {(100, "requested"): 3, (101, "opened"): 1}, hour_of(NOW)
    )
    campaign_stats.add_counts(conn, PARTNER, {(100, "requested"): 2}, hour_of(NOW) + 5)
    _, found = campaign_stats.list_campaigns(conn, PARTNER, 0, 1e12, 0, 50)
    by_id = {c.camp_id: c for c in found}
    assert by_id[100].funnel.requested == 5
    assert by_id[101].funnel.opened == 1
    assert by_id[100].deep_links == {"android": {}, "ios": {}}
    assert by_id[100].created_at == NOW


def test_campaigns_since_lists_those_first_used_from_then_oldest_first(
    conn: sqlite3.Connection,
) -> None:
    make_campaigns(conn, NOW - 1, NOW + 20, NOW)
    record_campaign(conn, camp_id=1, at=NOW, partner=OTHER_PARTNER)
    assert [c.camp_id for c in campaign_stats.campaigns_since(conn, PARTNER, NOW)] == [102, 101]


def test_a_later_use_does_not_move_a_campaign_into_today(conn: sqlite3.Connection) -> None:
    record_campaign(conn, at=NOW - 86400)
    record_campaign(conn, at=NOW + 5)
    assert campaign_stats.campaigns_since(conn, PARTNER, NOW) == []


# ---- reads: the Message Center inbox ----


def test_the_inbox_lists_accepted_pushes_newest_first(conn: sqlite3.Connection) -> None:
    variant = record_campaign(conn)
    for at in (NOW, NOW + 20, NOW + 10):
        queue_job(conn, user=1, variant_id=variant, at=at)
        deliveries.record(conn, claim(conn, at=at), W1, OK, at + 1)
    pushes = campaign_stats.inbox(conn, PARTNER, 1, 0, 1e12, 100)
    assert [p.created_at for p in pushes] == [NOW + 20, NOW + 10, NOW]


def test_the_inbox_holds_only_what_the_provider_accepted_for_that_user(
    conn: sqlite3.Connection,
) -> None:
    variant = record_campaign(conn)
    queue_job(conn, user=1, variant_id=variant)
    deliveries.record(conn, claim(conn), W1, expired(), NOW)
    queue_job(conn, user=2, variant_id=variant)
    deliveries.record(conn, claim(conn), W1, OK, NOW)
    assert campaign_stats.inbox(conn, PARTNER, 1, 0, 1e12, 100) == []
    assert [p.camp_id for p in campaign_stats.inbox(conn, PARTNER, 2, 0, 1e12, 100)] == [CAMP]
    assert campaign_stats.inbox(conn, OTHER_PARTNER, 2, 0, 1e12, 100) == []


def test_the_inbox_range_is_inclusive_and_limited(conn: sqlite3.Connection) -> None:
    variant = record_campaign(conn)
    for i in range(5):
        queue_job(conn, user=1, variant_id=variant, at=NOW + 10 * i)
        deliveries.record(conn, claim(conn, at=NOW + 10 * i), W1, OK, NOW + 10 * i)
    in_range = campaign_stats.inbox(conn, PARTNER, 1, NOW + 10, NOW + 30, 100)
    assert [p.created_at for p in in_range] == [NOW + 30, NOW + 20, NOW + 10]
    assert [p.created_at for p in campaign_stats.inbox(conn, PARTNER, 1, 0, 1e12, 2)] == [
        NOW + 40,
        NOW + 30,
    ]


def test_the_inbox_shows_the_content_of_the_variant_that_was_sent(
    conn: sqlite3.Connection,
) -> None:
    record_campaign(conn, title="First", image_url="https://img/1.png")
    later = record_campaign(
        conn,
        at=NOW + 5,
        title="Second",
        message="Later",
        image_url="",
        ios={"deep_link": {"Screen": "Sale"}},
        android={"deep_link": {"Page": "Sale"}},
    )
    queue_job(conn, user=1, platform="ios", variant_id=later, at=NOW + 5)
    deliveries.record(conn, claim(conn, at=NOW + 5), W1, OK, NOW + 6)
    [push] = campaign_stats.inbox(conn, PARTNER, 1, 0, 1e12, 100)
    assert (push.variant_id, push.title, push.message, push.image_url) == (
        later,
        "Second",
        "Later",
        "",
    )
    assert as_json(answer([push])) == [
        {
            "camp_id": CAMP,
            "camp_type": "Single Push",
            "created_at": "2027-01-15T08:00:05Z",
            "deep_links": {"Screen": "Sale"},
            "message": "Later",
            "title": "Second",
            "variant_id": later,
        }
    ]


def test_a_job_without_a_variant_shows_the_campaigns_content(conn: sqlite3.Connection) -> None:
    record_campaign(conn, title="Campaign title", android={"deep_link": {"Page": "Home"}})
    queue_job(conn, user=2, platform="android", variant_id=0)
    deliveries.record(conn, claim(conn), W1, OK, NOW)
    [push] = campaign_stats.inbox(conn, PARTNER, 2, 0, 1e12, 100)
    assert (push.variant_id, push.title) == (0, "Campaign title")
    assert as_json(answer([push]))[0]["deep_links"] == {"Page": "Home"}


def test_a_push_is_listed_by_an_end_date_equal_to_the_second_it_shows(
    conn: sqlite3.Connection,
) -> None:
    variant = record_campaign(conn)
    queue_job(conn, user=1, variant_id=variant, at=NOW + 0.6)
    deliveries.record(conn, claim(conn, at=NOW + 0.6), W1, OK, NOW + 0.7)
    query = parse_query({"identifiers": {"Uuid": "u"}}, NOW + 0.9)  # end_date defaults to now
    [shown] = as_json(answer(campaign_stats.inbox(conn, PARTNER, 1, 0, 1e12, 100)))
    assert shown["created_at"] == "2027-01-15T08:00:00Z"
    assert len(campaign_stats.inbox(conn, PARTNER, 1, query.start, query.end, query.limit)) == 1
