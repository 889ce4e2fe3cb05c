"""Retention of finished jobs (queue/retention.py): a job that ended more than the retention
ago goes, token, payload and all; jobs still to be sent and recent ones stay. On both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushgate.queue.retention import JobRetention
from pushgate.store.backend import open_store
from pushgate.store.store import Store
from tests.support.server import BACKENDS, new_backend_env

NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = new_backend_env(request.param).get("PUSHGATE_DATABASE_URL")
    store = open_store(tmp_path, url, "NORMAL", True)
    store.start()
    yield store
    store.close()


def add_job(conn: Any, state: str, finished_at: float | None) -> int:
    return int(
        conn.execute(
            "INSERT INTO jobs (partner_id, camp_id, profile_id, device_id, platform, token,"
            " environment, payload, push_type, priority, created_at, expires_at, due_at, state,"
            " finished_at) VALUES (1, 1, 1, 1, 'ios', 'tok', 'production', ?, 'alert', 10, ?, ?,"
            " ?, ?, ?) RETURNING id",
            (b"{}", NOW - 30 * DAY, NOW + DAY, NOW, state, finished_at),
        ).fetchone()[0]
    )


async def test_jobs_finished_before_the_retention_are_purged_and_the_rest_stay(
    store: Store,
) -> None:
    def seed(conn: Any) -> dict[str, int]:
        return {
            "old done": add_job(conn, "done", NOW - 8 * DAY),
            "old failed": add_job(conn, "failed", NOW - 9 * DAY),
            "old expired": add_job(conn, "expired", NOW - 30 * DAY),
            "recent done": add_job(conn, "done", NOW - 6 * DAY),
            "queued": add_job(conn, "queued", None),
            "leased": add_job(conn, "leased", None),
        }

    ids = await store.db.run(seed)
    retention = JobRetention(store.db, days=7)
    assert await retention.purge_once(NOW) == 3
    left = await store.db.run(lambda c: {r[0] for r in c.execute("SELECT id FROM jobs")})
    assert left == {ids["recent done"], ids["queued"], ids["leased"]}
    assert await retention.purge_once(NOW) == 0  # nothing more to do
    assert retention.purged == 3


async def test_a_purge_larger_than_a_batch_takes_several_transactions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pushgate.queue.retention.BATCH", 4)
    await store.db.run(lambda c: [add_job(c, "done", NOW - 10 * DAY) for _ in range(10)])
    before = store.db.batches
    assert await JobRetention(store.db, days=7).purge_once(NOW) == 10
    assert store.db.batches - before == 3  # 4 + 4 + 2
    assert await store.db.run(lambda c: c.execute("SELECT count(*) FROM jobs").fetchone()[0]) == 0
