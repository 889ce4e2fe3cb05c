"""Recording a delivery attempt: job state, fail record, token and credential hygiene, at once."""

from __future__ import annotations

from pushgate.delivery.outcome import DeliveryOutcome
from pushgate.queue import table as job_table
from pushgate.queue.base import Job
from pushgate.store import credentials, profiles, stats
from pushgate.store.db import Db


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
    settled = job_table.settle(
        conn,
        job.id,
        worker,
        outcome.state,
        outcome.reason or outcome.detail,
        outcome.retry_at,
        now,
    )
    if not settled:
        return False
    stats.record_settled(conn, job, outcome.state, outcome.reason, now, count_stats)
    if outcome.reason is not None:
        # A profile erased while its push was on the way leaves only the reason behind.
        named = profiles.profile_exists(conn, job.profile_id)
        conn.execute(
            "INSERT INTO fail_records (partner_id, camp_id, job_id, profile_id, device_id, platform,"
            " token, reason, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.partner_id,
                job.camp_id,
                job.id,
                job.profile_id if named else 0,
                job.device_id if named else 0,
                job.platform,
                job.token if named else "",
                outcome.reason,
                outcome.detail if named else None,
                now,
            ),
        )
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
    if outcome.credential_invalid:
        credentials.mark_invalid(conn, job.partner_id, job.platform, outcome.detail)
    return True
