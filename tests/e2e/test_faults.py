"""Transient provider failures: retried until accepted, exactly once, within the TTL; an outage
longer than the TTL drops the push as `Expired` and nothing arrives late.

providers.md, "Which failures change a device": "Transient: 429, 500, 503, connection loss: retry
with backoff, honouring `Retry-After`, until the notification's TTL runs out." contract.md: "A
notification not accepted by its provider within its TTL is dropped and recorded as `Expired`."

Both faults (20% 503 and 5% 429, Retry-After 1 s) are active at once on every platform (429
only on APNs and HMS: FCM's 429 is QUOTA_EXCEEDED, which pauses the whole credential for at
least a minute, proven on its own below).

Connection faults (contract.md, "Additions (revised)"): a GOAWAY leaves later streams unprocessed,
which are sent again and arrive once; a dropped connection cuts off a push the emulator had
already accepted, which is retried and so arrives twice: the only duplicates allowed.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.support.emulated import (
    PLATFORMS,
    Control,
    device_token,
    fail_records,
    jobs,
    notification,
    push_all,
    received_at,
    rows,
    wait_for,
    wait_jobs_final,
)
from tests.support.server import Partner
from tests.support.stats_api import wait_campaign_settled

RETRY_AFTER = 1


def register(partner: Partner, per_platform: int, tag: str) -> tuple[list[str], list[str]]:
    """`per_platform` new users on each platform; returns their uuids and tokens."""
    uuids: list[str] = []
    tokens: list[str] = []
    for n in range(per_platform):
        for platform in PLATFORMS:
            token = device_token(platform)
            uuid = f"{tag}-{platform}-{n}-{token[-6:]}"
            partner.session({"uuid": uuid}, platform, token)
            uuids.append(uuid)
            tokens.append(token)
    return uuids, tokens


def test_every_push_is_delivered_exactly_once_within_its_ttl_despite_503_and_429(
    partner: Partner, emulator: Control
) -> None:
    ttl = 120
    uuids, tokens = register(partner, 50, "faults")
    for platform in PLATFORMS:
        emulator.fault(platform, status=503, rate=0.20, retry_after=RETRY_AFTER)
        if platform != "android":
            emulator.fault(platform, status=429, rate=0.05, retry_after=RETRY_AFTER)
    started = time.monotonic()
    answered = push_all(partner, [notification(u, camp_id=503, ttl=ttl) for u in uuids])
    assert sorted(answered) == sorted(tokens)
    wait_jobs_final(partner, len(tokens), timeout=60, tokens=tokens)
    emulator.clear_faults()
    assert time.monotonic() - started < 60
    assert len(set(tokens)) == 150

    settled = jobs(partner, tokens)
    assert Counter(j["state"] for j in settled) == {"done": 150}
    counts = Counter(str(d["token"]) for d in emulator.deliveries())
    assert {t: counts[t] for t in tokens if counts[t] != 1} == {}, "delivered not exactly once"
    by_token = {str(d["token"]): d for d in emulator.deliveries() if d["token"] in set(tokens)}
    for job in settled:
        arrived = received_at(by_token[job["token"]])
        assert arrived <= job["created_at"] + ttl, job
        if job["attempts"] > 1:  # Retry-After: 1 was honoured
            assert arrived >= job["created_at"] + RETRY_AFTER - 0.05, (job, arrived)

    # The faults really hit every platform: about a quarter of first tries failed.
    retried = Counter(j["platform"] for j in settled if j["attempts"] > 1)
    for platform in PLATFORMS:
        assert retried[platform] >= 5, dict(retried)
    assert fail_records(partner, tokens) == []


def test_fcm_quota_exceeded_holds_every_android_push_of_the_credential_for_a_minute(
    partner: Partner, emulator: Control
) -> None:
    """providers.md: QUOTA_EXCEEDED is the project's quota; wait at least 60 s and slow the
    credential's whole sending, not only the one message."""
    tokens = []
    for n in range(10):
        token = device_token("android")
        uuid = f"quota-{n}-{token[-6:]}"
        partner.session({"uuid": uuid}, "android", token)
        tokens.append(token)
    emulator.fault("android", status=429, rate=1.0, retry_after=RETRY_AFTER)
    pushed = time.time()
    answered = push_all(
        partner, [notification(f"quota-{n}-{t[-6:]}", ttl=300) for n, t in enumerate(tokens)]
    )
    assert sorted(answered) == sorted(tokens)

    def all_put_back() -> list[dict[str, Any]] | None:
        found = jobs(partner, tokens)
        return found if all(j["attempts"] >= 1 and j["state"] == "queued" for j in found) else None

    assert wait_for(all_put_back, 10, 0.1) is not None
    emulator.clear_faults()
    # The provider would accept now; a push to another device of the same credential still
    # waits out the minute, without being sent.
    late = device_token("android")
    partner.session({"uuid": f"quota-late-{late[-6:]}"}, "android", late)
    assert push_all(partner, [notification(f"quota-late-{late[-6:]}", ttl=300)]) == [late]
    tokens.append(late)
    assert wait_for(all_put_back, 10, 0.1) is not None
    assert [d for d in emulator.deliveries(platform="android") if d["token"] in tokens] == []
    due = rows(
        partner.server,
        f"SELECT due_at FROM jobs WHERE token IN ({','.join('?' * len(tokens))})",
        *tokens,
    )
    assert min(row["due_at"] for row in due) >= pushed + 60


