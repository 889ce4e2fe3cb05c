"""Recording a delivery attempt on a real SQLite file: job, fail record, device, credential."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from pushgate.crypto import SecretBox
from pushgate.delivery import outcome as outcomes
from pushgate.jobs import UPLOADED, NewJob
from pushgate.queue import table as job_table
from pushgate.store import credentials, deliveries
from pushgate.store.executor import connect
from pushgate.store.sqlite_schema import create_schema

WORKER = "w1"


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    c = connect(tmp_path / "db.sqlite3")
    create_schema(c)
    now = time.time()
    c.execute(
        "INSERT INTO partners (id, name, api_key_hash, request_token_hash, sdk_key_hash, rate_limit,"
        " advanced_rate_limit, gfc_limit, gfc_window, created_at, updated_at)"
        " VALUES (1, 'p', x'01', x'02', x'03', 10, 10, 0, 86400, ?, ?)",
        (now, now),
    )
    c.execute(
        "INSERT INTO profiles (id, partner_id, insider_id, created_at, updated_at) VALUES (1, 1, 'I', ?, ?)",
        (now, now),
    )
    c.execute(
        "INSERT INTO devices (id, partner_id, profile_id, platform, token, environment, push_optin,"
        " token_registered_at, last_active_at) VALUES (1, 1, 1, 'ios', 'tok', 'production', 1, ?, ?)",
        (now - 100, now),
    )
    credentials.put(c, SecretBox(b"k" * 32), 1, "ios", UPLOADED, {"a": 1}, ref=None, validated=True)
    job_table.enqueue(
        c, [NewJob(1, 7, 1, 1, "ios", "tok", "production", b"{}", "alert", 10, now + 60)], now
    )
    return c


def claim_one(conn: sqlite3.Connection) -> job_table.Job:
    (job,) = job_table.claim(conn, WORKER, 1, 30, time.time())
    return job


def test_credential_failure_fails_the_job_and_invalidates_the_credential(
    conn: sqlite3.Connection,
) -> None:
    job = claim_one(conn)
    result = outcomes.decide(
        job, "credential", "InvalidProviderToken", now=time.time(), detail="403"
    )
    assert deliveries.record(conn, job, WORKER, result, time.time())
    assert conn.execute("SELECT validated FROM credentials").fetchone() == (0,)
    assert conn.execute("SELECT state FROM jobs").fetchone() == ("failed",)
    assert conn.execute("SELECT reason FROM fail_records").fetchall() == [("InvalidCertificate",)]


def test_apns_410_older_than_the_tokens_registration_keeps_the_device(
    conn: sqlite3.Connection,
) -> None:
    job = claim_one(conn)
    registered_ms = int(
        conn.execute("SELECT token_registered_at FROM devices").fetchone()[0] * 1000
    )
    stale = outcomes.decide(
        job, "dead_token", "Unregistered", now=time.time(), timestamp_ms=registered_ms - 5000
    )
    assert deliveries.record(conn, job, WORKER, stale, time.time())
    assert conn.execute("SELECT status FROM devices").fetchone() == ("active",)


def test_a_worker_that_lost_the_lease_records_nothing(conn: sqlite3.Connection) -> None:
    job = claim_one(conn)
    result = outcomes.decide(job, "dead_token", "Unregistered", now=time.time())
    assert not deliveries.record(conn, job, "another-worker", result, time.time())
    assert conn.execute("SELECT count(*) FROM fail_records").fetchone() == (0,)
    assert conn.execute("SELECT status FROM devices").fetchone() == ("active",)


@pytest.mark.parametrize("reason", ["DeviceTokenNotForTopic", "BadCertificateEnvironment"])
def test_a_configuration_answer_fails_the_push_and_keeps_the_device(
    conn: sqlite3.Connection, reason: str
) -> None:
    job = claim_one(conn)
    result = outcomes.decide(job, "rejected", reason, now=time.time())
    assert deliveries.record(conn, job, WORKER, result, time.time())
    assert conn.execute("SELECT state FROM jobs").fetchone() == ("failed",)
    assert conn.execute("SELECT reason FROM fail_records").fetchall() == [(reason,)]
    assert conn.execute("SELECT status FROM devices").fetchone() == ("active",)


def test_a_token_found_on_the_other_environment_corrects_the_device(
    conn: sqlite3.Connection,
) -> None:
    job = claim_one(conn)
    result = outcomes.decide(job, "ok", "", now=time.time(), environment="sandbox")
    assert deliveries.record(conn, job, WORKER, result, time.time())
    assert conn.execute("SELECT state FROM jobs").fetchone() == ("done",)
    assert conn.execute("SELECT environment, status FROM devices").fetchone() == (
        "sandbox",
        "active",
    )


@pytest.mark.parametrize(
    ("reason", "revived"),
    [
        ("DeviceTokenNotForTopic", True),
        ("MismatchSenderId", True),
        ("BadDeviceToken", False),
        ("InvalidRegistration", False),
    ],
)
def test_a_new_credential_brings_back_devices_retired_for_configuration_answers(
    conn: sqlite3.Connection, reason: str, revived: bool
) -> None:
    # Earlier versions retired devices on configuration answers (status 'invalid').
    conn.execute("UPDATE devices SET status = 'invalid', status_reason = ?", (reason,))
    box = SecretBox(b"k" * 32)
    credentials.put(conn, box, 1, "android", UPLOADED, {"b": 1}, ref=None, validated=True)
    assert conn.execute("SELECT status FROM devices").fetchone() == ("invalid",)  # other platform
    credentials.put(conn, box, 1, "ios", UPLOADED, {"a": 2}, ref=None, validated=False)
    assert conn.execute("SELECT status FROM devices").fetchone() == ("invalid",)  # not usable
    credentials.put(conn, box, 1, "ios", UPLOADED, {"a": 2}, ref=None, validated=True)
    expected = ("active", None) if revived else ("invalid", reason)
    assert conn.execute("SELECT status, status_reason FROM devices").fetchone() == expected
