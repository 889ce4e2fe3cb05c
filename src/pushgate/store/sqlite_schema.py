"""The embedded schema. Created on first start; `user_version` tracks migrations."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 4

_CAMPAIGN_STATS = """
CREATE TABLE IF NOT EXISTS campaign_stats (
    partner_id INTEGER NOT NULL,
    camp_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    hour INTEGER NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL,
    PRIMARY KEY (partner_id, camp_id, name, hour, shard)
) WITHOUT ROWID"""

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partners (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    api_key_hash BLOB NOT NULL UNIQUE,
    request_token_hash BLOB NOT NULL UNIQUE,
    sdk_key_hash BLOB NOT NULL UNIQUE,
    rate_limit INTEGER NOT NULL,
    advanced_rate_limit INTEGER NOT NULL,
    gfc_limit INTEGER NOT NULL,
    gfc_window INTEGER NOT NULL,
    allow_ips TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    partner_id INTEGER NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    platform TEXT NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    validated INTEGER NOT NULL,
    detail TEXT,
    ref TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (partner_id, platform)
);
CREATE INDEX IF NOT EXISTS credentials_ref ON credentials(ref);
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    insider_id TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_active_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS identifiers (
    partner_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    PRIMARY KEY (partner_id, kind, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identifiers_profile ON identifiers(profile_id);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    platform TEXT NOT NULL,
    token TEXT NOT NULL,
    udid TEXT,
    environment TEXT NOT NULL,
    push_optin INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    status_reason TEXT,
    token_registered_at REAL NOT NULL,
    last_active_at REAL NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_udid ON devices(partner_id, udid) WHERE udid IS NOT NULL;
CREATE INDEX IF NOT EXISTS devices_token ON devices(partner_id, platform, token);
CREATE INDEX IF NOT EXISTS devices_profile ON devices(profile_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    event_name TEXT NOT NULL,
    timestamp TEXT,
    params TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_profile ON events(profile_id);
CREATE TABLE IF NOT EXISTS campaigns (
    partner_id INTEGER NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    camp_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    image_url TEXT NOT NULL,
    deep_links TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    PRIMARY KEY (partner_id, camp_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS campaigns_created ON campaigns(partner_id, created_at);
-- A campaign's content as sent: the first use of a camp_id, and each later different content.
CREATE TABLE IF NOT EXISTS campaign_variants (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    camp_id INTEGER NOT NULL,
    content_hash BLOB NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    image_url TEXT NOT NULL,
    deep_links TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    UNIQUE (partner_id, camp_id, content_hash)
);
-- The funnel per campaign and UTC hour (docs/statistics.md): "requested", "queued:<platform>",
-- "excluded:<reason>", "accepted:<platform>", "failed:<platform>:<name>", "delivered", ...
-- A counter is the sum of its shards: one per concurrent writer on PostgreSQL, 0 here.
"""
    + _CAMPAIGN_STATS
    + """;
-- One row per (campaign, user, event): what makes app events count once.
CREATE TABLE IF NOT EXISTS campaign_events (
    partner_id INTEGER NOT NULL,
    camp_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (partner_id, camp_id, profile_id, event)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS campaign_events_profile ON campaign_events(profile_id);
-- What the providers accepted, per user: the Message Center.
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    camp_id INTEGER NOT NULL,
    variant_id INTEGER NOT NULL,
    platform TEXT NOT NULL,
    job_id INTEGER NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_profile ON inbox(profile_id, created_at);
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    token_hash BLOB PRIMARY KEY,
    partner_id INTEGER NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gfc_counters (
    partner_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (partner_id, profile_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    camp_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    platform TEXT NOT NULL,
    token TEXT NOT NULL,
    environment TEXT NOT NULL,
    payload BLOB NOT NULL,
    push_type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL,
    lease_owner TEXT,
    last_error TEXT,
    finished_at REAL,
    variant_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(due_at) WHERE state IN ('queued', 'leased');
CREATE INDEX IF NOT EXISTS jobs_campaign ON jobs(partner_id, camp_id);
-- Finished jobs, oldest first, for the retention purge (queue/table.py purge_finished).
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
-- Jobs not yet published to the broker (only with PUSHGATE_QUEUE_URL; queue/relay.py).
CREATE TABLE IF NOT EXISTS outbox (
    job_id INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS fail_records (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    camp_id INTEGER NOT NULL,
    job_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    platform TEXT NOT NULL,
    token TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS fail_records_campaign ON fail_records(partner_id, camp_id);
CREATE TABLE IF NOT EXISTS async_requests (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL
);
-- A partner's webhook (contract.md, "Webhooks"); the secret sealed as credentials are.
-- Idempotency keys and the answers they replay (store/idempotency.py).
CREATE TABLE IF NOT EXISTS idempotency_keys (
    partner_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    body_hash BLOB NOT NULL,
    status INTEGER,
    body BLOB,
    locked_until REAL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (partner_id, key)
);
CREATE TABLE IF NOT EXISTS webhooks (
    partner_id INTEGER PRIMARY KEY REFERENCES partners(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT,
    secret BLOB NOT NULL,
    enabled INTEGER NOT NULL,
    last_error TEXT,
    updated_at REAL NOT NULL
);
-- Events waiting for their webhook, written in the transaction of what they tell
-- (store/webhooks.py); a sender leases them as workers lease jobs.
CREATE TABLE IF NOT EXISTS webhook_events (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    camp_id INTEGER,
    platform TEXT,
    profile_id INTEGER,
    token TEXT,
    reason TEXT,
    detail TEXT,
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT
);
CREATE INDEX IF NOT EXISTS webhook_events_due ON webhook_events(due_at);
"""
)


