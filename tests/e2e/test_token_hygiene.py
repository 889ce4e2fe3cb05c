"""Token hygiene: what a provider's permanent answer about a token does to the device.

providers.md, "Which failures change a device" (revised): only a dead token (APNs 410
`Unregistered`, APNs `BadDeviceToken` on both environments, FCM `UNREGISTERED` or
`INVALID_ARGUMENT` naming `message.token`, HMS illegal token) retires the device, so later requests
report the user as `Unregistered`. An answer about the partner's configuration (APNs
`DeviceTokenNotForTopic`, FCM `SENDER_ID_MISMATCH`) fails that push with its fail record and
leaves the device in use. Fail-record names: targeted-push-api.txt, "Fail Records Messages". A new
token for the same udid revives the device (contract.md).
"""

from __future__ import annotations

import re
import time

import pytest

from tests.support.emulated import (
    Control,
    device_token,
    fail_records,
    jobs,
    notification,
    rows,
    wait_jobs_final,
)
from tests.support.server import Partner

# (platform, outcome set at the emulator, fail-record name)
DEAD_TOKENS = [
    ("ios", "Unregistered", "Unregistered"),
    ("ios", "BadDeviceToken", "BadDeviceToken"),
    ("android", "UNREGISTERED", "NotRegistered"),
    ("android", "INVALID_ARGUMENT", "InvalidRegistration"),
    ("huawei", "invalid", "NotRegistered"),
]
CONFIGURATION_ANSWERS = [
    ("ios", "DeviceTokenNotForTopic", "DeviceTokenNotForTopic"),
    ("android", "SENDER_ID_MISMATCH", "MismatchSenderId"),
]
ALL_CASES = DEAD_TOKENS + CONFIGURATION_ANSWERS
# The detail each fail record keeps: the provider's own answer to the outcome set above, as the
# providers word it (emulators/outcomes.py): the APNs body (a 410 with the time the token died,
# `{stamp}`), FCM's `errorCode: message`, HMS's `code: msg`.
DETAILS = {
    ("ios", "Unregistered"): '{{"reason":"Unregistered","timestamp":{stamp}}}',
    ("ios", "BadDeviceToken"): '{{"reason":"BadDeviceToken"}} [refused on both environments]',
    ("ios", "DeviceTokenNotForTopic"): '{{"reason":"DeviceTokenNotForTopic"}}',
    ("android", "UNREGISTERED"): "UNREGISTERED: Requested entity was not found.",
    ("android", "INVALID_ARGUMENT"): (
        "INVALID_ARGUMENT: The registration token is not a valid FCM registration token"
    ),
    ("android", "SENDER_ID_MISMATCH"): "SENDER_ID_MISMATCH: SenderId mismatch",
    ("huawei", "invalid"): "80300007: All the tokens are invalid",
}


@pytest.fixture
def partner(shared_partner: Partner) -> Partner:
    """One partner for the module; each test uses its own users and tokens."""
    return shared_partner


def ids(case: tuple[str, str, str]) -> str:
    return f"{case[0]}-{case[1]}"


class User:
    """A user with one device (with a udid) on `platform`."""

    def __init__(self, partner: Partner, platform: str) -> None:
        self.partner = partner
        self.platform = platform
        self.token = device_token(platform)
        self.uuid = f"hyg-{platform}-{self.token[-10:]}"
        self.udid = f"UDID-{self.token[-10:]}"
        self.register(self.token)

    def register(self, token: str) -> None:
        self.token = token
        self.partner.session({"uuid": self.uuid}, self.platform, token, udid=self.udid)

    def push(self, camp_id: int) -> dict[str, object]:
        r = self.partner.push({"notifications": [notification(self.uuid, camp_id=camp_id)]})
        assert r.status_code == 200, r.text
        return dict(r.json())


