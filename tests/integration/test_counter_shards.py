"""Campaign counters on PostgreSQL: each executor thread adds to its own shard of a counter, so
concurrent transactions do not queue on one row; every read sums the shards. And a schema made
at version 2 (one row per counter) migrates to the sharded key on start."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import psycopg
import pytest

from pushgate.store import campaign_stats, pg_schema
from pushgate.store.postgres import COUNTER_SHARDS, PgConnection, PgExecutor, connect, parse_url
from tests.support.server import new_backend_env
from tests.support.stats_builders import as_json

PARTNER, CAMP, HOUR = 1, 7, 490_000


@pytest.fixture
def url() -> Iterator[str]:
    url = new_backend_env("postgres")["PUSHGATE_DATABASE_URL"]
    pg_schema.ensure_schema(parse_url(url))
    conn = connect(parse_url(url))
    conn.execute(
        "INSERT INTO partners (id, name, api_key_hash, request_token_hash, sdk_key_hash,"
        " rate_limit, advanced_rate_limit, gfc_limit, gfc_window, created_at, updated_at)"
        " VALUES (?, 'p', 'a', 'r', 's', 1, 1, 0, 86400, 0, 0)",
        (PARTNER,),
    )
    conn.execute(
        "INSERT INTO campaigns (partner_id, camp_id, name, title, message, image_url, created_at)"
        " VALUES (?, ?, 'c', 't', 'm', '', ?)",
        (PARTNER, CAMP, HOUR * 3600.0),
    )
    conn.close()
    yield url


def shard_rows(url: str) -> dict[int, int]:
    with connect(parse_url(url)) as conn:
        return dict(
            conn.execute(
                "SELECT shard, count FROM campaign_stats WHERE name = 'requested'"
            ).fetchall()
        )


async def test_concurrent_units_count_into_their_threads_shards_and_reads_sum_them(
    url: str,
) -> None:
    executor = PgExecutor(parse_url(url), size=4, max_batch=1)
    executor.start()
    # Every unit holds its transaction open until all four threads are inside one, so the four
    # transactions overlap: on one counter row the others would wait for the first's commit.
    inside = threading.Barrier(4, timeout=10)

    def unit(conn: PgConnection) -> None:
        campaign_stats.add_counts(conn, PARTNER, {(CAMP, "requested"): 1}, HOUR)
        inside.wait()

    try:
        await asyncio.gather(*(executor.run(unit) for _ in range(4)))
        inside.reset()
        await asyncio.gather(*(executor.run(unit) for _ in range(4)))
    finally:
        executor.close()
    rows = shard_rows(url)
    assert sum(rows.values()) == 8
    assert len(rows) == 4  # one row per thread
    assert all(0 <= shard < COUNTER_SHARDS for shard in rows)
    with connect(parse_url(url)) as conn:
        report = as_json(campaign_stats.campaign_report(conn, PARTNER, CAMP))
        assert report is not None
        assert report["funnel"]["requested"] == 8
        assert [point["requested"] for point in report["series"]] == [8]
        [campaign] = campaign_stats.campaigns_since(conn, PARTNER, 0)
        assert campaign.funnel.requested == 8


def test_a_version_2_schema_moves_its_counters_to_shard_0(url: str) -> None:
    target = parse_url(url)
    with psycopg.connect(target.conninfo, autocommit=True) as raw:
        raw.execute(f"SET search_path TO {target.schema}")  # type: ignore[arg-type]
        raw.execute("DROP TABLE campaign_stats")
        raw.execute(
            "CREATE TABLE campaign_stats (partner_id BIGINT NOT NULL, camp_id BIGINT NOT NULL,"
            " name TEXT NOT NULL, hour BIGINT NOT NULL, count BIGINT NOT NULL,"
            " PRIMARY KEY (partner_id, camp_id, name, hour))"
        )
        raw.execute(
            "INSERT INTO campaign_stats VALUES (%s, %s, 'requested', %s, 5)",
            (PARTNER, CAMP, HOUR),
        )
        raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    pg_schema.ensure_schema(target)
    assert shard_rows(url) == {0: 5}
    with connect(target) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(pg_schema.SCHEMA_VERSION),
        )
        # The sharded key is in force: another shard of the same counter is a row of its own.
        campaign_stats.add_counts(
            PgConnection(conn.raw, shard=3), PARTNER, {(CAMP, "requested"): 2}, HOUR
        )
        campaign_stats.add_counts(conn, PARTNER, {(CAMP, "requested"): 1}, HOUR)
    assert shard_rows(url) == {0: 6, 3: 2}
    pg_schema.ensure_schema(target)  # a second start changes nothing
    assert shard_rows(url) == {0: 6, 3: 2}


def test_a_version_3_schema_gets_the_scheduling_columns(url: str) -> None:
    target = parse_url(url)
    with psycopg.connect(target.conninfo, autocommit=True) as raw:
        raw.execute(f"SET search_path TO {target.schema}")  # type: ignore[arg-type]
        raw.execute("DROP INDEX outbox_due")
        raw.execute("DROP INDEX jobs_scheduled")
        raw.execute("ALTER TABLE outbox DROP COLUMN due_at")
        raw.execute("ALTER TABLE partners DROP COLUMN timezone")
        raw.execute("ALTER TABLE campaigns DROP COLUMN cancelled_at")
        raw.execute("INSERT INTO outbox (job_id) VALUES (41)")
        raw.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    pg_schema.ensure_schema(target)
    with psycopg.connect(target.conninfo, autocommit=True) as raw:
        raw.execute(f"SET search_path TO {target.schema}")  # type: ignore[arg-type]
        # A job relayed before the upgrade is due at once.
        assert raw.execute("SELECT job_id, due_at FROM outbox").fetchall() == [(41, 0.0)]
        assert raw.execute("SELECT timezone, cancelled_at FROM partners, campaigns").fetchall() in (
            [],
            [(None, None)],
        )
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(pg_schema.SCHEMA_VERSION),
        )
