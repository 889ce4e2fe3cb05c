"""`pushgate users import`'s set-based path for new users (store/bulk_import.py) leaves the
database exactly as the per-row path does: the same files, new users, re-imports, rows sharing
identifiers, tokens or udids within a batch or with stored devices, insider_ids, bad rows and
rows the database refuses, imported both ways on each backend and compared table by table.

Surrogate ids (profiles, devices, events) are compared by rank: on PostgreSQL a batch that is
rolled back and applied again (a refused row) uses up sequence values, and the two paths roll
back after different amounts of work. On SQLite, where a rolled-back insert takes no id, they
must be equal too. Insider ids are random for new profiles: compared only for the ones the
test set itself.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pushgate.store import bulk_import
from pushgate.store import partners as partner_ops
from pushgate.store.backend import ClosableDb, connect_sync
from pushgate.toolbox.checkpoint import Checkpoint
from pushgate.toolbox.importer import ImportJob, default_rejects, default_state, run_import
from pushgate.toolbox.rows import Checked, check
from pushgate.toolbox.sinks import DirectSink, Finish, ValidRow
from tests.support.server import BACKENDS, new_backend_env

PARTNER = "acme"
SEEDED = 40
PLATFORMS = ("ios", "android", "huawei")
DEVICE_COLUMNS = ("device.platform", "device.token", "device.udid", "device.push_optin")
# A value longer than a PostgreSQL index entry may be (about 2,700 bytes): the database
# refuses the row that carries it as an identifier; SQLite takes it.
HUGE = random.Random(7).randbytes(4500).hex()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class NoProgress:
    def start(self, total_bytes: int, done_bytes: int, done_rows: int) -> None:
        pass

    def advance(self, done_bytes: int, done_rows: int, run_rows: int) -> None:
        pass

    def stop(self) -> None:
        pass


class Clocked:
    """The sink with a clock of its own: batch N is stored at time 1000 + N, so that two
    imports of the same files store the same timestamps."""

    def __init__(self, inner: DirectSink, clock: Iterator[float]) -> None:
        self.inner = inner
        self.clock = clock

    def load(self) -> Checkpoint | None:
        return self.inner.load()

    def commit(self, rows: Sequence[ValidRow], now: float, finish: Finish) -> Checkpoint:
        return self.inner.commit(rows, next(self.clock), finish)

    def close(self) -> None:
        pass


@dataclass
class Database:
    conn: ClosableDb
    partner_id: int


OpenDatabase = Callable[[Path], Database]


@pytest.fixture
def open_database(backend: str) -> Iterator[OpenDatabase]:
    """A fresh database with the partner (a schema of its own on PostgreSQL), closed after
    the test."""
    opened: list[ClosableDb] = []

    def make(where: Path) -> Database:
        conn = connect_sync(where, new_backend_env(backend).get("PUSHGATE_DATABASE_URL"))
        opened.append(conn)
        partner_ops.create_partner(conn, PARTNER)
        partner = partner_ops.partner_by_name(conn, PARTNER)
        assert partner is not None
        return Database(conn, partner.id)

    yield make
    for conn in opened:
        conn.close()


# ---- the files ----


def write_seed(path: Path) -> None:
    """Users that exist before the files under test: every other one with a udid."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*("email", "uuid", "name", "age", "tags:list"), *DEVICE_COLUMNS])
        for n in range(SEEDED):
            udid = f"seed-udid-{n}" if n % 2 == 0 else ""
            out.writerow(
                [
                    f"s{n}@example.com",
                    f"s-{n}",
                    f"Seed {n}",
                    str(20 + n),
                    "a;b",
                    PLATFORMS[n % 3],
                    f"seed-token-{n}",
                    udid,
                    "true",
                ]
            )


def device(rng: random.Random, token: str, udid: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "platform": rng.choice(["ios", "android", "huawei", "IOS"]),
        "device_token": token,
    }
    if udid is not None:
        found["udid"] = udid
    if rng.random() < 0.3:
        found |= {"environment": "sandbox", "push_optin": False, "app_version": "2.1"}
    return found


