"""PostgreSQL errors reach their callers, and so the logs, without DETAIL, which quotes the
row's values (docs/security.md, "Log leakage"): the executor keeps the type and `diag`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from pushgate.store.postgres import PgConnection, PgExecutor, PgTarget, parse_url
from tests.support.server import new_backend_env

EMAIL = "ada.lovelace@example.com"


@pytest.fixture
async def executor() -> AsyncIterator[PgExecutor]:
    target: PgTarget = parse_url(new_backend_env("postgres")["PUSHGATE_DATABASE_URL"])
    with psycopg.connect(target.conninfo, autocommit=True) as raw:
        raw.execute(f"CREATE SCHEMA {target.schema}")  # type: ignore[arg-type]
        raw.execute(f"CREATE TABLE {target.schema}.t (email TEXT PRIMARY KEY)")  # type: ignore[arg-type]
        raw.execute(f"INSERT INTO {target.schema}.t VALUES (%s)", (EMAIL,))  # type: ignore[arg-type]
    ex = PgExecutor(target, size=1)
    ex.start()
    yield ex
    ex.close()


def insert_again(conn: PgConnection) -> None:
    conn.execute("INSERT INTO t (email) VALUES (?)", (EMAIL,))


async def test_a_constraint_error_does_not_quote_the_row(executor: PgExecutor) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation) as raised:
        await executor.run(insert_again)

    assert EMAIL not in str(raised.value)
    assert str(raised.value) == 'duplicate key value violates unique constraint "t_pkey"'
    assert EMAIL in (raised.value.diag.message_detail or "")


def test_nor_does_one_from_a_unit_run_on_the_calling_thread(executor: PgExecutor) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation) as raised:
        executor.run_sync(insert_again)

    assert EMAIL not in str(raised.value)
