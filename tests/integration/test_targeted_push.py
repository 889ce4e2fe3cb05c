"""The Targeted Push API's documented happy paths: the seed's sample bodies, the delivery
jobs and campaign rows a send leaves behind, async requests, and device revival.

Source of truth: /work/shared/spec/targeted-push-api.txt, insider-ecosystem.md §1, contract.md.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.pushes import (
    QUEUED_OR_LATER,
    campaigns,
    jobs,
    notification,
    push_one,
    set_device_status,
    upsert_user,
    wait_until,
)
from tests.support.server import Partner
from tests.support.spec import sample_request

# The two sample bodies of targeted-push-api.txt, read from it.
SAMPLE_BODY: dict[str, Any] = sample_request()
ADVANCED_SAMPLE_BODY: dict[str, Any] = sample_request(advanced=True)

SAMPLE_DEVICE: dict[str, Any] = {
    "udid": "98BB170F5078F309288AAC8C4",
    "push_optin": True,
    "location_optin": False,
    "app_version": "4.0",
    "os_version": "14.7.1",
    "model": "iPhone 11",
    "carrier": "mycarrier",
    "sdk_version": "10.6.0-RN-4.0.0",
    "timezone": "Europe/Helsinki",
    "device_language": "en",
    "package_name": "com.useinsider.iGurmeV3",
    "idfa": "AF3CCF3F-0V8E-6571-B296-E9BDFF7",
}


def with_key(sample: dict[str, Any], partner: Partner) -> dict[str, Any]:
    return {**sample, "api_key": partner.api_key}


def without_report_attributes(sample: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sample.items() if k != "report_attributes"}


def register_sample_user(partner: Partner, token: str) -> str:
    identifiers = SAMPLE_BODY["notifications"][0]["identifiers"]
    insider_id = partner.session(identifiers, platform="ios", token=token, **SAMPLE_DEVICE)
    upsert_user(partner, {"email": "sample@mail.com"}, name="John Smith")
    return insider_id


def test_sample_body_with_report_attributes_reports_every_requested_attribute(
    partner: Partner,
) -> None:
    token = "d07951020f3835bbc303084ecda3746170cfb5d696ddcc55b6"
    insider_id = register_sample_user(partner, token)

    r = partner.push(with_key(SAMPLE_BODY, partner))

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errors"] == {}
    # check_optin is true in the sample: contract.md adds the count of users sent to.
    assert body.get("optin_delivery_count") == 1
    assert set(body) == {"successes", "errors", "optin_delivery_count"}
    (success,) = body["successes"]
    assert set(success) == set(SAMPLE_BODY["report_attributes"])
    assert str(success.pop("INSIDER.platform")).lower() == "ios"
    # The SDK sent no address; an implementation may still record the caller's.
    assert success.pop("INSIDER.last_ip") in (None, "127.0.0.1")
    assert success == {
        "INSIDER.age": None,
        "INSIDER.app_version": "4.0",
        "INSIDER.birthday": None,
        "INSIDER.carrier": "mycarrier",
        "INSIDER.device_language": "en",
        "INSIDER.device_token": token,
        "INSIDER.email": "sample@mail.com",
        "INSIDER.email_optin": None,
        "INSIDER.environment": "production",
        "INSIDER.gender": None,
        "INSIDER.idfa": "AF3CCF3F-0V8E-6571-B296-E9BDFF7",
        "INSIDER.insider_id": insider_id,
        "INSIDER.language": None,
        "INSIDER.location_optin": False,
        "INSIDER.model": "iPhone 11",
        "INSIDER.name": "John Smith",
        "INSIDER.os_version": "14.7.1",
        "INSIDER.package_name": "com.useinsider.iGurmeV3",
        "INSIDER.phone_number": "+65123456789",
        "INSIDER.push_optin": True,
        "INSIDER.screen_height": None,
        "INSIDER.screen_width": None,
        "INSIDER.sdk_version": "10.6.0-RN-4.0.0",
        "INSIDER.sms_optin": None,
        "INSIDER.surname": None,
        "INSIDER.timezone": "Europe/Helsinki",
        "INSIDER.udid": "98BB170F5078F309288AAC8C4",
    }


def test_sample_body_without_report_attributes_reports_only_the_device_token(
    partner: Partner,
) -> None:
    token = "d07951020f3084ecd4d3deda3746170cfb5d69672c055b6"
    register_sample_user(partner, token)

    r = partner.push(with_key(without_report_attributes(SAMPLE_BODY), partner))

    assert r.status_code == 200, r.text
    assert r.json() == {
        "successes": [{"INSIDER.device_token": token}],
        "errors": {},
        "optin_delivery_count": 1,
    }


def test_report_attributes_without_device_token_leave_the_token_out(partner: Partner) -> None:
    partner.session({"uuid": "ra-1"}, token="aa" * 32, model="Pixel 8")

    r = partner.push(
        {
            "report_attributes": ["INSIDER.model", "INSIDER.uuid", "INSIDER.surname"],
            "notifications": [notification({"uuid": "ra-1"})],
        }
    )

    assert r.status_code == 200, r.text
    assert r.json() == {
        "successes": [
            {"INSIDER.model": "Pixel 8", "INSIDER.uuid": "ra-1", "INSIDER.surname": None}
        ],
        "errors": {},
    }


def test_advanced_carousel_sample_body_is_sent(partner: Partner) -> None:
    token = "ef" * 32
    # The sample's phone number (+90 and 17 more digits) is not a valid E.164 number, so the
    # SDK registers the user by email and uuid; the push still carries all three identifiers.
    insider_id = partner.session(
        {"INSIDER.email": "example@gmail.com", "INSIDER.uuid": "5971351231234567"},
        platform="ios",
        token=token,
        **SAMPLE_DEVICE,
    )

    r = partner.push(with_key(ADVANCED_SAMPLE_BODY, partner))

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errors"] == {}
    assert body.get("optin_delivery_count") == 1
    (success,) = body["successes"]
    assert set(success) == set(ADVANCED_SAMPLE_BODY["report_attributes"])
    assert success["INSIDER.device_token"] == token
    assert success["INSIDER.insider_id"] == insider_id
    assert success["INSIDER.email"] == "example@gmail.com"
    assert success["INSIDER.name"] is None
    (job,) = jobs(partner)
    assert (job["platform"], job["token"], job["camp_id"]) == ("ios", token, 1)
    payload = bytes(job["payload"]).decode()
    for n in (1, 2, 3):
        assert f"Title for the item {n}" in payload


def test_advanced_sample_without_report_attributes_answers_the_token(partner: Partner) -> None:
    token = "e1" * 32
    partner.session({"uuid": "5971351231234567"}, platform="android", token=token)

    r = partner.push(with_key(without_report_attributes(ADVANCED_SAMPLE_BODY), partner))

    assert r.status_code == 200, r.text
    assert r.json() == {
        "successes": [{"INSIDER.device_token": token}],
        "errors": {},
        "optin_delivery_count": 1,
    }


def test_each_success_writes_exactly_one_queued_job(partner: Partner) -> None:
    ios_token, android_token = "01" * 32, "fcm-token-android-1"
    partner.session({"uuid": "job-ios"}, platform="ios", token=ios_token)
    partner.session({"uuid": "job-android"}, platform="android", token=android_token)

    before = time.time()
    r = partner.push(
        {
            "notifications": [
                notification({"uuid": "job-ios"}, camp_id=7, ttl=600),
                notification({"uuid": "job-android"}, camp_id=7, ttl=600),
                notification({"uuid": "job-nobody"}, camp_id=7, ttl=600),
            ]
        }
    )
    after = time.time()

    assert r.status_code == 200, r.text
    assert r.json()["successes"] == [
        {"INSIDER.device_token": ios_token},
        {"INSIDER.device_token": android_token},
    ]
    rows = jobs(partner)
    assert [(j["platform"], j["token"], j["camp_id"]) for j in rows] == [
        ("ios", ios_token, 7),
        ("android", android_token, 7),
    ]
    assert all(j["state"] in QUEUED_OR_LATER for j in rows)
    for job in rows:
        assert before + 600 - 1 <= job["expires_at"] <= after + 600 + 1


def test_job_expiry_defaults_to_28_days(partner: Partner) -> None:
    partner.session({"uuid": "ttl-default"}, token="02" * 32)

    before = time.time()
    r = push_one(partner, {"uuid": "ttl-default"})
    after = time.time()

    assert r.status_code == 200, r.text
    (job,) = jobs(partner)
    assert before + 2_419_200 - 1 <= job["expires_at"] <= after + 2_419_200 + 1


def test_sample_ttl_of_one_second_sets_the_job_expiry(partner: Partner) -> None:
    register_sample_user(partner, "03" * 32)

    before = time.time()
    r = partner.push(with_key(SAMPLE_BODY, partner))
    after = time.time()

    assert r.status_code == 200, r.text
    (job,) = jobs(partner)
    assert (job["platform"], job["token"]) == ("ios", "03" * 32)
    assert job["state"] in QUEUED_OR_LATER
    assert before + 1 - 0.5 <= job["expires_at"] <= after + 1 + 0.5


def test_repeated_sends_each_write_one_job(partner: Partner) -> None:
    partner.session({"uuid": "again"}, token="04" * 32)

    for _ in range(3):
        assert push_one(partner, {"uuid": "again"}).status_code == 200

    assert len(jobs(partner)) == 3


def test_campaign_is_recorded_on_first_use_of_its_camp_id(partner: Partner) -> None:
    partner.session({"uuid": "camp-user"}, token="05" * 32)

    first = push_one(
        partner,
        {"uuid": "camp-user"},
        camp_id=4242,
        camp_name="Spring sale",
        title="Sale!",
        message="Everything is 20% off",
        image_url="https://img.example.com/sale.jpg",
    )
    second = push_one(
        partner,
        {"uuid": "camp-user"},
        camp_id=4242,
        camp_name="Renamed",
        title="Other title",
        message="Other message",
    )

    assert first.status_code == 200 and second.status_code == 200
    (camp,) = campaigns(partner)
    assert (camp["camp_id"], camp["name"], camp["title"], camp["message"], camp["image_url"]) == (
        4242,
        "Spring sale",
        "Sale!",
        "Everything is 20% off",
        "https://img.example.com/sale.jpg",
    )


def test_each_camp_id_gets_its_own_campaign_row(partner: Partner) -> None:
    partner.session({"uuid": "two-camps"}, token="06" * 32)

    r = partner.push(
        {
            "notifications": [
                notification({"uuid": "two-camps"}, camp_id=11, camp_name="eleven"),
                notification({"uuid": "two-camps"}, camp_id=12, camp_name="twelve"),
            ]
        }
    )

    assert r.status_code == 200, r.text
    assert [(c["camp_id"], c["name"]) for c in campaigns(partner)] == [
        (11, "eleven"),
        (12, "twelve"),
    ]
    assert sorted(j["camp_id"] for j in jobs(partner)) == [11, 12]


def test_async_request_is_accepted_and_queued_shortly_after(partner: Partner) -> None:
    token = "07" * 32
    partner.session({"uuid": "async-user"}, token=token)

    r = partner.push({"async": True, "notifications": [notification({"uuid": "async-user"})]})

    assert r.status_code == 202, r.text
    assert r.json() == {"message": "Async request accepted"}
    assert wait_until(lambda: len(jobs(partner)) == 1, timeout=10)
    (job,) = jobs(partner)
    assert (job["token"], job["camp_id"]) == (token, 1)
    assert job["state"] in QUEUED_OR_LATER


def test_async_request_is_validated_before_it_is_accepted(partner: Partner) -> None:
    partner.session({"uuid": "async-bad"}, token="08" * 32)

    r = partner.push(
        {"async": True, "notifications": [notification({"uuid": "async-bad"}, camp_id=0)]}
    )

    assert r.status_code == 400, r.text
    assert r.json()["error"] == "negative_integer"


def test_sync_answer_is_given_when_the_job_is_already_queued(partner: Partner) -> None:
    partner.session({"uuid": "durable"}, token="09" * 32)

    r = push_one(partner, {"uuid": "durable"})

    # Read straight after the answer: no polling allowed (contract.md: durably queued).
    assert r.status_code == 200
    assert len(jobs(partner)) == 1


def test_new_token_for_the_same_udid_revives_an_unregistered_device(partner: Partner) -> None:
    old, new = "0a" * 32, "0b" * 32
    partner.session({"uuid": "revive"}, token=old, udid="UDID-REVIVE")
    set_device_status(partner, old, "unregistered")
    dead = push_one(partner, {"uuid": "revive"})
    assert dead.json() == {"successes": [], "errors": {"Unregistered": [{"uuid": "revive"}]}}

    partner.session({"uuid": "revive"}, token=new, udid="UDID-REVIVE")
    r = push_one(partner, {"uuid": "revive"})

    assert r.status_code == 200, r.text
    assert r.json() == {"successes": [{"INSIDER.device_token": new}], "errors": {}}
    assert [j["token"] for j in jobs(partner)] == [new]


def test_job_payload_carries_the_notification_content(partner: Partner) -> None:
    partner.session({"uuid": "content"}, platform="android", token="fcm-content")

    r = push_one(partner, {"uuid": "content"}, title="Hello title", message="Hello body")

    assert r.status_code == 200, r.text
    (job,) = jobs(partner)
    payload = json.dumps(json.loads(bytes(job["payload"])))
    assert "Hello title" in payload and "Hello body" in payload


@pytest.mark.parametrize(
    "fields",
    [
        {"ios": {"thread-id": "t-1"}},
        {"ios": {"thread_id": 7}},
        {"deliver_silently": True},
        {"delivery_silently": True},
        {"ios": {"deliver_silently": True}},
        {"android": {"delivery_silently": True}},
        {"unknown_key": {"nested": [1, 2]}, "ios": {"unknown": 1}},
    ],
    ids=[
        "thread-id",
        "thread_id",
        "deliver",
        "delivery",
        "ios-deliver",
        "android-delivery",
        "unknown",
    ],
)
def test_key_spellings_of_real_clients_are_accepted(
    partner: Partner, fields: dict[str, Any]
) -> None:
    partner.session({"uuid": "spelling"}, token="0c" * 32)

    r = partner.push({"notifications": [{**notification({"uuid": "spelling"}), **fields}]})

    assert r.status_code == 200, r.text
    assert r.json() == {"successes": [{"INSIDER.device_token": "0c" * 32}], "errors": {}}
    assert len(jobs(partner)) == 1
