"""The mobile SDK's endpoints: POST /api/sdk/v1/session and /api/sdk/v1/events (contract.md,
docs/statistics.md)."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec


class Device(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A device as the SDK reports it; every field is kept as the profile's `INSIDER.<field>`
    report attribute."""

    platform: str  # ios | android | huawei
    device_token: str
    environment: str | None = None  # production | sandbox (APNs host)
    udid: str | None = None
    push_optin: bool | None = None
    location_optin: bool | None = None
    app_version: str | None = None
    os_version: str | None = None
    model: str | None = None
    carrier: str | None = None
    sdk_version: str | None = None
    timezone: str | None = None
    device_language: str | None = None
    package_name: str | None = None
    screen_width: int | None = None
    screen_height: int | None = None
    idfa: str | None = None
    last_ip: str | None = None


class SessionRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    device: Device
    # email, phone_number, uuid (with or without `INSIDER.`), or `custom`: {name: value}.
    identifiers: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None
    insider_id: str | None = None


class SessionResult(msgspec.Struct, kw_only=True):
    insider_id: str


class PushEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    event_name: str  # push_delivered | push_session
    camp_id: int
    # RFC 3339 with a zone; give an aware datetime. None: the time the server receives it.
    timestamp: datetime.datetime | None = None


class EventsRequest(msgspec.Struct, kw_only=True):
    insider_id: str
    events: list[PushEvent]  # 1 to 1,000


class EventsResult(msgspec.Struct, kw_only=True):
    accepted: int
    duplicates: int  # already reported by this user for this campaign
    unknown_campaigns: int  # for a camp_id the partner never sent: ignored