def new_user(rng: random.Random, n: int) -> dict[str, Any]:
    """A user nothing knows, in one of the shapes a file may give."""
    row: dict[str, Any] = {
        "identifiers": {"email": f"N{n}@Example.com", "uuid": f"n-{n}"},
        "attributes": {"name": f"New {n}", "age": n % 90, "tags": ["x", "y", "x"][: 1 + n % 3]},
    }
    shape = n % 7
    if shape == 1:
        row["events"] = [
            {"event_name": "signed_up", "timestamp": "2026-01-02T03:04:05Z"},
            {"event_name": "opened", "event_params": {"n": n}},
        ]
    if shape == 2:
        row["not_append"] = True
    if shape == 3:
        del row["attributes"]
        row["events"] = [{"event_name": "only_events"}]
    if shape == 4:
        row["identifiers"]["custom"] = {"loyalty": f"L{n}"}
        row["insider_id"] = f"UNKNOWN-{n}"  # no such profile: the identifiers decide
    if shape != 5:
        row["device"] = device(rng, f"tok-n{n}", f"udid-n{n}" if n % 2 else None)
    if shape == 6:
        row["devices"] = [device(rng, f"tok-n{n}-b"), device(rng, f"tok-n{n}-c", f"udid-n{n}-c")]
    return row


def main_rows(rng: random.Random, refusals: bool, empty_udids: bool) -> list[Any]:
    """Mostly new users, with every kind of row the per-row path must keep."""
    rows: list[Any] = []
    for n in range(240):
        kind = n % 24
        seeded = rng.randrange(SEEDED)
        if kind == 3:  # an existing user again: attributes merge, arrays append, a new device
            rows.append(
                {
                    "identifiers": {"email": f"s{seeded}@example.com"},
                    "attributes": {"city": "Oslo", "tags": ["b", "c"]},
                    "device": device(rng, f"tok-again-{n}"),
                }
            )
        elif kind == 5:  # the previous row's email, spelled otherwise, and a uuid of its own
            rows.append(
                {
                    "identifiers": {"email": f"n{n - 1}@EXAMPLE.com", "uuid": f"dup-{n}"},
                    "attributes": {"name": "Same email"},
                }
            )
        elif kind == 7:  # the previous row's device token, for someone else
            rows.append(
                {
                    "identifiers": {"uuid": f"shares-token-{n}"},
                    "device": device(rng, f"tok-n{n - 1}"),
                }
            )
        elif kind == 9:  # a stored device's token: it moves to this new user
            row = new_user(rng, n)
            row["device"] = {"platform": "ios", "device_token": f"seed-token-{seeded}"}
            rows.append(row)
        elif kind == 10:  # a stored device's udid, with a new token
            row = new_user(rng, n)
            row["device"] = device(rng, f"tok-moved-{n}", f"seed-udid-{seeded - seeded % 2}")
            rows.append(row)
        elif kind == 11:  # a stored profile by insider_id (the test gives them known ones)
            rows.append({"insider_id": f"SEED-{seeded}", "attributes": {"vip": True}})
        elif kind == 12:  # no identifiers, an unknown insider_id: the device finds the user
            rows.append(
                {
                    "insider_id": f"ANON-{n}",
                    "device": {"platform": "android", "device_token": f"seed-token-{seeded}"},
                }
            )
        elif kind == 13:  # no identifiers and nothing to find: a profile of its own
            rows.append({"insider_id": f"ANON-{n}", "attributes": {"lonely": True}})
        elif kind == 14:  # bad rows: refused by the rules, never stored
            rows.append({"identifiers": {"email": f"bad-{n}-at-example.com"}, "attributes": {}})
            rows.append("not an object")
        elif kind == 15:  # one identifier under two spellings, stored once
            rows.append(
                {
                    "identifiers": {
                        "email": f"twice{n}@example.com",
                        "INSIDER.email": f"TWICE{n}@example.com",
                    },
                    "attributes": {"name": "Twice"},
                }
            )
        elif kind == 16:  # one row with the same device twice
            row = new_user(rng, n)
            row["devices"] = [{"platform": "ios", "device_token": f"tok-n{n}-same"}] * 2
            rows.append(row)
        elif kind == 17 and refusals:  # refused by PostgreSQL (an index entry too big)
            row = new_user(rng, n)
            row["identifiers"]["custom"] = {"huge": HUGE}
            rows.append(row)
        elif kind == 18 and empty_udids:  # every empty udid after the first breaks an index
            for suffix in ("a", "b"):
                row = new_user(rng, n)
                row["identifiers"] = {"uuid": f"empty-udid-{n}-{suffix}"}
                row["device"] = device(rng, f"tok-empty-{n}-{suffix}", "")
                rows.append(row)
        elif kind == 19:  # the next row's uuid: the two go per row, in file order
            row = new_user(rng, n)
            row["identifiers"]["uuid"] = f"next-{n}"
            rows.append(row)
            rows.append({"identifiers": {"uuid": f"next-{n}"}, "attributes": {"tags": ["z"]}})
        elif kind == 20:  # a device without identifiers, then a new user with its token
            anonymous = {"platform": "ios", "device_token": f"tok-anon-{n}"}
            rows.append({"insider_id": f"ANON-{n}", "device": anonymous})
            row = new_user(rng, n)
            row["device"] = anonymous
            rows.append(row)
        else:
            rows.append(new_user(rng, n))
    return rows


