"""Recording delivery attempts: job state, fail record, token and credential hygiene, at once.

A worker records its finished attempts in batches, one transaction each (`record_many`), so that
the cost of a transaction, and of each counter's upsert, is shared by every job in it."""

from __future__ import annotations

from collections.abc import Sequence

from pushgate.jobs import Attempt, DeliveryOutcome, Job
from pushgate.queue import table as job_table
from pushgate.store import campaign_stats, cancellation, credentials, webhooks
from pushgate.store.db import Db

_LOOKUP_CHUNK = 500  # ids per IN list, under SQLite's parameter limit


def record(
    conn: Db,
    job: Job,
    worker: str,
    outcome: DeliveryOutcome,
    now: float,
    count_stats: bool = True,
) -> bool:
    """Apply the outcome if this worker still holds the job's lease; False if it lost it
    (another worker has the job now, and will record its own outcome)."""
    return record_many(conn, worker, [(job, outcome)], now, count_stats)[0]


def record_many(
    conn: Db,
    worker: str,
    attempts: Sequence[Attempt],
    now: float,
    count_stats: bool = True,
) -> list[bool]:
    """Apply each outcome whose job this worker still holds the lease of, in the caller's
    transaction; per attempt, whether it was applied (False: the lease ran out and another
    worker has the job now, and will record its own outcome)."""
    attempts = cancellation.cancelled_retries(conn, attempts)
    # A job twice in one batch (claimed again by the same worker after its lease ran out): the
    # first outcome is applied and the second refused, as recording them one by one would.
    first: dict[int, int] = {}
    for index, (job, _) in enumerate(attempts):
        first.setdefault(job.id, index)
    moved = job_table.settle_many(
        conn,
        worker,
        [
            (job.id, outcome.state, outcome.reason or outcome.detail, outcome.retry_at)
            for index, (job, outcome) in enumerate(attempts)
            if first[job.id] == index
        ],
        now,
    )
    applied = [job.id in moved and first[job.id] == i for i, (job, _) in enumerate(attempts)]
    settled = [attempt for attempt, ok in zip(attempts, applied, strict=True) if ok]
    if not settled:
        return applied
    campaign_stats.record_settled_many(
        conn, [(job, outcome.state, outcome.reason) for job, outcome in settled], now, count_stats
    )
    failed = [(job, outcome) for job, outcome in settled if outcome.reason is not None]
    if failed:
        _fail_records(conn, failed, now)
    for job, outcome in settled:
        if outcome.device_action is not None or outcome.device_environment is not None:
            _device(conn, job, outcome)
    invalid: dict[tuple[int, str], str | None] = {}
    for job, outcome in settled:
        if outcome.credential_invalid:
            invalid.setdefault((job.partner_id, job.platform), outcome.detail)
    for (partner_id, platform), detail in sorted(invalid.items()):
        credentials.mark_invalid(conn, partner_id, platform, detail)
    webhooks.delivery_events(conn, settled, now)
    return applied


def _fail_records(conn: Db, failed: Sequence[Attempt], now: float) -> None:
    # A profile erased while its push was on the way leaves only the reason behind.
    wanted = sorted({job.profile_id for job, _ in failed})
    named: set[int] = set()
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        named.update(
            int(row[0])
            for row in conn.execute(f"SELECT id FROM profiles WHERE id IN ({marks})", chunk)
        )
    conn.executemany(
        "INSERT INTO fail_records (partner_id, camp_id, job_id, profile_id, device_id, platform,"
        " token, reason, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                job.partner_id,
                job.camp_id,
                job.id,
                job.profile_id if job.profile_id in named else 0,
                job.device_id if job.profile_id in named else 0,
                job.platform,
                job.token if job.profile_id in named else "",
                outcome.reason,
                outcome.detail if job.profile_id in named else None,
                now,
            )
            for job, outcome in failed
        ],
    )


def _device(conn: Db, job: Job, outcome: DeliveryOutcome) -> None:
    if outcome.device_action == "unregister":
        # APNs: only a 410 newer than the token's last registration proves it dead. APNs
        # reports whole milliseconds, so a registration within that millisecond counts as before.
        since = outcome.token_dead_since_ms
        unregister = "UPDATE devices SET status = 'unregistered', status_reason = ?"
        unregister += " WHERE id = ? AND token = ?"
        if since is None:
            conn.execute(unregister, (outcome.reason, job.device_id, job.token))
        else:  # registered at or before the 410's millisecond: x < since + 1 is floor(x) <= since
            conn.execute(
                unregister + " AND token_registered_at * 1000 < ?",
                (outcome.reason, job.device_id, job.token, since + 1),
            )
    if outcome.device_environment is not None:
        conn.execute(
            "UPDATE devices SET environment = ? WHERE id = ? AND token = ?",
            (outcome.device_environment, job.device_id, job.token),
        )
