"""Wire shapes of the Targeted Push API request (targeted-push-api.txt).

msgspec decodes and type-checks the body in one pass; the rules that msgspec
cannot express (limits, deep-link values, reserved keys) live in `validate.py`.
Unknown keys are ignored, as the Insider clients send extra fields.
Where real clients use two spellings for one field, both are declared and
`validate.py` merges them.
"""

from __future__ import annotations

from typing import Any

import msgspec

# JSON values of deep-link maps: strings for most keys, an object for ins_dl_json.
DeepLinks = dict[str, Any]


class PlatformOptions(msgspec.Struct, kw_only=True):
    sound: str | None = None
    deep_link: DeepLinks | None = None
    deliver_silently: bool | None = None
    delivery_silently: bool | None = None


class AndroidOptions(PlatformOptions, kw_only=True):
    channel_id: int | None = None


class IosOptions(PlatformOptions, kw_only=True):
    thread_id_dash: int | str | None = msgspec.field(default=None, name="thread-id")
    thread_id: int | str | None = None
    badge: int | None = None
    content_available: bool | None = msgspec.field(default=None, name="content-available")
    mutable_content: bool | None = msgspec.field(default=None, name="mutable-content")


class AdvancedPushItem(msgspec.Struct, kw_only=True):
    image_url: str
    description: str
    headline: str
    id: int
    deep_links: DeepLinks | None = None


class AdvancedPushPayload(msgspec.Struct, kw_only=True):
    advanced_push_type: str | None = None
    preferred_type: str | None = None
    advanced_push_items: list[AdvancedPushItem] | None = None


class Notification(msgspec.Struct, kw_only=True):
    # Values are strings; the key "custom" may hold an object of custom identifiers.
    identifiers: dict[str, Any] | None = None
    camp_id: int
    camp_name: str
    title: str
    message: str
    image_url: str
    ttl: int | None = None
    check_optin: bool = False
    send_single_user: bool = False
    GFC_enabled: bool = False
    deliver_silently: bool | None = None
    delivery_silently: bool | None = None
    android: AndroidOptions | None = None
    ios: IosOptions | None = None
    advanced_push_payload: AdvancedPushPayload | None = None
    # pushgate's extensions (contract.md): when to send. Insider clients never send them.
    send_at: float | str | None = None  # RFC 3339 with offset, or Unix seconds
    local_time: str | None = None  # "HH:MM" on the user's own clock
    ignore_quiet_hours: bool = False


class TargetedPushRequest(msgspec.Struct, kw_only=True):
    api_key: str | None = None
    notifications: list[Notification] | None = None
    report_attributes: list[str] | None = None
    # `async` is a Python keyword, hence the rename.
    is_async: bool = msgspec.field(default=False, name="async")
