"""A targeted push arrives at the APNs, FCM and HMS emulators with the exact provider mapping.

`serve --emulate`; each test sends through the Targeted Push API and reads what the emulator
received from `GET /emulator/v1/deliveries` (contract.md, "Emulators": headers lower-case, the
payload as the provider received it). Wire formats: providers.md; fields: targeted-push-api.txt.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import pytest

from pushgate.emulation import EMULATED_BUNDLE_ID
from tests.support.emulated import (
    Control,
    device_token,
    jobs,
    notification,
    push_all,
    received_at,
    wait_jobs_final,
)
from tests.support.server import Partner, Server

TTL = 3600
TTL_FIELD = re.compile(r"^(\d+)s$")
DEEP_LINK_IOS = {"ins_dl_internal": "https://shop.example.com/ios", "promo": "SPRING"}
DEEP_LINK_ANDROID = {"ins_dl_internal": "https://shop.example.com/android", "promo": "FALL"}
CAROUSEL = {
    "advanced_push_type": "carousel",
    "advanced_push_items": [
        {
            "image_url": f"https://img.example.com/{n}.jpg",
            "deep_links": {"ins_dl_internal": f"https://shop.example.com/item/{n}"},
            "description": f"Description {n}",
            "headline": f"Headline {n}",
            "id": n,
        }
        for n in (1, 2, 3)
    ],
}


@pytest.fixture
def partner(shared_partner: Partner) -> Partner:
    """One partner for the module; each test uses its own users and tokens."""
    return shared_partner


def full_notification(
    uuid: str,
    ios: dict[str, Any] | None = None,
    android: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The primary document's sample notification, with distinct values per platform;
    `ios`/`android` entries replace the sample's (None removes one)."""
    ios_fields: dict[str, Any] = {
        "thread-id": 13,
        "badge": 3,
        "content-available": False,
        "mutable-content": True,
        "sound": "chime_ios",
        "deep_link": DEEP_LINK_IOS,
    }
    android_fields: dict[str, Any] = {
        "channel_id": 7,
        "sound": "chime_android",
        "deep_link": DEEP_LINK_ANDROID,
    }
    ios_fields.update(ios or {})
    android_fields.update(android or {})
    return notification(
        uuid,
        camp_id=4242,
        title="Order shipped",
        message="Your parcel is on its way",
        image_url="https://img.example.com/parcel.jpg",
        ttl=TTL,
        android={k: v for k, v in android_fields.items() if v is not None},
        ios={k: v for k, v in ios_fields.items() if v is not None},
        **extra,
    )


class Sent:
    """One push to one new user on `platform`, and what the emulator received for it."""

    def __init__(
        self,
        partner: Partner,
        emulator: Control,
        platform: str,
        environment: str = "production",
        **fields: Any,
    ) -> None:
        self.token = device_token(platform)
        uuid = f"{platform}-{self.token[-12:]}"
        partner.session({"uuid": uuid}, platform, self.token, environment=environment)
        self.before = time.time()
        push_all(partner, [full_notification(uuid, **fields)])
        self.after = time.time()
        emulator.wait_delivered([self.token], timeout=10)
        (self.delivery,) = emulator.deliveries(token=self.token)
        self.headers: dict[str, str] = self.delivery["headers"]
        self.payload: dict[str, Any] = self.delivery["payload"]


def ttl_seconds(value: str) -> int:
    """An Android `ttl` field ("3600s") in seconds."""
    match = TTL_FIELD.match(value)
    assert match, value
    return int(match.group(1))


def assert_ttl_field(value: str, sent: Sent) -> None:
    """An Android `ttl` ("Ns") close to the lifetime left when the provider got it."""
    left = sent.before + TTL - received_at(sent.delivery)
    assert left - 2 <= ttl_seconds(value) <= TTL, (value, left)


# ---- all three providers from one request ----


def test_one_request_reaches_apns_fcm_and_hms_once_each(
    partner: Partner, emulator: Control
) -> None:
    tokens = {p: device_token(p) for p in ("ios", "android", "huawei")}
    for platform, token in tokens.items():
        partner.session({"uuid": f"u-{platform}-{token[-8:]}"}, platform, token)

    answered = push_all(partner, [full_notification(f"u-{p}-{t[-8:]}") for p, t in tokens.items()])

    assert sorted(answered) == sorted(tokens.values())
    counts = emulator.wait_delivered(list(tokens.values()), timeout=10)
    for platform, token in tokens.items():
        assert counts[token] == 1, (platform, counts)
        assert [d["platform"] for d in emulator.deliveries(token=token)] == [platform]
    settled = wait_jobs_final(partner, 3, 10, tokens=tokens.values())
    assert [j["state"] for j in settled] == ["done"] * 3


# ---- APNs ----