def write_jsonl(path: Path, rows: Sequence[Any]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_csv(path: Path, rows: int) -> None:
    """The benchmark's shape (bench/import_bench.py): new users, one device each, 1 % bad."""
    rng = random.Random(3)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*("email", "uuid", "name", "age", "city", "tags:list"), *DEVICE_COLUMNS])
        for n in range(rows):
            email = f"bulk{n}@example.com" if rng.random() > 0.01 else f"bulk{n}-at-example"
            out.writerow(
                [
                    email,
                    f"b-{n}",
                    f"Name {n}",
                    str(18 + n % 60),
                    "Helsinki",
                    "a;b",
                    PLATFORMS[n % 3],
                    rng.randbytes(16).hex(),
                    f"b-udid-{n}",
                    str(n % 5 > 0),
                ]
            )


# ---- importing and comparing ----


@dataclass
class Imported:
    """What the imports left: the tables, each import's counts and its rejects."""

    tables: dict[str, list[tuple[Any, ...]]]
    raw_ids: dict[str, list[int]]
    outcomes: list[dict[str, Any]]


def import_all(db: Database, files: Sequence[tuple[Path, str, int]], bulk: bool) -> Imported:
    clock = (1000.0 + n for n in range(1_000_000))
    outcomes: list[dict[str, Any]] = []
    for index, (path, fmt, batch_size) in enumerate(files):
        sink = Clocked(DirectSink(db.conn, db.partner_id, path, bulk=bulk), clock)
        job = ImportJob(
            path,
            fmt,
            PARTNER,
            default_rejects(path),
            default_state(path),
            batch_size,
            restart=True,  # the same files go to both databases
        )
        outcome = run_import(job, sink, NoProgress())
        rejects = default_rejects(path)
        cp = outcome.checkpoint
        outcomes.append(
            {
                "counts": (cp.rows, cp.imported, cp.updated, cp.devices, cp.rejected),
                "reasons": cp.reasons,
                "rejects": rejects.read_text() if rejects.exists() else "",
            }
        )
        if index == 0:
            give_known_insider_ids(db)
    return Imported(dump(db.conn), raw_ids(db.conn), outcomes)


def give_known_insider_ids(db: Database) -> None:
    """The seeded profiles' insider_ids, the same in both databases: SEED-0, SEED-1, ..."""
    rows = db.conn.execute("SELECT id FROM profiles ORDER BY id").fetchall()
    for n, (pid,) in enumerate(rows):
        db.conn.execute("UPDATE profiles SET insider_id = ? WHERE id = ?", (f"SEED-{n}", pid))


def dump(conn: ClosableDb) -> dict[str, list[tuple[Any, ...]]]:
    profile_rank = {
        pid: n for n, (pid,) in enumerate(conn.execute("SELECT id FROM profiles ORDER BY id"))
    }
    profiles = [
        (profile_rank[r[0]], r[1], r[2] if r[2].startswith("SEED-") else "random", *r[3:])
        for r in conn.execute(
            "SELECT id, partner_id, insider_id, attributes, created_at, updated_at,"
            " last_active_at FROM profiles ORDER BY id"
        )
    ]
    identifiers = sorted(
        (r[0], r[1], r[2], profile_rank[r[3]])
        for r in conn.execute("SELECT partner_id, kind, value, profile_id FROM identifiers")
    )
    devices = [
        (r[0], profile_rank[r[1]], *r[2:])
        for r in conn.execute(
            "SELECT partner_id, profile_id, platform, token, udid, environment, push_optin,"
            " status, status_reason, token_registered_at, last_active_at, attributes"
            " FROM devices ORDER BY id"
        )
    ]
    events = [
        (profile_rank[r[0]], *r[1:])
        for r in conn.execute(
            "SELECT profile_id, event_name, timestamp, params FROM events ORDER BY id"
        )
    ]
    return {"profiles": profiles, "identifiers": identifiers, "devices": devices, "events": events}


def raw_ids(conn: ClosableDb) -> dict[str, list[int]]:
    return {
        table: [int(r[0]) for r in conn.execute(f"SELECT id FROM {table} ORDER BY id")]
        for table in ("profiles", "devices", "events")
    }