def fail_once(partner: Partner, emulator: Control, platform: str, outcome: str) -> User:
    """A user whose token the provider answers with `outcome`; pushes once and waits for the
    job to settle."""
    user = User(partner, platform)
    emulator.token_outcome(platform, user.token, outcome)
    body = user.push(camp_id=1)
    assert body["successes"] == [{"INSIDER.device_token": user.token}], body
    wait_jobs_final(partner, 1, timeout=10, tokens=[user.token])
    return user


@pytest.mark.parametrize(("platform", "outcome", "reason"), ALL_CASES, ids=map(ids, ALL_CASES))
def test_permanent_token_failure_writes_a_fail_record_with_its_report_name(
    partner: Partner, emulator: Control, platform: str, outcome: str, reason: str
) -> None:
    set_from_ms = time.time_ns() // 1_000_000
    user = fail_once(partner, emulator, platform, outcome)
    set_by_ms = time.time_ns() // 1_000_000

    (job,) = jobs(partner, [user.token])
    assert job["state"] == "failed", job
    assert job["attempts"] == 1, job  # permanent: not retried
    (record,) = fail_records(partner, [user.token])
    detail = str(record["detail"])
    # APNs says when the token died: the moment this test set the outcome.
    found = re.search(r'"timestamp":(\d+)', detail) if outcome == "Unregistered" else None
    stamp = found.group(1) if found else ""
    if found:
        assert set_from_ms <= int(stamp) <= set_by_ms, (set_from_ms, detail, set_by_ms)
    assert record == {
        "job_id": job["id"],
        "platform": platform,
        "token": user.token,
        "reason": reason,
        "detail": DETAILS[platform, outcome].format(stamp=stamp),
    }
    assert emulator.deliveries(token=user.token) == []


@pytest.mark.parametrize(("platform", "outcome", "reason"), DEAD_TOKENS, ids=map(ids, DEAD_TOKENS))
def test_dead_token_makes_the_next_request_report_the_user_unregistered(
    partner: Partner, emulator: Control, platform: str, outcome: str, reason: str
) -> None:
    user = fail_once(partner, emulator, platform, outcome)

    body = user.push(camp_id=2)

    assert body == {"successes": [], "errors": {"Unregistered": [{"uuid": user.uuid}]}}
    assert len(jobs(partner, [user.token])) == 1  # nothing queued for the dead token


@pytest.mark.parametrize(
    ("platform", "outcome", "reason"),
    CONFIGURATION_ANSWERS,
    ids=map(ids, CONFIGURATION_ANSWERS),
)
def test_configuration_answer_fails_the_push_and_keeps_the_device(
    partner: Partner, emulator: Control, platform: str, outcome: str, reason: str
) -> None:
    user = fail_once(partner, emulator, platform, outcome)
    # The partner fixes the configuration: the same device gets the next push.
    emulator.token_outcome(platform, user.token, "ok")

    body = user.push(camp_id=2)

    assert body == {"successes": [{"INSIDER.device_token": user.token}], "errors": {}}
    emulator.wait_delivered([user.token], timeout=10)
    settled = wait_jobs_final(partner, 2, timeout=10, tokens=[user.token])
    assert [j["state"] for j in settled] == ["failed", "done"]


@pytest.mark.parametrize(("platform", "outcome", "reason"), ALL_CASES, ids=map(ids, ALL_CASES))
def test_new_session_with_a_new_token_makes_the_user_reachable_again(
    partner: Partner, emulator: Control, platform: str, outcome: str, reason: str
) -> None:
    user = fail_once(partner, emulator, platform, outcome)
    old_token = user.token

    user.register(device_token(platform))
    body = user.push(camp_id=2)

    assert body == {"successes": [{"INSIDER.device_token": user.token}], "errors": {}}
    emulator.wait_delivered([user.token], timeout=10)
    settled = wait_jobs_final(partner, 2, timeout=10, tokens=[old_token, user.token])
    assert [(j["token"], j["state"]) for j in settled] == [
        (old_token, "failed"),
        (user.token, "done"),
    ]
    assert emulator.deliveries(token=old_token) == []


