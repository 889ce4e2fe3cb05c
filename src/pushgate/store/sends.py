"""Committing a targeted push: campaigns, frequency cap, delivery jobs, in one transaction."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence

import msgspec

from pushgate.limits import frequency_cap
from pushgate.payloads.build import BuiltPayloads
from pushgate.queue import sqlite as job_table
from pushgate.queue.base import NewJob
from pushgate.store.models import Partner
from pushgate.targeting.decide import Outcome
from pushgate.targeting.push import Push

REQUESTED = "requested"
QUEUED = "queued"
EXCLUDED_PREFIX = "excluded:"
_encode = msgspec.json.encode


def record_campaigns(
    conn: sqlite3.Connection, partner_id: int, pushes: Sequence[Push], now: float
) -> None:
    """A campaign is recorded on the first use of its camp_id; later sends keep its row."""
    conn.executemany(
        "INSERT OR IGNORE INTO campaigns (partner_id, camp_id, name, title, message, image_url,"
        " deep_links, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                partner_id,
                p.camp_id,
                p.camp_name,
                p.title,
                p.message,
                p.image_url,
                _encode({"android": p.android.deep_links, "ios": p.ios.deep_links}).decode(),
                now,
            )
            for p in pushes
        ],
    )


def count_outcomes(conn: sqlite3.Connection, partner_id: int, outcomes: Sequence[Outcome]) -> None:
    """Campaign funnel counters: users requested, queued, and excluded per reason.

    Additive upserts, so concurrent requests never read-modify-write a row.
    """
    counts: Counter[tuple[int, str]] = Counter()
    for o in outcomes:
        camp = o.push.camp_id
        counts[camp, REQUESTED] += 1
        if o.device is not None:
            counts[camp, QUEUED] += 1
        elif o.reason is not None:
            counts[camp, EXCLUDED_PREFIX + o.reason] += 1
    conn.executemany(
        "INSERT INTO campaign_counters (partner_id, camp_id, name, count) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (partner_id, camp_id, name) DO UPDATE SET count = count + excluded.count",
        [(partner_id, camp, name, n) for (camp, name), n in counts.items()],
    )


def commit_sends(
    conn: sqlite3.Connection,
    partner: Partner,
    pushes: Sequence[Push],
    built: Sequence[BuiltPayloads],
    outcomes: Sequence[Outcome],
    now: float,
) -> list[int]:
    """Apply the frequency cap and queue one job per remaining send.

    Returns the indexes of outcomes excluded by the cap. The caller commits.
    """
    record_campaigns(conn, partner.id, pushes, now)
    capped: list[int] = []
    jobs: list[NewJob] = []
    for i, o in enumerate(outcomes):
        if o.device is None or o.profile is None:
            continue
        if (
            o.wants_cap
            and partner.gfc_limit > 0
            and not frequency_cap.take(
                conn, partner.id, o.profile.id, partner.gfc_limit, partner.gfc_window, now
            )
        ):
            capped.append(i)
            continue
        payloads = built[o.push.index]
        jobs.append(
            NewJob(
                partner_id=partner.id,
                camp_id=o.push.camp_id,
                profile_id=o.profile.id,
                device_id=o.device.id,
                platform=o.device.platform,
                token=o.device.token,
                environment=o.device.environment,
                payload=payloads.bodies[o.device.platform],
                push_type=payloads.apns_push_type,
                priority=payloads.apns_priority,
                expires_at=now + o.push.ttl,
            )
        )
    job_table.enqueue(conn, jobs, now)
    return capped