@pytest.fixture
def outage(partner: Partner, emulator: Control) -> dict[str, Any]:
    """Every platform answers every send 503 (Retry-After: 1); six pushes with ttl 3 are
    answered; the outage ends once their TTL is over."""
    uuids, tokens = register(partner, 2, "outage")
    for platform in PLATFORMS:
        emulator.fault(platform, status=503, rate=1.0, retry_after=RETRY_AFTER)
    pushed_at = time.time()
    push_all(partner, [notification(u, camp_id=9, ttl=3) for u in uuids])
    time.sleep(max(0.0, pushed_at + 3.2 - time.time()))
    emulator.clear_faults()
    return {"tokens": tokens, "pushed_at": pushed_at}


def test_job_expires_after_ttl_during_an_outage(partner: Partner, outage: dict[str, Any]) -> None:
    tokens = outage["tokens"]

    settled = wait_jobs_final(partner, len(tokens), timeout=5, tokens=tokens)

    assert Counter(j["state"] for j in settled) == {"expired": len(tokens)}
    for job in settled:
        assert job["attempts"] >= 1, job
        assert job["finished_at"] <= job["expires_at"] + 0.5, job  # dropped when its TTL ran out
    records = fail_records(partner, tokens)
    assert sorted(r["token"] for r in records) == sorted(tokens)
    assert {r["reason"] for r in records} == {"Expired"}
    assert sorted(r["job_id"] for r in records) == sorted(j["id"] for j in settled)


def test_expired_push_is_not_delivered_after_the_outage_ends(
    partner: Partner, emulator: Control, outage: dict[str, Any]
) -> None:
    tokens = set(outage["tokens"])

    late = wait_for(
        lambda: [d for d in emulator.deliveries() if d["token"] in tokens],
        timeout=3.0,
        interval=0.2,
    )

    assert late == []
    assert {j["state"] for j in jobs(partner, tokens)} == {"expired"}


def applied(emulator: Control, kind: str) -> Counter[str]:
    """How many requests the faults of that kind have hit, per platform."""
    return Counter(
        {f["platform"]: int(f["applied"]) for f in emulator.faults() if f["kind"] == kind}
    )


def assert_campaign_all_done(partner: Partner, camp_id: int, count: int) -> None:
    funnel = wait_campaign_settled(partner, camp_id)["funnel"]
    assert (funnel["queued"], funnel["accepted"]) == (count, count), funnel
    assert (funnel["failed"], funnel["expired"], funnel["pending"]) == (0, 0, 0), funnel


def test_with_goaway_faults_every_push_is_delivered_exactly_once(
    partner: Partner, emulator: Control
) -> None:
    uuids, tokens = register(partner, 30, "goaway")
    for platform in PLATFORMS:
        emulator.fault(platform, rate=0.2, kind="goaway")

    push_all(partner, [notification(u, camp_id=601, ttl=120) for u in uuids])
    settled = wait_jobs_final(partner, len(tokens), timeout=60, tokens=tokens)
    goaways = applied(emulator, "goaway")
    emulator.clear_faults()

    assert all(goaways[p] >= 1 for p in PLATFORMS), goaways
    assert Counter(j["state"] for j in settled) == {"done": len(tokens)}
    counts = emulator.delivered_tokens()
    assert {t: counts[t] for t in tokens if counts[t] != 1} == {}, "delivered not exactly once"
    assert_campaign_all_done(partner, 601, len(tokens))
    assert fail_records(partner, tokens) == []


def test_with_drop_faults_no_push_is_lost_and_only_those_cut_off_arrive_twice(
    partner: Partner, emulator: Control
) -> None:
    uuids, tokens = register(partner, 30, "drop")
    platform_of = dict(zip(tokens, PLATFORMS * 30, strict=True))
    for platform in PLATFORMS:
        emulator.fault(platform, rate=0.1, kind="drop")

    push_all(partner, [notification(u, camp_id=602, ttl=120) for u in uuids])
    settled = wait_jobs_final(partner, len(tokens), timeout=60, tokens=tokens)
    drops = applied(emulator, "drop")
    emulator.clear_faults()

    assert all(drops[p] >= 1 for p in PLATFORMS), drops
    assert Counter(j["state"] for j in settled) == {"done": len(tokens)}
    counts = emulator.delivered_tokens()
    assert {t for t in tokens if counts[t] == 0} == set(), "a push was lost"
    # The emulator accepts a push, then drops the connection instead of answering: only such a
    # push is sent again after being delivered, so each drop adds at most one delivery.
    extra = Counter({p: 0 for p in PLATFORMS})
    for token in tokens:
        extra[platform_of[token]] += counts[token] - 1
    assert all(extra[p] <= drops[p] for p in PLATFORMS), (dict(extra), dict(drops))
    assert sum(1 for t in tokens if counts[t] > 1) <= sum(drops.values())
    assert_campaign_all_done(partner, 602, len(tokens))
    assert fail_records(partner, tokens) == []
