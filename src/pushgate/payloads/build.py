"""Provider payloads from one validated notification (pure functions).

Each builder returns the provider's body without the device token: the token
goes into the APNs path, or into FCM's `message.token` / HMS's `message.token`
at send time, so one built payload serves every user of the notification.
Time-relative fields (APNs expiration, Android ttl) are set again at send time
from the job's expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from pushgate.providers.hms import ttl_field as hms_ttl
from pushgate.targeting.push import AdvancedPush, Push

PLATFORMS = ("ios", "android", "huawei")
MAX_PAYLOAD_BYTES = 4096  # APNs, FCM and HMS all cap the message at 4 KB
_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class ApnsRequest:
    payload: dict[str, Any]
    push_type: str  # apns-push-type
    priority: int  # apns-priority: background pushes must use 5


def _advanced_json(advanced: AdvancedPush) -> dict[str, Any]:
    return {
        "type": advanced.type,
        "items": [
            {
                "id": item.id,
                "headline": item.headline,
                "description": item.description,
                "image_url": item.image_url,
                "deep_links": item.deep_links,
            }
            for item in advanced.items
        ],
    }


def data_fields(push: Push, deep_links: dict[str, str]) -> dict[str, str]:
    """The string key/values an app receives: deep links, then pushgate's own keys
    (camp_id for open reports), which win over a deep link of the same name."""
    data = dict(deep_links)
    data["camp_id"] = str(push.camp_id)
    if push.image_url:
        data["image_url"] = push.image_url
    if push.advanced:
        data["advanced_push"] = _encode(_advanced_json(push.advanced)).decode()
    return data


def apns(push: Push) -> ApnsRequest:
    ios = push.ios
    aps: dict[str, Any] = {}
    background = push.silent or ios.content_available
    if background:
        aps["content-available"] = 1
    else:
        aps["alert"] = {"title": push.title, "body": push.message}
        if ios.sound:
            aps["sound"] = ios.sound
        if ios.badge is not None:
            aps["badge"] = ios.badge
        if ios.thread_id is not None:
            aps["thread-id"] = ios.thread_id
        # A rich push needs the service extension to fetch the image.
        if ios.mutable_content or push.image_url or push.advanced:
            aps["mutable-content"] = 1
    payload: dict[str, Any] = dict(ios.deep_links)
    payload["aps"] = aps
    payload["camp_id"] = push.camp_id
    if push.image_url:
        payload["image_url"] = push.image_url
    if push.advanced:
        payload["advanced_push"] = _advanced_json(push.advanced)
    return ApnsRequest(
        payload=payload,
        push_type="background" if background else "alert",
        priority=5 if background else 10,
    )


def fcm(push: Push) -> dict[str, Any]:
    android = push.android
    message: dict[str, Any] = {"data": data_fields(push, android.deep_links)}
    config: dict[str, Any] = {
        "priority": "NORMAL" if push.silent else "HIGH",
        "ttl": f"{push.ttl}s",
    }
    if not push.silent:
        notification: dict[str, Any] = {"title": push.title, "body": push.message}
        if push.image_url:
            notification["image"] = push.image_url
        message["notification"] = notification
        android_notification: dict[str, Any] = {}
        if android.channel_id is not None:
            android_notification["channel_id"] = android.channel_id
        if android.sound:
            android_notification["sound"] = android.sound
        if android_notification:
            config["notification"] = android_notification
    message["android"] = config
    return {"message": message, "validate_only": False}


def hms(push: Push) -> dict[str, Any]:
    android = push.android
    message: dict[str, Any] = {
        # HMS carries data as one string.
        "data": _encode(data_fields(push, android.deep_links)).decode()
    }
    # Huawei keeps a message 15 days at most; a longer lifetime is cut, not refused.
    config: dict[str, Any] = {
        "urgency": "NORMAL" if push.silent else "HIGH",
        "ttl": hms_ttl(push.ttl),
    }
    if not push.silent:
        notification: dict[str, Any] = {"title": push.title, "body": push.message}
        if push.image_url:
            notification["image"] = push.image_url
        message["notification"] = notification
        # Title, body and image come from message.notification (HMS uses it when the
        # Android section leaves them out), so a long message is carried once.
        android_notification: dict[str, Any] = {"click_action": {"type": 3}}  # open the app
        if android.channel_id is not None:
            android_notification["channel_id"] = android.channel_id
        if android.sound:
            android_notification["sound"] = android.sound
        config["notification"] = android_notification
    message["android"] = config
    return {"validate_only": False, "message": message}


@dataclass(frozen=True, slots=True)
class BuiltPayloads:
    """The encoded body per platform, and the APNs headers that depend on the content."""

    bodies: dict[str, bytes]
    apns_push_type: str
    apns_priority: int


def build_all(push: Push) -> BuiltPayloads:
    request = apns(push)
    return BuiltPayloads(
        bodies={
            "ios": _encode(request.payload),
            "android": _encode(fcm(push)),
            "huawei": _encode(hms(push)),
        },
        apns_push_type=request.push_type,
        apns_priority=request.priority,
    )


def oversized(built: BuiltPayloads) -> tuple[str, int] | None:
    """The first platform whose payload exceeds the providers' limit, with its size.

    For FCM and HMS the limit applies to the message, not the envelope around it.
    """
    for platform, body in built.bodies.items():
        size = len(body)
        if platform != "ios":
            size -= len(b'{"message":}') + len(b',"validate_only":false')
        if size > MAX_PAYLOAD_BYTES:
            return platform, size
    return None
