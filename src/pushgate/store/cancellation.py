"""Cancelling a campaign: every push of it not yet handed to a provider ends as failed
`Cancelled` (contract.md), recorded as delivery outcomes are (store/deliveries.py), so the
counters, fail records and webhook events are those of any failed push."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pushgate.jobs import CANCELLED_REASON, FAILED, QUEUED, Attempt, DeliveryOutcome
from pushgate.queue import table as job_table
from pushgate.store.db import Db

CANCELLED = DeliveryOutcome(FAILED, CANCELLED_REASON, "the campaign was cancelled")
CANCEL_BATCH = 2000  # jobs per transaction: a large campaign does not hold the writer long


def mark(conn: Db, partner_id: int, camp_id: int, now: float) -> bool:
    """Note the campaign cancelled (pushes of it that a worker holds now are not sent again
    if they fail and would be retried); False when the partner has no such campaign."""
    return (
        conn.execute(
            "UPDATE campaigns SET cancelled_at = ? WHERE partner_id = ? AND camp_id = ?",
            (now, partner_id, camp_id),
        ).rowcount
        > 0
    )


def cancel_batch(
    conn: Db, partner_id: int, camp_id: int, owner: str, after_id: int, now: float
) -> tuple[list[Attempt], int]:
    """Lease up to CANCEL_BATCH of the campaign's queued jobs with an id above `after_id`,
    for the caller to record as cancelled in the same transaction; returns them and the
    last id seen."""
    jobs = job_table.lease_campaign(conn, partner_id, camp_id, owner, after_id, CANCEL_BATCH, now)
    last = max((job.id for job in jobs), default=after_id)
    return [(job, CANCELLED) for job in jobs], last


def cancelled_retries(conn: Db, attempts: Sequence[Attempt]) -> Sequence[Attempt]:
    """The attempts with a retry ahead whose campaign was cancelled after the job was made
    turn into cancellations: a worker held the job during the cancel, and failed to send it."""
    retried = {
        (job.partner_id, job.camp_id) for job, outcome in attempts if outcome.state == QUEUED
    }
    if not retried:
        return attempts
    cancelled = _cancelled_at(conn, retried)
    if not cancelled:
        return attempts
    return [
        (job, CANCELLED)
        if outcome.state == QUEUED
        and job.created_at <= cancelled.get((job.partner_id, job.camp_id), -1.0)
        else (job, outcome)
        for job, outcome in attempts
    ]


def _cancelled_at(conn: Db, campaigns: Iterable[tuple[int, int]]) -> dict[tuple[int, int], float]:
    found: dict[tuple[int, int], float] = {}
    for partner_id, camp_id in sorted(campaigns):
        row = conn.execute(
            "SELECT cancelled_at FROM campaigns WHERE partner_id = ? AND camp_id = ?"
            " AND cancelled_at IS NOT NULL",
            (partner_id, camp_id),
        ).fetchone()
        if row is not None:
            found[partner_id, camp_id] = float(row[0])
    return found
