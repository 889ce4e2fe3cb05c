"""The schema migration from version 1 (campaign counters without hours or platforms, jobs without
variants) to version 2, on real SQLite files built with the version-1 schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushgate.jobs import DONE, DeliveryOutcome
from pushgate.queue import table as job_table
from pushgate.stats.funnel import hour_of
from pushgate.stats.message_center import answer
from pushgate.store import campaign_stats, deliveries
from pushgate.store.executor import connect
from pushgate.store.sqlite_schema import SCHEMA_VERSION, create_schema
from tests.support.stats_builders import as_json

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR = 3600

# The schema of version 1, verbatim from src/pushgate/store/sqlite_schema.py at commit eb6b18a
# (the parent of 39497b2, which introduced version 2).
V1_SCHEMA = """
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
-- The funnel per campaign: "requested", "queued", "excluded:<reason>", ...
CREATE TABLE IF NOT EXISTS campaign_counters (
    partner_id INTEGER NOT NULL,
    camp_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (partner_id, camp_id, name)
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
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(due_at) WHERE state IN ('queued', 'leased');
CREATE INDEX IF NOT EXISTS jobs_campaign ON jobs(partner_id, camp_id);
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

"""

CAMP7_CREATED = NOW - 5 * HOUR + 123
CAMP8_CREATED = NOW + 60


def v1_job(
    conn: sqlite3.Connection,
    partner: int,
    camp_id: int,
    user: int,
    platform: str,
    created_at: float,
    state: str = "queued",
) -> None:
    conn.execute(
        "INSERT INTO jobs (partner_id, camp_id, profile_id, device_id, platform, token,"
        " environment, payload, push_type, priority, created_at, expires_at, state, due_at,"
        " finished_at) VALUES (?, ?, ?, ?, ?, ?, 'production', x'7b7d', 'alert', 10, ?, ?, ?, ?, ?)",
        (
            partner,
            camp_id,
            user,
            user,
            platform,
            f"token-{user}",
            created_at,
            created_at + 86400,
            state,
            created_at,
            None if state == "queued" else created_at + 1,
        ),
    )


def build_v1(path: Path) -> sqlite3.Connection:
    """A version-1 database as version 1 left it: two partners, campaigns, counters, jobs."""
    conn = connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("PRAGMA user_version=1")
    for partner in (1, 2):
        conn.execute(
            "INSERT INTO partners (id, name, api_key_hash, request_token_hash, sdk_key_hash,"
            " rate_limit, advanced_rate_limit, gfc_limit, gfc_window, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 10, 10, 0, 86400, 0, 0)",
            (partner, f"p{partner}", bytes([partner, 1]), bytes([partner, 2]), bytes([partner, 3])),
        )
    for user in (1, 2, 3, 4, 5):
        conn.execute(
            "INSERT INTO profiles (id, partner_id, insider_id, created_at, updated_at)"
            " VALUES (?, 1, ?, 0, 0)",
            (user, f"insider-{user}"),
        )
    campaigns = [
        (1, 7, "Launch", "Title 7", CAMP7_CREATED),
        (1, 8, "Sale", "Title 8", CAMP8_CREATED),
        (2, 7, "Other partner", "Title", CAMP7_CREATED),
    ]
    for partner, camp, name, title, created in campaigns:
        conn.execute(
            "INSERT INTO campaigns (partner_id, camp_id, name, title, message, image_url,"
            " deep_links, created_at) VALUES (?, ?, ?, ?, 'Message', '', ?, ?)",
            (partner, camp, name, title, '{"android":{"Page":"Home"},"ios":{}}', created),
        )
    conn.executemany(
        "INSERT INTO campaign_counters (partner_id, camp_id, name, count) VALUES (?, ?, ?, ?)",
        [
            (1, 7, "requested", 6),
            (1, 7, "queued", 3),
            (1, 7, "excluded:OptOut", 1),
            (1, 7, "excluded:NoUserFound", 2),
            (1, 8, "requested", 1),
            (1, 8, "queued", 1),
            (2, 7, "requested", 2),
            (2, 7, "queued", 2),
        ],
    )
    # Campaign 7's sends over three hours; the first was delivered before the upgrade.
    v1_job(conn, 1, 7, 1, "ios", CAMP7_CREATED, state="done")
    v1_job(conn, 1, 7, 2, "ios", NOW - 4 * HOUR + 5)
    v1_job(conn, 1, 7, 3, "android", NOW - 3 * HOUR)
    v1_job(conn, 1, 8, 4, "huawei", CAMP8_CREATED)
    v1_job(conn, 2, 7, 5, "android", CAMP7_CREATED)
    v1_job(conn, 2, 7, 5, "android", CAMP7_CREATED + 2 * HOUR)
    return conn


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = build_v1(tmp_path / "v1.sqlite3")
    yield c
    c.close()


@pytest.fixture
def migrated(conn: sqlite3.Connection) -> sqlite3.Connection:
    create_schema(conn)
    return conn


def snapshot(conn: sqlite3.Connection) -> dict[str, object]:
    """Every object of the schema, every row of every table, and the version."""
    objects = conn.execute(
        "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
    ).fetchall()
    tables = [name for kind, name, _ in objects if kind == "table"]
    return {
        "objects": objects,
        "rows": {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables
        },
        "version": conn.execute("PRAGMA user_version").fetchone()[0],
    }


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        is not None
    )


def stats_rows(conn: sqlite3.Connection) -> list[tuple[int, int, str, int, int]]:
    return conn.execute(
        "SELECT partner_id, camp_id, name, hour, count FROM campaign_stats"
        " ORDER BY partner_id, camp_id, name, hour"
    ).fetchall()


def test_the_version_1_database_is_what_version_1_made(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert table_exists(conn, "campaign_counters")
    assert not table_exists(conn, "campaign_stats")
    assert "variant_id" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}


def test_the_migration_ends_at_the_current_version(migrated: sqlite3.Connection) -> None:
    assert migrated.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_the_old_counter_table_is_gone(migrated: sqlite3.Connection) -> None:
    assert not table_exists(migrated, "campaign_counters")


def test_jobs_get_a_variant_id_of_zero(migrated: sqlite3.Connection) -> None:
    columns = {row[1]: row for row in migrated.execute("PRAGMA table_info(jobs)")}
    assert "variant_id" in columns
    assert migrated.execute("SELECT DISTINCT variant_id FROM jobs").fetchall() == [(0,)]


def test_counters_move_to_the_hour_the_campaign_was_first_used(
    migrated: sqlite3.Connection,
) -> None:
    h7, h8 = hour_of(CAMP7_CREATED), hour_of(CAMP8_CREATED)
    # The old counters only: queued/accepted/expired/failed are rebuilt from jobs and fail records.
    rebuilt = ("queued:", "accepted:", "expired:", "failed:")
    rows = [r for r in stats_rows(migrated) if not r[2].startswith(rebuilt)]
    assert rows == [
        (1, 7, "excluded:NoUserFound", h7, 2),
        (1, 7, "excluded:OptOut", h7, 1),
        (1, 7, "requested", h7, 6),
        (1, 8, "requested", h8, 1),
        (2, 7, "requested", h7, 2),
    ]


def test_queued_is_split_per_platform_from_the_jobs(migrated: sqlite3.Connection) -> None:
    rows = [r for r in stats_rows(migrated) if r[2].startswith("queued")]
    assert rows == [
        (1, 7, "queued:android", hour_of(NOW - 3 * HOUR), 1),
        (1, 7, "queued:ios", hour_of(CAMP7_CREATED), 2),  # the hour of the first ios job
        (1, 8, "queued:huawei", hour_of(CAMP8_CREATED), 1),
        (2, 7, "queued:android", hour_of(CAMP7_CREATED), 2),
    ]


def test_the_migrated_counters_read_as_the_same_funnel(migrated: sqlite3.Connection) -> None:
    report = as_json(campaign_stats.campaign_report(migrated, 1, 7))
    assert report is not None
    assert report["funnel"]["requested"] == 6
    assert report["funnel"]["resolved"] == 4
    assert report["funnel"]["excluded"] == {"NoUserFound": 2, "OptOut": 1}
    assert report["funnel"]["queued"] == 3
    assert {p: split["queued"] for p, split in report["platforms"].items()} == {
        "ios": 2,
        "android": 1,
        "huawei": 0,
    }
    other = as_json(campaign_stats.campaign_report(migrated, 2, 7))
    assert other is not None
    assert (other["funnel"]["requested"], other["funnel"]["queued"]) == (2, 2)


def test_running_create_schema_again_changes_nothing(migrated: sqlite3.Connection) -> None:
    before = snapshot(migrated)
    create_schema(migrated)
    assert snapshot(migrated) == before


def test_a_migration_interrupted_before_its_version_was_written_runs_again_harmlessly(
    migrated: sqlite3.Connection,
) -> None:
    before = snapshot(migrated)
    migrated.execute("PRAGMA user_version=1")
    create_schema(migrated)
    assert snapshot(migrated) == before


def test_a_version_1_database_without_counters_migrates(tmp_path: Path) -> None:
    conn = connect(tmp_path / "empty-v1.sqlite3")
    conn.executescript(V1_SCHEMA)
    conn.execute("PRAGMA user_version=1")
    create_schema(conn)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert not table_exists(conn, "campaign_counters")
    assert stats_rows(conn) == []
    conn.close()


def test_a_new_database_starts_at_the_current_version_without_the_old_table(
    tmp_path: Path,
) -> None:
    conn = connect(tmp_path / "new.sqlite3")
    create_schema(conn)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert not table_exists(conn, "campaign_counters")
    assert "variant_id" in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    conn.close()


def test_a_job_queued_before_the_upgrade_is_counted_and_shown_after_it(
    migrated: sqlite3.Connection,
) -> None:
    before = as_json(campaign_stats.campaign_report(migrated, 1, 7))
    assert before is not None
    [job] = [j for j in job_table.claim(migrated, "w1", 10, 30, NOW) if j.profile_id == 2]
    assert job.variant_id == 0
    assert deliveries.record(migrated, job, "w1", DeliveryOutcome(DONE), NOW)
    report = as_json(campaign_stats.campaign_report(migrated, 1, 7))
    assert report is not None
    accepted = before["platforms"]["ios"]["accepted"]
    assert report["platforms"]["ios"]["accepted"] == accepted + 1
    [shown] = as_json(answer(campaign_stats.inbox(migrated, 1, 2, 0, 1e12, 100)))
    assert (shown["camp_id"], shown["title"], shown["variant_id"]) == (7, "Title 7", 0)
    assert shown["deep_links"] == {}  # the job went to iOS; the campaign has Android links only


def test_jobs_settled_before_the_upgrade_are_not_pending(migrated: sqlite3.Connection) -> None:
    report = as_json(campaign_stats.campaign_report(migrated, 1, 7))
    assert report is not None
    # Of campaign 7's three jobs, the first was delivered under version 1.
    unsettled = migrated.execute(
        "SELECT count(*) FROM jobs WHERE partner_id = 1 AND camp_id = 7"
        " AND state IN ('queued', 'leased')"
    ).fetchone()[0]
    assert unsettled == 2
    assert report["funnel"]["pending"] == unsettled
    assert report["funnel"]["accepted"] == 1


def test_a_version_2_database_keeps_its_counters_in_shard_0(tmp_path: Path) -> None:
    conn = connect(tmp_path / "v2.sqlite3")
    create_schema(conn)
    conn.execute("DROP TABLE campaign_stats")
    conn.execute(  # version 2's counter table: one row per counter
        "CREATE TABLE campaign_stats (partner_id INTEGER NOT NULL, camp_id INTEGER NOT NULL,"
        " name TEXT NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL,"
        " PRIMARY KEY (partner_id, camp_id, name, hour)) WITHOUT ROWID"
    )
    conn.execute("INSERT INTO campaign_stats VALUES (1, 7, 'requested', 100, 6)")
    conn.execute("INSERT INTO campaign_stats VALUES (1, 7, 'queued:ios', 101, 2)")
    conn.execute("PRAGMA user_version=2")
    create_schema(conn)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute(
        "SELECT name, hour, shard, count FROM campaign_stats ORDER BY name"
    ).fetchall() == [("queued:ios", 101, 0, 2), ("requested", 100, 0, 6)]
    assert not table_exists(conn, "campaign_stats_v2")
    campaign_stats.add_counts(conn, 1, {(7, "requested"): 1}, 100)  # the new key accepts the upsert
    assert stats_rows(conn)[-1] == (1, 7, "requested", 100, 7)
    conn.close()


def test_version_4_adds_the_scheduling_columns_and_indexes(migrated: sqlite3.Connection) -> None:
    def columns(table: str) -> set[str]:
        return {row[1] for row in migrated.execute(f"PRAGMA table_info({table})")}

    assert {"timezone", "quiet_start", "quiet_end"} <= columns("partners")
    assert "cancelled_at" in columns("campaigns")
    assert "due_at" in columns("outbox")
    indexes = {row[0] for row in migrated.execute("SELECT name FROM sqlite_master")}
    assert {"jobs_scheduled", "outbox_due"} <= indexes
    # Partners made before it have no zone and no quiet hours.
    assert migrated.execute(
        "SELECT DISTINCT timezone, quiet_start, quiet_end FROM partners"
    ).fetchall() in ([], [(None, None, None)])
