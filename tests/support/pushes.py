"""Shared helpers for the Targeted Push API tests: request builders and database reads."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx

from tests.support.server import Partner

PUSH_PATH = "/api/v2/notification/user"
# The server caches partner settings for 2 s; settings changes are visible after this.
SETTINGS_DELAY = 2.5
ERROR_KEYS = {"error", "message"}
# A job is written 'queued' before the answer (contract.md: "durably queued"); once delivery
# workers run, one may already have leased or delivered it by the time a test reads the row.
QUEUED_OR_LATER = ("queued", "leased", "done")
TABLES = (
    "jobs",
    "campaigns",
    "campaign_variants",
    "campaign_stats",
    "gfc_counters",
    "async_requests",
)


def notification(identifiers: dict[str, Any] | None, camp_id: int = 1, **extra: Any) -> dict:
    """A minimal valid notification object (all required fields of the spec)."""
    body: dict[str, Any] = {
        "camp_id": camp_id,
        "camp_name": "Campaign name",
        "title": "A title",
        "message": "A message",
        "image_url": "https://img.example.com/i.jpg",
        **extra,
    }
    if identifiers is not None:
        body["identifiers"] = identifiers
    return body


def push_one(partner: Partner, identifiers: dict[str, Any], **extra: Any) -> httpx.Response:
    return partner.push({"notifications": [notification(identifiers, **extra)]})


def query(partner: Partner, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(partner.server.db()) as conn:
        return list(conn.execute(sql, params).fetchall())


def execute(partner: Partner, sql: str, *params: Any) -> int:
    with contextlib.closing(partner.server.db()) as conn:
        return conn.execute(sql, params).rowcount


def partner_id(partner: Partner) -> int:
    (row,) = query(partner, "SELECT id FROM partners WHERE name = ?", partner.name)
    return int(row[0])


def jobs(partner: Partner) -> list[dict[str, Any]]:
    with contextlib.closing(partner.server.db()) as conn:
        cursor = conn.execute(
            "SELECT * FROM jobs WHERE partner_id = ? ORDER BY id", (partner_id(partner),)
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def campaigns(partner: Partner) -> list[dict[str, Any]]:
    with contextlib.closing(partner.server.db()) as conn:
        cursor = conn.execute(
            "SELECT * FROM campaigns WHERE partner_id = ? ORDER BY camp_id", (partner_id(partner),)
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            counters = dict(
                conn.execute(
                    "SELECT name, sum(count) FROM campaign_stats WHERE partner_id = ? AND camp_id = ?"
                    " GROUP BY name",
                    (row["partner_id"], row["camp_id"]),
                ).fetchall()
            )
            row["counters"] = counters
            row["requested_count"] = counters.get("requested", 0)
        return rows


def row_counts(partner: Partner) -> dict[str, int]:
    pid = partner_id(partner)
    return {
        table: int(query(partner, f"SELECT count(*) FROM {table} WHERE partner_id = ?", pid)[0][0])
        for table in TABLES
    }


def assert_nothing_recorded(partner: Partner) -> None:
    assert row_counts(partner) == dict.fromkeys(TABLES, 0)


def set_device_status(partner: Partner, token: str, status: str) -> None:
    changed = execute(
        partner,
        "UPDATE devices SET status = ? WHERE partner_id = ? AND token = ?",
        status,
        partner_id(partner),
        token,
    )
    assert changed == 1


def upsert_user(partner: Partner, identifiers: dict[str, Any], **attributes: Any) -> None:
    r = partner.user_api(
        "upsert", {"users": [{"identifiers": identifiers, "attributes": attributes or {"x": 1}}]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["successful"]["count"] == 1, r.text


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())
