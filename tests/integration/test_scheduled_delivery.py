"""Scheduled and local-time delivery, quiet hours and cancelling a campaign (contract.md,
"Scheduled and local-time delivery, quiet hours, cancel"), against the real service on both
backends: what is queued and when, what the emulators receive and when, and what the
statistics say."""

from __future__ import annotations

import datetime
import subprocess
import time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support.emulated import Control, received_at, wait_for
from tests.support.pushes import (
    SETTINGS_DELAY,
    assert_nothing_recorded,
    jobs,
    notification,
    partner_id,
    push_one,
    query,
    upsert_user,
)
from tests.support.server import Partner, Server

DAY = 86_400


@pytest.fixture
def control(server: Server) -> Any:
    found = Control(server.base_url)
    yield found
    found.close()


def user(partner: Partner, name: str, **device: Any) -> tuple[dict[str, str], str]:
    """A user with one iOS device; returns its identifiers and device token."""
    token = f"{time.time_ns():064x}"[-64:]
    identifiers = {"uuid": f"{name}-{time.time_ns()}"}
    partner.session(identifiers, platform="ios", token=token, **device)
    return identifiers, token


def report(partner: Partner, camp_id: int) -> dict[str, Any]:
    r = partner.server.client.get(
        f"/api/v1/campaigns/{camp_id}/report", headers={"X-API-KEY": partner.api_key}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def listed(partner: Partner, camp_id: int) -> dict[str, Any]:
    r = partner.server.client.get("/api/v1/campaigns", headers={"X-API-KEY": partner.api_key})
    assert r.status_code == 200, r.text
    (entry,) = [c for c in r.json()["campaigns"] if c["camp_id"] == camp_id]
    return dict(entry)


def statistics(partner: Partner, camp_id: int) -> dict[str, Any]:
    r = partner.server.client.post(
        "/api/v1/notification/get_statistics", json={"api_key": partner.api_key}
    )
    assert r.status_code == 200, r.text
    (entry,) = [c for c in r.json()["campaigns"] if c["id"] == camp_id]
    return dict(entry)


def cancel(partner: Partner, camp_id: int | str) -> httpx.Response:
    return partner.server.client.post(
        f"/api/v1/campaigns/{camp_id}/cancel", headers={"X-API-KEY": partner.api_key}
    )


def job_of(partner: Partner, token: str) -> dict[str, Any]:
    (job,) = [j for j in jobs(partner) if j["token"] == token]
    return job


def refused_update(partner: Partner, *args: str) -> subprocess.CompletedProcess[str]:
    """`pushgate partners update` with settings it should refuse (Partner.update expects
    success)."""
    server = partner.server
    return server.cli(
        "partners", "update", partner.name, "--data-dir", str(server.data_dir), *args, check=False
    )


def not_held(job: dict[str, Any], before: float) -> bool:
    """Due at once: a worker may have leased it already (a lease moves `due_at` to its end)."""
    return job["state"] in ("leased", "done") or job["due_at"] <= before + 5


def hhmm(epoch: float, zone: str) -> tuple[int, int]:
    local = datetime.datetime.fromtimestamp(epoch, ZoneInfo(zone))
    return local.hour, local.minute


# ---- send_at ----


def test_a_push_with_send_at_is_sent_within_a_second_of_it_and_not_before(
    partner: Partner, control: Control
) -> None:
    identifiers, token = user(partner, "later")
    send_at = time.time() + 3
    r = push_one(partner, identifiers, camp_id=11, send_at=send_at, ttl=600)
    assert r.status_code == 200, r.text
    assert r.json()["successes"][0]["INSIDER.device_token"] == token
    job = job_of(partner, token)
    assert job["due_at"] == pytest.approx(send_at, abs=1e-3)
    assert job["expires_at"] == pytest.approx(send_at + 600, abs=1e-3)  # TTL from the due time
    assert report(partner, 11)["funnel"]["scheduled"] == 1
    assert listed(partner, 11)["scheduled"] == 1
    assert statistics(partner, 11)["scheduled_count"] == 1
    time.sleep(max(0.0, send_at - time.time() - 0.5))
    assert control.deliveries(token=token) == []
    (delivery,) = wait_for(lambda: control.deliveries(token=token), timeout=10)
    assert send_at <= received_at(delivery) + 0.01 < send_at + 1.0
    assert report(partner, 11)["funnel"]["scheduled"] == 0


def test_send_at_as_rfc3339_with_an_offset_is_that_instant(partner: Partner) -> None:
    identifiers, token = user(partner, "rfc")
    when = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    when = (when + datetime.timedelta(hours=2)).replace(microsecond=0)
    r = push_one(partner, identifiers, camp_id=12, send_at=when.isoformat())
    assert r.status_code == 200, r.text
    assert job_of(partner, token)["due_at"] == pytest.approx(when.timestamp(), abs=1e-3)


def test_send_at_in_the_past_is_sent_now(partner: Partner, control: Control) -> None:
    identifiers, token = user(partner, "past")
    before = time.time()
    r = push_one(partner, identifiers, camp_id=13, send_at=int(before) - 3600)
    assert r.status_code == 200, r.text
    assert wait_for(lambda: control.deliveries(token=token), timeout=10)
    assert job_of(partner, token)["due_at"] >= before - 1


@pytest.mark.parametrize(
    "fields",
    [
        {"send_at": "in 31 days"},
        {"send_at": "2026-12-08T09:00:00"},  # no offset
        {"send_at": True},
        {"send_at": {"at": 1}},
        {"local_time": "25:00"},
        {"local_time": "9:00"},
        {"local_time": 900},
        {"send_at": 1, "local_time": "09:00"},  # both
    ],
    ids=lambda f: repr(f),
)
def test_bad_timing_is_refused_as_invalid_send_at_and_nothing_is_queued(
    partner: Partner, fields: dict[str, Any]
) -> None:
    identifiers, _ = user(partner, "bad")
    if fields.get("send_at") == "in 31 days":
        fields = {"send_at": time.time() + 31 * DAY}
    before = len(jobs(partner))
    r = push_one(partner, identifiers, camp_id=14, **fields)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_send_at"
    assert set(r.json()) == {"error", "message"}
    assert len(jobs(partner)) == before
    assert (
        query(
            partner,
            "SELECT count(*) FROM campaigns WHERE partner_id = ? AND camp_id = 14",
            partner_id(partner),
        )[0][0]
        == 0
    )


def test_thirty_days_ahead_is_accepted_and_a_second_more_is_not(server: Server) -> None:
    partner = server.create_partner()
    identifiers, _ = user(partner, "edge")
    r = push_one(partner, identifiers, camp_id=15, send_at=time.time() + 30 * DAY - 5)
    assert r.status_code == 200, r.text
    r = push_one(partner, identifiers, camp_id=15, send_at=time.time() + 30 * DAY + 5)
    assert r.status_code == 400 and r.json()["error"] == "invalid_send_at", r.text


def test_a_refused_request_records_nothing(server: Server) -> None:
    partner = server.create_partner()
    identifiers, _ = user(partner, "nothing")
    before = query(partner, "SELECT count(*) FROM jobs WHERE partner_id = ?", partner_id(partner))
    r = partner.push(
        {
            "notifications": [
                notification(identifiers, camp_id=16),
                notification(identifiers, camp_id=17, send_at=time.time() + 40 * DAY),
            ]
        }
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_send_at", r.text
    after = query(partner, "SELECT count(*) FROM jobs WHERE partner_id = ?", partner_id(partner))
    assert after == before


def test_an_async_request_keeps_its_send_at(partner: Partner) -> None:
    identifiers, token = user(partner, "async")
    send_at = time.time() + 3600
    r = partner.push(
        {"async": True, "notifications": [notification(identifiers, camp_id=18, send_at=send_at)]}
    )
    assert r.status_code == 202, r.text
    assert wait_for(lambda: [j for j in jobs(partner) if j["token"] == token], timeout=10)
    assert job_of(partner, token)["due_at"] == pytest.approx(send_at, abs=1e-3)


# ---- local_time and the user's zone ----


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham"])
def test_local_time_is_the_next_time_the_devices_own_clock_shows_it(
    partner: Partner, zone: str
) -> None:
    identifiers, token = user(partner, "local", timezone=zone)
    now = time.time()
    hour, minute = hhmm(now + 3 * 3600, zone)
    r = push_one(partner, identifiers, camp_id=21, local_time=f"{hour:02d}:{minute:02d}")
    assert r.status_code == 200, r.text
    due = job_of(partner, token)["due_at"]
    assert hhmm(due, zone) == (hour, minute)
    assert now + 3 * 3600 - 120 < due <= now + 3 * 3600 + 60
    assert datetime.datetime.fromtimestamp(due, ZoneInfo(zone)).second == 0


def test_local_time_earlier_today_is_tomorrow(partner: Partner) -> None:
    zone = "Europe/Istanbul"  # no daylight saving: a day is 24 hours
    identifiers, token = user(partner, "tomorrow", timezone=zone)
    now = time.time()
    hour, minute = hhmm(now - 2 * 3600, zone)
    r = push_one(partner, identifiers, camp_id=22, local_time=f"{hour:02d}:{minute:02d}")
    assert r.status_code == 200, r.text
    due = job_of(partner, token)["due_at"]
    assert hhmm(due, zone) == (hour, minute)
    assert now + 22 * 3600 - 120 < due <= now + 22 * 3600 + 60


def test_the_zone_falls_back_from_device_to_profile_to_partner_to_utc(
    server: Server,
) -> None:
    partner = server.create_partner()
    now = time.time()
    target = now + 5 * 3600

    def due_for(identifiers: dict[str, str], token: str, zone: str, camp: int) -> None:
        hour, minute = hhmm(target, zone)
        r = push_one(partner, identifiers, camp_id=camp, local_time=f"{hour:02d}:{minute:02d}")
        assert r.status_code == 200, r.text
        due = job_of(partner, token)["due_at"]
        assert hhmm(due, zone) == (hour, minute)
        assert abs(due - target) < 120, (zone, due - target)

    # No zone anywhere: UTC.
    ids, token = user(partner, "utc")
    due_for(ids, token, "UTC", 31)
    # An unknown zone on the device is skipped; the profile's `timezone` attribute is used.
    ids, token = user(partner, "profile", timezone="Mars/Olympus_Mons")
    upsert_user(partner, ids, timezone="Asia/Tokyo")
    due_for(ids, token, "Asia/Tokyo", 32)
    # The partner's zone for a user whose own is unknown.
    partner.update("--timezone", "America/Sao_Paulo")
    time.sleep(SETTINGS_DELAY)
    ids, token = user(partner, "partner", timezone="../../etc/passwd")
    due_for(ids, token, "America/Sao_Paulo", 33)
    # The device's own zone first of all.
    ids, token = user(partner, "device", timezone="Australia/Adelaide")
    upsert_user(partner, ids, timezone="Asia/Tokyo")
    due_for(ids, token, "Australia/Adelaide", 34)


def test_an_unknown_partner_zone_is_refused_by_the_cli(partner: Partner) -> None:
    done = refused_update(partner, "--timezone", "Nowhere/Special")
    assert done.returncode != 0
    assert "Nowhere/Special" in done.stderr and "Traceback" not in done.stderr


# ---- quiet hours ----


def quiet_window_around(now: float, zone: str) -> tuple[str, float]:
    """A window that holds `now` on the zone's clock, ending about two hours later; and the
    instant it ends."""
    start_h, start_m = hhmm(now - 3600, zone)
    end_at = now + 2 * 3600
    end_h, end_m = hhmm(end_at, zone)
    local_end = datetime.datetime.fromtimestamp(end_at, ZoneInfo(zone)).replace(
        second=0, microsecond=0
    )
    return f"{start_h:02d}:{start_m:02d}-{end_h:02d}:{end_m:02d}", local_end.timestamp()


def test_a_push_due_in_quiet_hours_waits_until_they_end(
    server: Server,
) -> None:
    partner = server.create_partner()
    zone = "Asia/Kolkata"
    window, ends = quiet_window_around(time.time(), zone)
    answer = partner.update("--quiet-hours", window)
    assert answer["quiet_hours"] == window
    time.sleep(SETTINGS_DELAY)
    identifiers, token = user(partner, "quiet", timezone=zone)
    r = push_one(partner, identifiers, camp_id=41)
    assert r.status_code == 200, r.text
    assert job_of(partner, token)["due_at"] == pytest.approx(ends, abs=1e-3)
    # Unless the notification says otherwise.
    identifiers, token = user(partner, "loud", timezone=zone)
    before = time.time()
    r = push_one(partner, identifiers, camp_id=42, ignore_quiet_hours=True)
    assert r.status_code == 200, r.text
    assert not_held(job_of(partner, token), before)
    # A user whose clock is outside the window is not held.
    identifiers, token = user(partner, "elsewhere", timezone="America/Los_Angeles")
    outside = hhmm(time.time(), "America/Los_Angeles")
    start, end = window.split("-")
    if not (start <= f"{outside[0]:02d}:{outside[1]:02d}" < end):
        before = time.time()
        push_one(partner, identifiers, camp_id=43)
        assert not_held(job_of(partner, token), before)
    assert partner.update("--quiet-hours", "off")["quiet_hours"] == "off"
    time.sleep(SETTINGS_DELAY)
    identifiers, token = user(partner, "after", timezone=zone)
    before = time.time()
    push_one(partner, identifiers, camp_id=44)
    assert not_held(job_of(partner, token), before)


def test_a_malformed_quiet_hours_window_is_one_line_from_the_cli(partner: Partner) -> None:
    done = refused_update(partner, "--quiet-hours", "22:00-22:00")
    assert done.returncode != 0 and "--quiet-hours" in done.stderr
    assert "Traceback" not in done.stderr


# ---- cancel ----


def test_cancel_stops_every_waiting_push_and_counts_them_failed_cancelled(
    server: Server, control: Control
) -> None:
    partner = server.create_partner()
    tokens = []
    later = time.time() + 3
    for i in range(5):
        identifiers, token = user(partner, f"c{i}")
        tokens.append(token)
        assert push_one(partner, identifiers, camp_id=51, send_at=later).status_code == 200
    assert report(partner, 51)["funnel"]["scheduled"] == 5
    r = cancel(partner, 51)
    assert r.status_code == 200, r.text
    assert r.json() == {"camp_id": 51, "cancelled": 5}
    funnel = report(partner, 51)["funnel"]
    assert funnel["scheduled"] == 0
    assert funnel["cancelled"] == 5 and funnel["failed"] == 5 and funnel["pending"] == 0
    (record,) = report(partner, 51)["fail_records"]
    assert record["name"] == "Cancelled" and record["count"] == 5
    assert listed(partner, 51)["cancelled"] == 5
    assert statistics(partner, 51)["cancelled_count"] == 5
    assert {j["state"] for j in jobs(partner)} == {"failed"}
    time.sleep(max(0.0, later - time.time()) + 1.5)
    assert all(control.deliveries(token=t) == [] for t in tokens)
    # Again: nothing left to cancel.
    assert cancel(partner, 51).json() == {"camp_id": 51, "cancelled": 0}


def test_cancel_leaves_what_was_sent_and_other_campaigns_alone(
    server: Server, control: Control
) -> None:
    partner = server.create_partner()
    sent_ids, sent = user(partner, "sent")
    assert push_one(partner, sent_ids, camp_id=61).status_code == 200
    assert wait_for(lambda: control.deliveries(token=sent), timeout=10)
    waiting_ids, _ = user(partner, "waiting")
    assert push_one(partner, waiting_ids, camp_id=61, send_at=time.time() + 600).status_code == 200
    other_ids, other = user(partner, "other")
    assert push_one(partner, other_ids, camp_id=62, send_at=time.time() + 600).status_code == 200
    assert cancel(partner, 61).json() == {"camp_id": 61, "cancelled": 1}
    funnel = report(partner, 61)["funnel"]
    assert funnel["accepted"] == 1 and funnel["cancelled"] == 1
    assert report(partner, 62)["funnel"]["scheduled"] == 1
    assert job_of(partner, other)["state"] == "queued"


def test_cancel_of_an_unknown_campaign_is_404_and_needs_the_api_key(partner: Partner) -> None:
    r = cancel(partner, 987654)
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "campaign_not_found"
    r = partner.server.client.post("/api/v1/campaigns/1/cancel", headers={"X-API-KEY": "nope"})
    assert r.status_code == 401
    assert cancel(partner, "abc").status_code == 404


def test_another_partners_campaign_cannot_be_cancelled(server: Server) -> None:
    owner, stranger = server.create_partner(), server.create_partner()
    identifiers, token = user(owner, "owned")
    assert push_one(owner, identifiers, camp_id=71, send_at=time.time() + 600).status_code == 200
    assert cancel(stranger, 71).status_code == 404
    assert job_of(owner, token)["state"] == "queued"
    assert_nothing_recorded(stranger)


def test_cancel_reaches_the_pushes_of_an_async_request_accepted_before_it(
    server: Server,
) -> None:
    partner = server.create_partner()
    tokens = []
    notifications = []
    for i in range(3):
        identifiers, token = user(partner, f"a{i}")
        tokens.append(token)
        notifications.append(notification(identifiers, camp_id=81, send_at=time.time() + 600))
    r = partner.push({"async": True, "notifications": notifications})
    assert r.status_code == 202, r.text
    # At once: the async request may not have queued its pushes yet; the cancel waits for it.
    assert cancel(partner, 81).json() == {"camp_id": 81, "cancelled": 3}
    assert {job_of(partner, t)["last_error"] for t in tokens} == {"Cancelled"}


def test_a_push_being_sent_during_the_cancel_is_not_retried(
    server: Server, control: Control
) -> None:
    partner = server.create_partner()
    identifiers = {"uuid": f"inflight-{time.time_ns()}"}
    token = f"{time.time_ns():x}hms"
    partner.session(identifiers, platform="huawei", token=token)
    # The provider takes a second and a half to answer, and then asks for a retry.
    control.fault("huawei", status=503, rate=1.0, retry_after=1, latency_ms=1500)
    try:
        assert push_one(partner, identifiers, camp_id=91).status_code == 200
        assert wait_for(lambda: job_of(partner, token)["state"] == "leased", timeout=10)
        # Handed to the provider already: not cancelled by the request itself...
        assert cancel(partner, 91).json() == {"camp_id": 91, "cancelled": 0}
        # ...but its retry is: it ends as cancelled rather than being sent again.
        assert wait_for(lambda: job_of(partner, token)["state"] == "failed", timeout=15)
    finally:
        control.clear_faults()
    assert job_of(partner, token)["last_error"] == "Cancelled"
    assert report(partner, 91)["funnel"]["cancelled"] == 1
    time.sleep(1.5)
    assert job_of(partner, token)["attempts"] == 1