def test_apns_410_older_than_the_token_registration_keeps_the_device(
    partner: Partner, emulator: Control
) -> None:
    """providers.md: mark the device unregistered only if the 410 timestamp is later than the
    token's last registration."""
    token = device_token("ios")
    emulator.token_outcome("ios", token, "Unregistered")  # the 410 timestamp: now
    time.sleep(0.05)
    uuid = f"reinstalled-{token[-8:]}"
    partner.session({"uuid": uuid}, "ios", token, udid=f"UDID-{token[-8:]}")  # registered later

    r = partner.push({"notifications": [notification(uuid, camp_id=1)]})
    assert r.status_code == 200, r.text
    wait_jobs_final(partner, 1, timeout=10, tokens=[token])
    assert [f["reason"] for f in fail_records(partner, [token])] == ["Unregistered"]

    r = partner.push({"notifications": [notification(uuid, camp_id=2)]})
    assert r.json() == {"successes": [{"INSIDER.device_token": token}], "errors": {}}


def test_apns_expired_token_makes_the_user_unregistered(
    partner: Partner, emulator: Control
) -> None:
    """providers.md: APNs 410 `ExpiredToken` proves the token dead, like `Unregistered`."""
    user = fail_once(partner, emulator, "ios", "ExpiredToken")

    assert [j["state"] for j in jobs(partner, [user.token])] == ["failed"]
    assert len(fail_records(partner, [user.token])) == 1
    body = user.push(camp_id=2)
    assert body == {"successes": [], "errors": {"Unregistered": [{"uuid": user.uuid}]}}


def test_dead_token_moves_the_next_push_to_the_users_other_live_device(
    partner: Partner, emulator: Control
) -> None:
    """contract.md: the push goes to the user's most recently active device that is opted in
    and registered."""
    older = User(partner, "android")
    newer_token = device_token("ios")
    partner.session({"uuid": older.uuid}, "ios", newer_token, udid=f"UDID-{newer_token[-10:]}")
    emulator.token_outcome("ios", newer_token, "Unregistered")
    assert older.push(camp_id=1)["successes"] == [{"INSIDER.device_token": newer_token}]
    wait_jobs_final(partner, 1, timeout=10, tokens=[newer_token])

    body = older.push(camp_id=2)

    assert body == {"successes": [{"INSIDER.device_token": older.token}], "errors": {}}
    emulator.wait_delivered([older.token], timeout=10)
    assert emulator.deliveries(token=newer_token) == []


def test_a_token_of_the_other_apns_environment_is_delivered_there_and_the_device_corrected(
    partner: Partner, emulator: Control
) -> None:
    """providers.md: BadDeviceToken may mean the token belongs to the other environment; send
    once more there, and if it is accepted, correct the device's environment."""
    user = User(partner, "ios")  # registered by the app as production
    emulator.token_environment(user.token, "sandbox")

    first = user.push(camp_id=1)
    assert first["successes"] == [{"INSIDER.device_token": user.token}], first
    emulator.wait_delivered([user.token], timeout=10)
    assert [j["state"] for j in wait_jobs_final(partner, 1, 10, [user.token])] == ["done"]
    assert fail_records(partner, [user.token]) == []
    (device,) = rows(
        partner.server, "SELECT environment, status FROM devices WHERE token = ?", user.token
    )
    assert device == {"environment": "sandbox", "status": "active"}

    # The next push goes to the sandbox first: were the token now production's again, it is
    # corrected back, which only happens when the sandbox refused it.
    emulator.token_environment(user.token, "production")
    emulator.clear_deliveries()
    user.push(camp_id=2)
    emulator.wait_delivered([user.token], timeout=10)
    assert [j["state"] for j in wait_jobs_final(partner, 2, 10, [user.token])] == ["done", "done"]
    (device,) = rows(
        partner.server, "SELECT environment, status FROM devices WHERE token = ?", user.token
    )
    assert device == {"environment": "production", "status": "active"}
