"""Campaign statistics in SQLite: counter writes inside the callers' transactions, and the reads
behind get_statistics, the campaign report and list, and the Message Center."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from pushgate.jobs import DONE, Job
from pushgate.stats import campaign as campaign_json
from pushgate.stats import funnel
from pushgate.stats.campaign import Campaign
from pushgate.stats.events import AppEvent
from pushgate.stats.funnel import CountKey, Funnel
from pushgate.stats.message_center import SentPush
from pushgate.store.db import Db, counter_shard, deferred, insert_rows
from pushgate.wire.stats import CampaignReport

SAMPLE_TOKENS = 5


StatKey = tuple[int, int, str, int]  # (partner_id, camp_id, name, hour)


def add_counts(conn: Db, partner_id: int, counts: Mapping[CountKey, int], hour: int) -> None:
    """Inside a transaction of the executors (`db.deferring`), the counts are summed and
    written at its end, so a batch of units that all count the same campaign costs one
    upsert per counter rather than one per unit; elsewhere, at once."""
    collected = deferred(conn, _write, Counter[StatKey])
    if collected is None:
        _write(conn, {(partner_id, camp, name, hour): n for (camp, name), n in counts.items()})
        return
    for (camp, name), n in counts.items():
        collected[partner_id, camp, name, hour] += n


def _write(conn: Db, counts: Mapping[StatKey, int]) -> None:
    """Additive upserts, so concurrent writers never read-modify-write a counter, into the
    connection's own shard of each counter (readers sum the shards), so concurrent PostgreSQL
    transactions do not queue on one hot row until each commits. Sorted, so that transactions
    that do share a shard lock its rows in one order (no deadlock)."""
    if not counts:
        return
    shard = counter_shard(conn)
    insert_rows(
        conn,
        "INSERT INTO campaign_stats (partner_id, camp_id, name, hour, shard, count)",
        [(*key, shard, n) for key, n in sorted(counts.items())],
        " ON CONFLICT (partner_id, camp_id, name, hour, shard)"
        " DO UPDATE SET count = campaign_stats.count + excluded.count",
    )


_INBOX_ROW = "(?, ?, ?, ?, ?, ?, ?)"
_INBOX_CHUNK = 500  # rows per statement: 3,500 parameters, under SQLite's limit


def record_settled(
    conn: Db, job: Job, state: str, reason: str | None, now: float, count: bool
) -> None:
    """A job moved on; only its lease holder can settle it, so a final state is seen once."""
    record_settled_many(conn, [(job, state, reason)], now, count)


def record_settled_many(
    conn: Db, settled: Sequence[tuple[Job, str, str | None]], now: float, count: bool
) -> None:
    """Jobs moved on (each by its lease holder, so a final state is seen once): their Message
    Center entries and their funnel counters, summed per counter before writing."""
    accepted = [job for job, state, _ in settled if state == DONE]
    for start in range(0, len(accepted), _INBOX_CHUNK):
        chunk = accepted[start : start + _INBOX_CHUNK]
        # Not for a profile erased while its push was on the way (store/erasure.py).
        conn.execute(
            "INSERT INTO inbox (partner_id, profile_id, camp_id, variant_id, platform, job_id,"
            " created_at) SELECT v.* FROM (VALUES " + ", ".join([_INBOX_ROW] * len(chunk)) + ")"
            " AS v WHERE EXISTS (SELECT 1 FROM profiles WHERE id = v.column2)"
            " ON CONFLICT DO NOTHING",
            [
                value
                for job in chunk
                for value in (
                    job.partner_id,
                    job.profile_id,
                    job.camp_id,
                    job.variant_id,
                    job.platform,
                    job.id,
                    job.created_at,
                )
            ],
        )
    if not count:
        return
    hour = funnel.hour_of(now)
    counts: Counter[StatKey] = Counter()
    for job, state, reason in settled:
        name = funnel.settled_counter(state, job.platform, reason)
        if name is not None:
            counts[job.partner_id, job.camp_id, name, hour] += 1
    add_keyed_counts(conn, counts)


def add_keyed_counts(conn: Db, counts: Mapping[StatKey, int]) -> None:
    """Counts already keyed by partner, campaign, counter and hour (see `add_counts`)."""
    collected = deferred(conn, _write, Counter[StatKey])
    if collected is None:
        _write(conn, counts)
        return
    collected.update(counts)


@dataclass(frozen=True)
class EventsRecorded:
    accepted: int = 0
    duplicates: int = 0
    unknown_campaigns: int = 0
    opened: tuple[int, ...] = ()  # the campaigns whose open was counted for the first time


def record_events(
    conn: Db, partner_id: int, profile_id: int, events: Sequence[AppEvent]
) -> EventsRecorded:
    """Each (campaign, user, event) counts once, in the hour the app says it happened."""
    known: dict[int, bool] = {}
    accepted = duplicates = unknown = 0
    opened: list[int] = []
    for event in events:
        if event.camp_id not in known:
            known[event.camp_id] = (
                conn.execute(
                    "SELECT 1 FROM campaigns WHERE partner_id = ? AND camp_id = ?",
                    (partner_id, event.camp_id),
                ).fetchone()
                is not None
            )
        if not known[event.camp_id]:
            unknown += 1
            continue
        fresh = 0
        for name in funnel.EVENT_COUNTS[event.name]:
            inserted = conn.execute(
                "INSERT INTO campaign_events (partner_id, camp_id, profile_id, event, at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (partner_id, event.camp_id, profile_id, name, event.at),
            ).rowcount
            if inserted:
                fresh += 1
                add_counts(conn, partner_id, {(event.camp_id, name): 1}, funnel.hour_of(event.at))
                if name == funnel.OPENED:
                    opened.append(event.camp_id)
        if fresh:
            accepted += 1
        else:
            duplicates += 1
    return EventsRecorded(accepted, duplicates, unknown, tuple(opened))


# ---- reads ----

_CAMPAIGN_COLUMNS = "camp_id, name, title, message, image_url, deep_links, created_at"


def _funnels(conn: Db, partner_id: int, camp_ids: Sequence[int], now: float) -> dict[int, Funnel]:
    funnels = {camp: Funnel() for camp in camp_ids}
    for start in range(0, len(camp_ids), 500):  # SQLite's bound-parameter limit
        chunk = camp_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for camp, name, total in conn.execute(
            "SELECT camp_id, name, sum(count) FROM campaign_stats"
            f" WHERE partner_id = ? AND camp_id IN ({marks}) GROUP BY camp_id, name",
            (partner_id, *chunk),
        ):
            funnels[camp].add(name, int(total))
        # Through the partial index of jobs waiting for their time (the schema's
        # jobs_scheduled: its condition is repeated here so that the planner may use it).
        for camp, waiting in conn.execute(
            "SELECT camp_id, count(*) FROM jobs"
            f" WHERE partner_id = ? AND camp_id IN ({marks}) AND state = 'queued'"
            " AND attempts = 0 AND due_at > created_at AND due_at > ? GROUP BY camp_id",
            (partner_id, *chunk, now),
        ):
            funnels[int(camp)].scheduled = int(waiting)
    return funnels


def _campaigns(conn: Db, partner_id: int, rows: Sequence[tuple[Any, ...]]) -> list[Campaign]:
    funnels = _funnels(conn, partner_id, [int(r[0]) for r in rows], time.time())
    return [
        Campaign(
            int(camp),
            name,
            title,
            message,
            image_url,
            msgspec.json.decode(deep_links),
            float(created),
            funnels[int(camp)],
        )
        for camp, name, title, message, image_url, deep_links, created in rows
    ]


def campaigns_since(conn: Db, partner_id: int, since: float) -> list[Campaign]:
    rows = conn.execute(
        f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE partner_id = ? AND created_at >= ?"
        " ORDER BY created_at, camp_id",
        (partner_id, since),
    ).fetchall()
    return _campaigns(conn, partner_id, rows)


def list_campaigns(
    conn: Db,
    partner_id: int,
    start: float,
    end: float,
    offset: int,
    limit: int,
) -> tuple[int, list[Campaign]]:
    """Campaigns first used in [start, end), newest first, and how many there are in all."""
    where = "WHERE partner_id = ? AND created_at >= ? AND created_at < ?"
    total = int(
        conn.execute(
            f"SELECT count(*) FROM campaigns {where}", (partner_id, start, end)
        ).fetchone()[0]
    )
    rows = conn.execute(
        f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns {where}"
        " ORDER BY created_at DESC, camp_id DESC LIMIT ? OFFSET ?",
        (partner_id, start, end, limit, offset),
    ).fetchall()
    return total, _campaigns(conn, partner_id, rows)


def campaign_report(conn: Db, partner_id: int, camp_id: int) -> CampaignReport | None:
    row = conn.execute(
        f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE partner_id = ? AND camp_id = ?",
        (partner_id, camp_id),
    ).fetchone()
    if row is None:
        return None
    (campaign,) = _campaigns(conn, partner_id, [row])
    hours = conn.execute(
        "SELECT hour, name, CAST(sum(count) AS BIGINT) FROM campaign_stats"
        " WHERE partner_id = ? AND camp_id = ?"
        " GROUP BY hour, name",
        (partner_id, camp_id),
    ).fetchall()
    fails = conn.execute(
        "SELECT reason, platform, count(*) FROM fail_records WHERE partner_id = ? AND camp_id = ?"
        " GROUP BY reason, platform",
        (partner_id, camp_id),
    ).fetchall()
    samples: dict[str, list[str]] = {}
    for reason, token in conn.execute(
        "SELECT reason, token FROM (SELECT reason, token, row_number() OVER"
        " (PARTITION BY reason ORDER BY id DESC) AS n FROM fail_records"
        " WHERE partner_id = ? AND camp_id = ? AND token != '') AS newest"  # '': an erased user's
        " WHERE n <= ? ORDER BY reason, n",
        (partner_id, camp_id, SAMPLE_TOKENS),
    ):
        samples.setdefault(reason, []).append(token)
    return campaign_json.report(campaign, hours, fails, samples)


def inbox(
    conn: Db,
    partner_id: int,
    profile_id: int,
    start: float,
    end: float,
    limit: int,
) -> list[SentPush]:
    """What providers accepted for one user, newest first."""
    rows = conn.execute(
        "SELECT i.camp_id, i.variant_id, i.platform, i.created_at,"
        " COALESCE(v.title, c.title, ''), COALESCE(v.message, c.message, ''),"
        " COALESCE(v.image_url, c.image_url, ''), COALESCE(v.deep_links, c.deep_links, '{}')"
        " FROM inbox i LEFT JOIN campaign_variants v ON v.id = i.variant_id"
        " LEFT JOIN campaigns c ON c.partner_id = i.partner_id AND c.camp_id = i.camp_id"
        " WHERE i.profile_id = ? AND i.partner_id = ? AND i.created_at >= ? AND i.created_at < ?"
        " ORDER BY i.created_at DESC, i.id DESC LIMIT ?",
        # Dates are whole seconds, as the answer shows them: end_date includes its whole second.
        (profile_id, partner_id, start, end + 1, limit),
    ).fetchall()
    return [
        SentPush(
            int(camp),
            int(variant),
            platform,
            float(created),
            title,
            message,
            image,
            msgspec.json.decode(links),
        )
        for camp, variant, platform, created, title, message, image, links in rows
    ]