def test_the_set_based_path_stores_what_the_per_row_path_stores(
    backend: str, open_database: OpenDatabase, tmp_path: Path
) -> None:
    rng = random.Random(11)
    seed, main, again, bench = (
        tmp_path / n for n in ("seed.csv", "main.jsonl", "again.jsonl", "bench.csv")
    )
    write_seed(seed)
    write_jsonl(main, main_rows(rng, refusals=True, empty_udids=backend == "sqlite"))
    # The same users once more, with other new ones: every row of the first file is an update.
    write_jsonl(again, main_rows(random.Random(11), refusals=False, empty_udids=False)[::-1])
    write_csv(bench, 2600)
    files = [
        (seed, "csv", 16),
        (main, "jsonl", 10),
        (main, "jsonl", 64),  # the same file in bigger batches: all updates now
        (again, "jsonl", 33),
        (bench, "csv", 2500),  # more bound variables than one statement takes
    ]
    per_row = import_all(open_database(tmp_path / "a"), files, bulk=False)
    set_based = import_all(open_database(tmp_path / "b"), files, bulk=True)
    assert set_based.outcomes == per_row.outcomes
    for table, rows in per_row.tables.items():
        assert len(set_based.tables[table]) == len(rows), table
        for mine, theirs in zip(set_based.tables[table], rows, strict=True):
            assert mine == theirs, table
    if backend == "sqlite":
        assert set_based.raw_ids == per_row.raw_ids
    counts = [o["counts"] for o in per_row.outcomes]
    assert counts[0] == (SEEDED, SEEDED, 0, SEEDED, 0)
    assert counts[4][1] > 2500  # the big file's new users
    reasons = per_row.outcomes[1]["reasons"]
    assert reasons.get("row.type(object)") == 10
    if backend == "postgres":
        assert reasons.get("store") == 10  # the huge identifiers, isolated row by row
    else:
        assert reasons.get("store") == 19  # every empty udid after the first


# ---- which rows go set-based ----


def checked(doc: dict[str, Any]) -> bulk_import.Entry:
    """The row as the store takes it (a file's `device` is the checker's `devices`)."""
    if "device" in doc:
        doc = {**doc, "devices": [doc["device"]]}
        del doc["device"]
    found = check(doc)
    assert isinstance(found, Checked), found
    return bulk_import.Entry(found.user, found.sessions)


def test_only_new_users_that_share_nothing_go_set_based(
    open_database: OpenDatabase, tmp_path: Path
) -> None:
    db = open_database(tmp_path / "data")
    stored_user = {
        "identifiers": {"email": "old@example.com"},
        "device": {"platform": "ios", "device_token": "old-token", "udid": "old-udid"},
    }
    db.conn.execute("BEGIN")
    bulk_import.insert_new(db.conn, db.partner_id, [checked(stored_user)], 1.0)
    (insider_id,) = db.conn.execute("SELECT insider_id FROM profiles").fetchone()
    db.conn.execute("COMMIT")

    def user(uuid: str, **more: Any) -> dict[str, Any]:
        return {"identifiers": {"uuid": uuid}, "attributes": {"a": 1}, **more}

    cases = {
        "new": (user("u1"), True),
        "new with a device": (user("u2", device={"platform": "ios", "device_token": "t2"}), True),
        "new with an unknown insider_id": (user("u3", insider_id="nobody"), True),
        "stored identifier": (
            {"identifiers": {"email": "OLD@example.com"}, "attributes": {}},
            False,
        ),
        "stored insider_id": (user("u4", insider_id=insider_id), False),
        "stored token": (
            user("u5", device={"platform": "IOS", "device_token": "old-token"}),
            False,
        ),
        "stored token, other platform": (
            user("u6", device={"platform": "android", "device_token": "old-token"}),
            True,
        ),
        "stored udid": (
            user("u7", device={"platform": "ios", "device_token": "t7", "udid": "old-udid"}),
            False,
        ),
        "empty udid": (
            user("u8", device={"platform": "ios", "device_token": "t8", "udid": ""}),
            False,
        ),
        "no identifiers": ({"insider_id": "nobody-2", "attributes": {"a": 1}}, False),
        "shares a uuid with the next": (user("u9"), False),
        "shares a uuid with the previous": (user("u9"), False),
        "shares a token with the next": (
            user("u10", device={"platform": "huawei", "device_token": "t10"}),
            False,
        ),
        "shares a token with the previous": (
            user("u11", device={"platform": "huawei", "device_token": "t10"}),
            False,
        ),
        "no identifiers, a device": (
            {"insider_id": "nobody-3", "devices": [{"platform": "ios", "device_token": "t13"}]},
            False,
        ),
        "the token of a device without identifiers": (
            user("u13", device={"platform": "ios", "device_token": "t13"}),
            False,
        ),
        "one device twice": (
            user("u12", devices=[{"platform": "ios", "device_token": "t12"}] * 2),
            False,
        ),
    }
    new = bulk_import.select_new(
        db.conn, db.partner_id, [checked(doc) for doc, _ in cases.values()]
    )
    assert dict(zip(cases, new, strict=True)) == {name: want for name, (_, want) in cases.items()}
