"""Data lifecycle: deleting a user (`/api/user/v1/delete`) erases everything that names the
person (devices, identifiers, Message Center entries, delivery jobs with their tokens and
payloads, the tokens in fail records, the frequency-cap counter) while the campaigns keep their
counts: a push still waiting for its retry is counted as failed with `UserDeleted`."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.support.emulated import (
    Control,
    jobs,
    notification,
    partner_id,
    rows,
    wait_for,
    wait_jobs_final,
)
from tests.support.server import Partner, Server
from tests.support.stats_api import inbox, report_json

pytestmark = pytest.mark.usefixtures("backend")

# Every table that could hold a person's data, and its columns that could hold the token.
TOKEN_COLUMNS = {"devices": "token", "jobs": "token", "fail_records": "token"}


def uid() -> str:
    return f"erase-{os.urandom(6).hex()}"


def profile_rows(server: Server, profile: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, column in (
        ("profiles", "id"),
        ("identifiers", "profile_id"),
        ("devices", "profile_id"),
        ("events", "profile_id"),
        ("inbox", "profile_id"),
        ("jobs", "profile_id"),
        ("fail_records", "profile_id"),
        ("gfc_counters", "profile_id"),
    ):
        counts[table] = rows(
            server, f"SELECT count(*) AS n FROM {table} WHERE {column} = ?", profile
        )[0]["n"]
    return counts


def token_rows(server: Server, tokens: list[str]) -> dict[str, int]:
    marks = ",".join("?" * len(tokens))
    return {
        table: rows(
            server, f"SELECT count(*) AS n FROM {table} WHERE {column} IN ({marks})", *tokens
        )[0]["n"]
        for table, column in TOKEN_COLUMNS.items()
    }


def push_one(partner: Partner, uuid: str, camp_id: int) -> dict[str, Any]:
    r = partner.push({"notifications": [notification(uuid, camp_id)]})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_deleting_a_user_erases_the_person_and_keeps_the_campaign_counts(
    server: Server, partner: Partner, emulator: Control
) -> None:
    partner.update("--gfc-limit", "100", "--gfc-window", "1d")  # so a cap counter exists
    u = uid()
    first, second = os.urandom(32).hex(), os.urandom(32).hex()
    partner.session({"uuid": u, "email": f"{u}@mail.example"}, token=first, udid=u)
    (profile,) = [
        r["id"]
        for r in rows(
            server,
            "SELECT id FROM identifiers i JOIN profiles p ON p.id = i.profile_id WHERE i.value = ?",
            u,
        )
    ]

    # Campaign 1 is delivered: a Message Center entry.
    assert push_one(partner, u, 1)["successes"]
    emulator.wait_delivered([first])
    wait_jobs_final(partner, 1, 10, [first])
    assert wait_for(lambda: inbox(partner, u), 10)

    # Campaign 2 meets an unregistered token: a fail record with the token.
    emulator.token_outcome("ios", first, "Unregistered")
    assert push_one(partner, u, 2)["successes"]
    wait_jobs_final(partner, 2, 10, [first])
    assert token_rows(server, [first])["fail_records"] == 1

    # Campaign 3 waits for its retry (APNs answers 503, retry after 2 minutes): queued.
    partner.session({"uuid": u}, token=second, udid=u)  # a new token revives the device
    emulator.fault("ios", status=503, rate=1.0, retry_after=120)
    assert push_one(partner, u, 3)["successes"]
    assert wait_for(
        lambda: [
            j for j in jobs(partner, [second]) if j["attempts"] >= 1 and j["state"] == "queued"
        ],
        10,
    )
    before = {camp: report_json(partner, camp)["funnel"] for camp in (1, 2, 3)}
    assert before[3]["queued"] == 1

    r = partner.user_api("delete", {"identifiers": {"email": f"{u}@mail.example"}})
    assert r.status_code == 200 and r.json() == {}

    assert profile_rows(server, profile) == dict.fromkeys(
        (
            "profiles",
            "identifiers",
            "devices",
            "events",
            "inbox",
            "jobs",
            "fail_records",
            "gfc_counters",
        ),
        0,
    )
    assert token_rows(server, [first, second]) == dict.fromkeys(TOKEN_COLUMNS, 0)
    # The fail record stays, for the campaign's counts, without the person.
    (record,) = rows(
        server,
        "SELECT profile_id, device_id, token, reason FROM fail_records WHERE partner_id = ?"
        " AND camp_id = 2",
        partner_id(partner),
    )
    assert record == {"profile_id": 0, "device_id": 0, "token": "", "reason": "Unregistered"}
    assert partner.user_api("profile", {"identifiers": {"uuid": u}}).status_code == 404

    after = {camp: report_json(partner, camp) for camp in (1, 2, 3)}
    assert after[1]["funnel"] == before[1]
    assert after[2]["funnel"] == before[2]
    # The waiting push is given up and counted: the funnel still adds up, nothing pending.
    assert after[3]["funnel"]["queued"] == 1
    assert after[3]["funnel"]["failed"] == before[3]["failed"] + 1
    assert after[3]["funnel"].get("pending", 0) == 0
    assert after[3]["fail_records"] == [
        {"name": "UserDeleted", "count": 1, "platforms": {"ios": 1}, "sample_tokens": []}
    ]
    (fails,) = [f for f in after[2]["fail_records"] if f["name"] == "Unregistered"]
    assert fails["count"] == 1
    assert fails["sample_tokens"] == []

    # Nothing more reaches the erased user's device.
    emulator.clear_faults()
    emulator.clear_deliveries()
    r = partner.push({"notifications": [notification(u, 4)]})
    assert r.json()["errors"] == {"NoUserFound": [{"uuid": u}]}