def test_apns_alert_push_carries_topic_type_priority_and_expiration(
    partner: Partner, emulator: Control
) -> None:
    sent = Sent(partner, emulator, "ios")

    h = sent.headers
    assert h["apns-topic"] == EMULATED_BUNDLE_ID
    assert h["apns-push-type"] == "alert"
    assert h["apns-priority"] == "10"
    assert int(sent.before) + TTL - 1 <= int(h["apns-expiration"]) <= int(sent.after) + TTL + 1
    # No apns-id: APNs makes one per push and echoes it (providers.md); ours would be the one
    # header that differs from push to push.
    assert "apns-id" not in h
    assert h["authorization"].startswith("bearer ")
    assert "apns-collapse-id" not in h


def test_apns_payload_maps_alert_sound_badge_thread_and_custom_keys(
    partner: Partner, emulator: Control
) -> None:
    sent = Sent(partner, emulator, "ios")

    assert sent.payload == {
        "aps": {
            "alert": {"title": "Order shipped", "body": "Your parcel is on its way"},
            "sound": "chime_ios",
            "badge": 3,
            "thread-id": "13",
            "mutable-content": 1,
        },
        # deep links and pushgate's own keys sit beside aps
        "ins_dl_internal": "https://shop.example.com/ios",
        "promo": "SPRING",
        "camp_id": 4242,
        "image_url": "https://img.example.com/parcel.jpg",
    }


def test_apns_rich_push_with_an_image_is_mutable_without_the_flag(
    partner: Partner, emulator: Control
) -> None:
    sent = Sent(partner, emulator, "ios", ios={"mutable-content": None})

    assert sent.payload["aps"]["mutable-content"] == 1
    assert sent.payload["image_url"] == "https://img.example.com/parcel.jpg"
    assert "content-available" not in sent.payload["aps"]


def test_apns_content_available_push_is_a_silent_background_push(
    partner: Partner, emulator: Control
) -> None:
    sent = Sent(
        partner,
        emulator,
        "ios",
        ios={"content-available": True, "mutable-content": None},
    )

    assert sent.headers["apns-push-type"] == "background"
    assert sent.headers["apns-priority"] == "5"  # providers.md: background needs priority 5
    aps = sent.payload["aps"]
    assert aps["content-available"] == 1
    assert "alert" not in aps  # "the notification does not appear"
    assert "sound" not in aps and "badge" not in aps
    assert sent.payload["camp_id"] == 4242
    assert sent.payload["ins_dl_internal"] == "https://shop.example.com/ios"


def test_apns_carousel_push_carries_the_advanced_push_items(
    partner: Partner, emulator: Control
) -> None:
    sent = Sent(partner, emulator, "ios", advanced_push_payload=CAROUSEL)

    advanced = sent.payload["advanced_push"]
    assert advanced["type"] == "carousel"
    assert [item["id"] for item in advanced["items"]] == [1, 2, 3]
    for item, wanted in zip(advanced["items"], CAROUSEL["advanced_push_items"], strict=True):
        assert item["headline"] == wanted["headline"]
        assert item["description"] == wanted["description"]
        assert item["image_url"] == wanted["image_url"]
        assert item["deep_links"] == wanted["deep_links"]
    assert sent.payload["aps"]["mutable-content"] == 1  # the extension renders the carousel
    assert sent.payload["aps"]["alert"]["title"] == "Order shipped"


@pytest.mark.parametrize("environment", ["sandbox", "development"])
def test_sandbox_device_is_delivered_through_apns(
    partner: Partner, emulator: Control, environment: str
) -> None:
    sent = Sent(partner, emulator, "ios", environment=environment)

    assert sent.delivery["platform"] == "ios"
    assert sent.headers["apns-topic"] == EMULATED_BUNDLE_ID
    assert sent.payload["aps"]["alert"]["body"] == "Your parcel is on its way"


def test_first_burst_of_apns_pushes_shares_one_provider_token(
    server: Server, emulator: Control
) -> None:
    """providers.md: keep one provider token per team (refreshing it more often than every
    20 minutes earns 429 TooManyProviderTokenUpdates). A new partner: its first sends."""
    partner = server.create_partner()
    tokens = [device_token("ios") for _ in range(40)]
    for n, token in enumerate(tokens):
        partner.session({"uuid": f"burst-{n}-{token[-6:]}"}, "ios", token)

    push_all(partner, [full_notification(f"burst-{n}-{t[-6:]}") for n, t in enumerate(tokens)])

    emulator.wait_delivered(tokens, timeout=10)
    bearers = {d["headers"]["authorization"] for t in tokens for d in emulator.deliveries(token=t)}
    assert len(bearers) == 1, f"{len(bearers)} different APNs provider tokens for one team"


# ---- FCM ----


def test_fcm_message_maps_token_notification_data_and_android_config(
    partner: Partner, emulator: Control
) -> None:
    sent = Sent(partner, emulator, "android")

    assert sent.payload["validate_only"] is False
    message = sent.payload["message"]
    assert message["token"] == sent.token
    assert not {"topic", "condition"} & set(message)
    assert message["notification"] == {
        "title": "Order shipped",
        "body": "Your parcel is on its way",
        "image": "https://img.example.com/parcel.jpg",
    }
    data = message["data"]
    assert all(isinstance(v, str) for v in data.values()), data  # FCM: string values only
    assert data["camp_id"] == "4242"
    assert data["ins_dl_internal"] == "https://shop.example.com/android"
    assert data["promo"] == "FALL"
    android = message["android"]
    assert android["priority"] == "HIGH"
    assert_ttl_field(android["ttl"], sent)
    assert android["notification"]["channel_id"] == "7"
    assert android["notification"]["sound"] == "chime_android"
    assert sent.headers["authorization"].startswith("Bearer ")


