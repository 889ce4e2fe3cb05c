"""Erasing a user (`/api/user/v1/delete`): everything that names the person goes, campaigns keep
their counts.

With the profile go, by ON DELETE CASCADE, its identifiers, devices, events, Message Center
entries (inbox) and app events. Here, in the same transaction: its queued jobs are given up
(counted as failed with the fail name `UserDeleted`, so the funnel still adds up), its finished
jobs (device token and payload) are deleted, its fail records (the given-up jobs' too) keep
only the campaign, platform, reason and time, and its frequency-cap counter is dropped. A job a
worker holds at that moment is already on its way; when it settles, nothing it records names
the erased profile (store/campaign_stats.py and store/deliveries.py look whether it still exists).
"""

from __future__ import annotations

from collections import Counter

from pushgate.jobs import FAILED, LEASED, QUEUED
from pushgate.stats import funnel
from pushgate.store import campaign_stats, profiles
from pushgate.store.db import Db

USER_DELETED = "UserDeleted"


def erase_profile(conn: Db, profile_id: int, now: float, count_stats: bool = True) -> None:
    given_up: Counter[tuple[int, int, str]] = Counter()
    for partner_id, camp_id, platform in conn.execute(
        "SELECT partner_id, camp_id, platform FROM jobs WHERE profile_id = ? AND state = ?",
        (profile_id, QUEUED),
    ):
        given_up[int(partner_id), int(camp_id), str(platform)] += 1
    if count_stats:
        hour = funnel.hour_of(now)
        for (partner_id, camp_id, platform), n in given_up.items():
            name = funnel.settled_counter(FAILED, platform, USER_DELETED)
            assert name is not None
            campaign_stats.add_counts(conn, partner_id, {(camp_id, name): n}, hour)
    conn.execute(
        "INSERT INTO fail_records (partner_id, camp_id, job_id, profile_id, device_id, platform,"
        " token, reason, detail, created_at) SELECT partner_id, camp_id, id, 0, 0, platform, '',"
        " ?, NULL, ? FROM jobs WHERE profile_id = ? AND state = ?",
        (USER_DELETED, now, profile_id, QUEUED),
    )
    conn.execute(
        "DELETE FROM outbox WHERE job_id IN (SELECT id FROM jobs WHERE profile_id = ? AND state != ?)",
        (profile_id, LEASED),
    )
    conn.execute("DELETE FROM jobs WHERE profile_id = ? AND state != ?", (profile_id, LEASED))
    conn.execute(
        "UPDATE fail_records SET profile_id = 0, device_id = 0, token = '', detail = NULL"
        " WHERE profile_id = ?",
        (profile_id,),
    )
    conn.execute("DELETE FROM gfc_counters WHERE profile_id = ?", (profile_id,))
    profiles.delete_profile(conn, profile_id)