def create_schema(conn: sqlite3.Connection) -> None:
    """Create what is missing; every statement is idempotent, so this runs on each start."""
    conn.executescript(SCHEMA)
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if 0 < version < 2:
        _migrate_to_2(conn)
    if 0 < version < 3:
        _migrate_to_3(conn)
    _add_columns(conn)
    conn.executescript(SCHEDULING_INDEXES)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


# Version 4 (scheduled delivery, quiet hours, cancel): columns added to the tables of earlier
# versions, on every start (each is added only when missing), then the indexes that use them.
ADDED_COLUMNS = (
    ("partners", "timezone", "TEXT"),
    ("partners", "quiet_start", "INTEGER"),  # minute of the day; NULL: no quiet hours
    ("partners", "quiet_end", "INTEGER"),
    ("campaigns", "cancelled_at", "REAL"),
    ("outbox", "due_at", "REAL NOT NULL DEFAULT 0"),  # published once due
)
# Jobs waiting for their time: queued, never tried, due later than made (an immediate job is
# made due at once and never enters this index, so the hot path does not pay for it).
SCHEDULING_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_scheduled ON jobs(partner_id, camp_id)
    WHERE state = 'queued' AND attempts = 0 AND due_at > created_at;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(due_at);
"""


def _add_columns(conn: sqlite3.Connection) -> None:
    def missing() -> list[tuple[str, str, str]]:
        return [
            (table, column, kind)
            for table, column, kind in ADDED_COLUMNS
            if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        ]

    if not missing():
        return
    # Processes of one `serve` start together: the write lock first, then look again.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, kind in missing():
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Version 1 kept campaign counters without hours or platforms, and jobs without variants."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        if "variant_id" not in columns:
            conn.execute("ALTER TABLE jobs ADD COLUMN variant_id INTEGER NOT NULL DEFAULT 0")
        legacy = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'campaign_counters'"
        ).fetchone()
        if legacy:
            # The per-platform split of "queued" is recovered from the jobs themselves.
            conn.execute(
                "INSERT OR IGNORE INTO campaign_stats (partner_id, camp_id, name, hour, count)"
                " SELECT k.partner_id, k.camp_id, k.name, CAST(c.created_at / 3600 AS INTEGER),"
                " k.count FROM campaign_counters k JOIN campaigns c USING (partner_id, camp_id)"
                " WHERE k.name != 'queued'"
            )
            conn.execute(
                "INSERT OR IGNORE INTO campaign_stats (partner_id, camp_id, name, hour, count)"
                " SELECT partner_id, camp_id, 'queued:' || platform,"
                " CAST(min(created_at) / 3600 AS INTEGER), count(*)"
                " FROM jobs GROUP BY partner_id, camp_id, platform"
            )
            # Jobs that reached their end under version 1: accepted, expired, failed per name.
            conn.execute(
                "INSERT OR IGNORE INTO campaign_stats (partner_id, camp_id, name, hour, count)"
                " SELECT partner_id, camp_id, CASE state WHEN 'done' THEN 'accepted:' || platform"
                " ELSE 'expired:' || platform END, CAST(finished_at / 3600 AS INTEGER), count(*)"
                " FROM jobs WHERE state IN ('done', 'expired')"
                " GROUP BY partner_id, camp_id, state, platform, CAST(finished_at / 3600 AS INTEGER)"
            )
            conn.execute(
                "INSERT OR IGNORE INTO campaign_stats (partner_id, camp_id, name, hour, count)"
                " SELECT partner_id, camp_id, 'failed:' || platform || ':' || reason,"
                " CAST(created_at / 3600 AS INTEGER), count(*) FROM fail_records"
                " WHERE reason != 'Expired'"
                " GROUP BY partner_id, camp_id, platform, reason, CAST(created_at / 3600 AS INTEGER)"
            )
            conn.execute("DROP TABLE campaign_counters")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """Version 2 kept one row per counter; version 3 adds the shard to the key (shard 0 here)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(campaign_stats)")}
    if "shard" in columns:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE campaign_stats RENAME TO campaign_stats_v2")
        conn.execute(_CAMPAIGN_STATS)  # (executescript would commit the rename first)
        conn.execute(
            "INSERT INTO campaign_stats (partner_id, camp_id, name, hour, shard, count)"
            " SELECT partner_id, camp_id, name, hour, 0, count FROM campaign_stats_v2"
        )
        conn.execute("DROP TABLE campaign_stats_v2")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