def test_fcm_carousel_push_carries_the_advanced_push_as_a_data_string(
    partner: Partner, emulator: Control
) -> None:
    sent = Sent(partner, emulator, "android", advanced_push_payload=CAROUSEL)

    data = sent.payload["message"]["data"]
    assert all(isinstance(v, str) for v in data.values()), data
    advanced = json.loads(data["advanced_push"])
    assert advanced["type"] == "carousel"
    assert [i["headline"] for i in advanced["items"]] == ["Headline 1", "Headline 2", "Headline 3"]


# ---- HMS ----


def test_hms_message_maps_token_list_data_string_notification_and_android_config(
    partner: Partner, emulator: Control
) -> None:
    sent = Sent(partner, emulator, "huawei")

    assert sent.payload["validate_only"] is False
    message = sent.payload["message"]
    assert message["token"] == [sent.token]
    assert isinstance(message["data"], str)  # HMS carries data as one string
    data = json.loads(message["data"])
    assert data["camp_id"] == "4242"
    assert data["ins_dl_internal"] == "https://shop.example.com/android"
    assert data["promo"] == "FALL"
    assert message["notification"] == {
        "title": "Order shipped",
        "body": "Your parcel is on its way",
        "image": "https://img.example.com/parcel.jpg",
    }
    android = message["android"]
    assert android["urgency"] == "HIGH"
    assert_ttl_field(android["ttl"], sent)
    notification_config = android["notification"]
    assert notification_config["channel_id"] == "7"
    assert notification_config["sound"] == "chime_android"
    assert notification_config["click_action"]["type"] in (1, 2, 3)


def test_hms_gets_a_28_day_push_as_15_days_with_the_credentials_classification(
    server: Server, emulator: Control
) -> None:
    """Huawei keeps a message 15 days at most, and classifies it by `android.category`
    (providers.md, "Corrections and additions"): the credential's default category and
    importance go into a message that has none."""
    partner = server.create_partner()
    app_id = str(int.from_bytes(os.urandom(4)) % 10**9)
    credential = {
        "app_id": app_id,
        "client_id": app_id,
        "client_secret": os.urandom(16).hex(),
        "category": "EXPRESS",
        "importance": "NORMAL",
    }
    upload = server.client.post(
        "/v1/settings/certificate/huawei", json=credential, headers={"X-API-KEY": partner.api_key}
    )
    assert (upload.status_code, upload.json()) == (200, {"platform": "huawei", "validated": True})
    token = device_token("huawei")
    partner.session({"uuid": f"hms-{token[-8:]}"}, "huawei", token)

    push_all(partner, [notification(f"hms-{token[-8:]}", ttl=28 * 24 * 3600)])

    emulator.wait_delivered([token], timeout=10)
    (delivery,) = emulator.deliveries(token=token)
    assert delivery["headers"]["authorization"].startswith("Bearer ")
    android = delivery["payload"]["message"]["android"]
    assert android["ttl"] == "1296000s"
    assert android["category"] == "EXPRESS"
    assert android["notification"]["importance"] == "NORMAL"
    assert android["notification"]["click_action"]["type"] in (1, 2, 3)


# ---- time-relative fields on a retried send ----


def test_android_ttl_is_the_lifetime_left_when_a_send_is_retried(
    partner: Partner, emulator: Control
) -> None:
    """A send that waited for a retry carries the remaining lifetime, and APNs keeps the
    notification's absolute expiry."""
    tokens = {p: device_token(p) for p in ("ios", "android", "huawei")}
    for platform, token in tokens.items():
        partner.session({"uuid": f"late-{platform}-{token[-6:]}"}, platform, token)
        emulator.fault(platform, status=503, rate=1.0, retry_after=3)
    before = time.time()
    push_all(partner, [full_notification(f"late-{p}-{t[-6:]}") for p, t in tokens.items()])
    time.sleep(1.0)
    emulator.clear_faults()

    emulator.wait_delivered(list(tokens.values()), timeout=10)
    for platform, token in tokens.items():
        (delivery,) = emulator.deliveries(token=token)
        waited = received_at(delivery) - before
        assert waited >= 2.9, (platform, waited)  # Retry-After: 3 was honoured
        payload = delivery["payload"]
        if platform == "ios":
            assert abs(int(delivery["headers"]["apns-expiration"]) - (before + TTL)) <= 2
            continue
        ttl = ttl_seconds(payload["message"]["android"]["ttl"])
        assert TTL - waited - 2 <= ttl <= TTL - waited + 1, (platform, ttl, waited)
    assert all(j["attempts"] >= 2 for j in jobs(partner, tokens.values()))
