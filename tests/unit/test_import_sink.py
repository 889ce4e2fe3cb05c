"""The import's store side on a real SQLite data dir: a batch and its checkpoint commit
together; a row the database refuses is rejected alone; a busy database is waited for.
(tests/integration/test_import_bulk.py compares the set-based path with the per-row one.)"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pushgate.store import partners as partner_ops
from pushgate.store.backend import connect_sync
from pushgate.store.sqlite import database_path
from pushgate.toolbox import checkpoint as cp
from pushgate.toolbox.reader import FileIdentity, Row
from pushgate.toolbox.rows import Checked, check
from pushgate.toolbox.sinks import DirectSink, Stored, ValidRow


def valid_rows(count: int) -> list[ValidRow]:
    found: list[ValidRow] = []
    for n in range(1, count + 1):
        doc = {
            "identifiers": {"uuid": f"u{n}"},
            "attributes": {"name": f"N{n}"},
            "devices": [{"platform": "ios", "device_token": f"t{n}"}],
        }
        checked = check(doc)
        assert isinstance(checked, Checked)
        found.append(ValidRow(Row(n, n, doc, doc, [], n * 10, n), checked))
    return found


@pytest.fixture
def sink(tmp_path: Path) -> Any:
    conn = connect_sync(tmp_path / "data")
    partner_ops.create_partner(conn, "acme")
    partner = partner_ops.partner_by_name(conn, "acme")
    assert partner is not None
    made = DirectSink(conn, partner.id, tmp_path / "u.jsonl")
    yield made
    made.close()


def finish_with(tmp_path: Path) -> tuple[list[Stored], Any]:
    seen: list[Stored] = []
    state = cp.fresh(tmp_path / "u.jsonl", "jsonl", "acme", FileIdentity(1, 1, "h"), tmp_path / "r")

    def finish(stored: Stored) -> cp.Checkpoint:
        seen.append(stored)
        return msgspec.structs.replace(state, rows=3, imported=stored.imported)

    return seen, finish


def test_a_batch_commits_with_its_checkpoint(sink: DirectSink, tmp_path: Path) -> None:
    seen, finish = finish_with(tmp_path)
    sink.commit(valid_rows(3), 1.0, finish)
    assert (seen[-1].imported, seen[-1].updated, seen[-1].devices) == (3, 0, 3)
    loaded = sink.load()
    assert loaded is not None and (loaded.rows, loaded.imported) == (3, 3)
    sink.commit(valid_rows(3), 2.0, finish)
    assert (seen[-1].imported, seen[-1].updated) == (0, 3)


def test_a_row_the_database_refuses_is_rejected_alone(sink: DirectSink, tmp_path: Path) -> None:
    # An empty udid is stored as given, and a second one breaks the unique index of udids.
    rows = valid_rows(3)
    for n in (0, 1):
        doc = {
            **rows[n].row.doc,
            "devices": [{"platform": "ios", "device_token": f"e{n}", "udid": ""}],
        }
        checked = check(doc)
        assert isinstance(checked, Checked)
        rows[n] = ValidRow(rows[n].row, checked)
    seen, finish = finish_with(tmp_path)
    sink.commit(rows, 1.0, finish)
    stored = seen[-1]
    assert stored.imported == 2
    assert [(row.number, reason.text()) for row, reason in stored.failed] == [
        (2, "store: IntegrityError: UNIQUE constraint failed: devices.partner_id, devices.udid")
    ]
    count = sink.conn.execute("SELECT count(*) FROM profiles").fetchone()[0]
    assert count == 2


def test_a_busy_database_is_waited_for(sink: DirectSink, tmp_path: Path) -> None:
    # Another writer holds the lock five times longer than the sink waits for it at a time:
    # the batch is tried again until the lock is free.
    sink.conn.execute("PRAGMA busy_timeout=20")
    other = sqlite3.connect(
        database_path(tmp_path / "data"), isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.1, other.execute, ("COMMIT",))
    release.start()
    started = time.monotonic()
    seen, finish = finish_with(tmp_path)
    sink.commit(valid_rows(2), 1.0, finish)
    release.join()
    other.close()
    assert time.monotonic() - started >= 0.1
    assert seen[-1].imported == 2 and seen[-1].failed == []
    assert sink.conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 2
