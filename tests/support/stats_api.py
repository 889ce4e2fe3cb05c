"""Clients of the statistics endpoints (docs/statistics.md, insider-ecosystem.md §2 and §3), and
helpers to read their answers."""

from __future__ import annotations

import calendar
import datetime
import time
from typing import Any

import httpx
import pytest

from tests.support.server import Partner

STATISTICS_PATH = "/api/v1/notification/get_statistics"
MESSAGE_CENTER_PATH = "/api/message_center/v1"
EVENTS_PATH = "/api/sdk/v1/events"
CAMPAIGNS_PATH = "/api/v1/campaigns"
ISO_Z = "%Y-%m-%dT%H:%M:%SZ"
ERROR_KEYS = {"error", "message"}
FUNNEL_SUMS = ("requested", "queued", "accepted", "failed", "expired", "delivered", "opened")


def get_statistics(partner: Partner, api_key: str | None = None) -> httpx.Response:
    key = partner.api_key if api_key is None else api_key
    return partner.server.client.post(STATISTICS_PATH, json={"api_key": key})


def report(partner: Partner, camp_id: int | str, api_key: str | None = None) -> httpx.Response:
    key = partner.api_key if api_key is None else api_key
    return partner.server.client.get(
        f"{CAMPAIGNS_PATH}/{camp_id}/report", headers={"X-API-KEY": key}
    )


def report_json(partner: Partner, camp_id: int) -> dict[str, Any]:
    r = report(partner, camp_id)
    assert r.status_code == 200, r.text
    return dict(r.json())


def list_campaigns(partner: Partner, api_key: str | None = None, **params: Any) -> httpx.Response:
    key = partner.api_key if api_key is None else api_key
    return partner.server.client.get(CAMPAIGNS_PATH, params=params, headers={"X-API-KEY": key})


def message_center(
    partner: Partner, body: dict[str, Any] | bytes, api_key: str | None = None
) -> httpx.Response:
    key = partner.api_key if api_key is None else api_key
    headers = {"X-INSIDER-API-KEY": key}
    if isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
        return partner.server.client.post(MESSAGE_CENTER_PATH, content=body, headers=headers)
    return partner.server.client.post(MESSAGE_CENTER_PATH, json=body, headers=headers)


def inbox(partner: Partner, uuid: str, **extra: Any) -> list[dict[str, Any]]:
    """The Message Center entries of the user with this uuid (200 expected)."""
    r = message_center(partner, {"identifiers": {"Uuid": uuid}, **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list), body
    return body


def send_events(
    partner: Partner,
    insider_id: str,
    events: list[dict[str, Any]],
    sdk_key: str | None = None,
) -> httpx.Response:
    key = partner.sdk_key if sdk_key is None else sdk_key
    return partner.server.client.post(
        EVENTS_PATH, json={"insider_id": insider_id, "events": events}, headers={"X-SDK-KEY": key}
    )


def event(name: str, camp_id: Any, timestamp: str | None = None) -> dict[str, Any]:
    return {"event_name": name, "camp_id": camp_id, "timestamp": timestamp or iso(time.time())}


def iso(epoch: float) -> str:
    return time.strftime(ISO_Z, time.gmtime(epoch))


def epoch(stamp: str) -> int:
    """An `...Z` timestamp of the documented shape as epoch seconds (asserting the shape)."""
    parsed = datetime.datetime.strptime(stamp, ISO_Z)
    return calendar.timegm(parsed.timetuple())


def hour_of(epoch_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(epoch_seconds))


def error_code(r: httpx.Response) -> str:
    """The `error` of a `{"error", "message"}` body."""
    body = r.json()
    assert set(body) == ERROR_KEYS, body
    assert isinstance(body["message"], str) and body["message"], body
    return str(body["error"])


def series_sums(rep: dict[str, Any]) -> dict[str, int]:
    return {name: sum(int(h.get(name, 0)) for h in rep["series"]) for name in FUNNEL_SUMS}


def funnel_totals(rep: dict[str, Any]) -> dict[str, int]:
    return {name: int(rep["funnel"][name]) for name in FUNNEL_SUMS}


def settled(rep: dict[str, Any]) -> bool:
    f = rep["funnel"]
    return bool(f["pending"] == 0 and f["accepted"] + f["failed"] + f["expired"] == f["queued"])


def wait_campaign_settled(partner: Partner, camp_id: int, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the campaign's report until nothing is pending; returns the last report."""
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    while True:
        last = report(partner, camp_id)
        if last.status_code == 200 and settled(last.json()):
            return dict(last.json())
        if time.monotonic() >= deadline:
            pytest.fail(
                f"campaign {camp_id} not settled in {timeout} s: {last.status_code} {last.text}"
            )
        time.sleep(0.1)


def wait_next_second(after: float) -> None:
    """Sleep until the wall clock is in a later whole second than `after` (request times in the
    answers have a resolution of one second)."""
    while int(time.time()) <= int(after):
        time.sleep(0.05)
