"""A campaign's variant id is remembered once its transaction has committed (store/sends.py
`KnownVariants`), against the real databases: the next request of the campaign takes it without
a read, and an id written by a transaction the database refused is never remembered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushgate.crypto import SecretBox
from pushgate.jobs import UPLOADED
from pushgate.payloads.build import build_all
from pushgate.store import credentials, partners, profiles
from pushgate.store.backend import open_store
from pushgate.store.db import Db, is_postgres
from pushgate.store.store import Store
from tests.support.server import new_backend_env
from tests.support.stats_builders import make_push

BOX = SecretBox(b"k" * 32)
EMAIL = "a@b.co"


@pytest.fixture
def store(tmp_path: Path, backend: str) -> Iterator[Store]:
    env = new_backend_env(backend)
    opened = open_store(tmp_path / "data", env.get("PUSHGATE_DATABASE_URL"))
    opened.start()
    yield opened
    opened.close()


def seed(conn: Db, now: float) -> int:
    """A partner with a validated iOS credential and one user (EMAIL) with an iOS device."""
    partners.create_partner(conn, f"p{time.time_ns()}")
    partner_id = int(conn.execute("SELECT max(id) FROM partners").fetchone()[0])
    credentials.put(conn, BOX, partner_id, "ios", UPLOADED, {"k": "ios"}, ref=None, validated=True)
    profile_id = profiles.create_profile(conn, partner_id, now)
    conn.execute(
        "INSERT INTO identifiers (partner_id, kind, value, profile_id) VALUES (?, 'email', ?, ?)",
        (partner_id, EMAIL, profile_id),
    )
    conn.execute(
        "INSERT INTO devices (partner_id, profile_id, platform, token, environment, push_optin,"
        " token_registered_at, last_active_at) VALUES (?, ?, 'ios', 'tok', 'production', 1, ?, ?)",
        (partner_id, profile_id, now - 100, now),
    )
    return partner_id


def refuse_jobs(conn: Db, refuse: bool) -> None:
    """The database itself refuses every new job (a trigger), or stops refusing."""
    if is_postgres(conn):
        if refuse:
            conn.execute(
                "CREATE FUNCTION refuse_job() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW"
                " EXECUTE FUNCTION refuse_job()"
            )
        else:
            conn.execute("DROP TRIGGER refuse ON jobs")
            conn.execute("DROP FUNCTION refuse_job()")
    elif refuse:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    else:
        conn.execute("DROP TRIGGER refuse")


def variant_rows(conn: Db, partner_id: int) -> list[int]:
    rows = conn.execute("SELECT id FROM campaign_variants WHERE partner_id = ?", (partner_id,))
    return [int(r[0]) for r in rows.fetchall()]


async def test_a_variant_is_remembered_only_once_its_transaction_committed(store: Store) -> None:
    now = time.time()
    partner_id = await store.db.run(lambda c: seed(c, now))
    partner = await store.partner_by_id(partner_id)
    assert partner is not None
    push = make_push(7, identifiers={"INSIDER.email": EMAIL})
    built = [build_all(push)]

    await store.db.run(lambda c: refuse_jobs(c, True))
    with pytest.raises(Exception, match="refused"):
        await store.send_pushes(partner, [push], built, now)
    assert store.variants.of(partner_id) == {}
    assert await store.db.run(lambda c: variant_rows(c, partner_id)) == []  # rolled back

    await store.db.run(lambda c: refuse_jobs(c, False))
    [first] = await store.send_pushes(partner, [push], built, now)
    assert first.device is not None
    [variant] = await store.db.run(lambda c: variant_rows(c, partner_id))
    assert list(store.variants.of(partner_id).values()) == [variant]

    await store.send_pushes(partner, [push], built, now + 1)
    jobs = await store.db.run(
        lambda c: c.execute(
            "SELECT variant_id FROM jobs WHERE partner_id = ?", (partner_id,)
        ).fetchall()
    )
    assert [int(r[0]) for r in jobs] == [variant, variant]
