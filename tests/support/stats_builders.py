"""Builders shared by the campaign-statistics unit tests (docs/statistics.md)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from pushgate.stats.campaign import Campaign
from pushgate.stats.funnel import Funnel, funnel_of
from pushgate.store.sqlite import open_sync
from pushgate.targeting.decide import DeviceView, Outcome, ProfileView
from pushgate.targeting.push import Push
from pushgate.targeting.validate import decode, validate

PARTNER = 1
OTHER_PARTNER = 2


def as_json(answer: Any) -> Any:
    """An answer as its client reads it: the JSON values of the Struct the server encodes."""
    return msgspec.to_builtins(answer)


def make_push(camp_id: int = 7, index: int = 0, **fields: Any) -> Push:
    """A validated notification; `fields` override the wire fields of the notification."""
    n: dict[str, Any] = {
        "identifiers": {"INSIDER.email": "a@b.co"},
        "camp_id": camp_id,
        "camp_name": f"campaign {camp_id}",
        "title": "Title",
        "message": "Message",
        "image_url": "https://img.example/i.jpg",
    }
    n.update(fields)
    decoded = decode(json.dumps({"api_key": "k", "notifications": [n]}).encode())
    assert decoded.request is not None
    [push] = validate(decoded.request)
    return msgspec.structs.replace(push, index=index)


def device(id: int, platform: str = "ios") -> DeviceView:
    return DeviceView(
        id=id,
        platform=platform,
        token=f"token-{id}",
        environment="production",
        push_optin=True,
        live=True,
        last_active_at=100.0,
    )


def profile(id: int) -> ProfileView:
    return ProfileView(
        id=id, insider_id=f"insider-{id}", last_active_at=100.0, attributes={}, devices=()
    )


def sent(push: Push, user: int, platform: str = "ios") -> Outcome:
    return Outcome(push, profile(user), device(user, platform), None)


def excluded(push: Push, reason: str, user: int | None = None) -> Outcome:
    return Outcome(push, None if user is None else profile(user), None, reason)


def campaign(
    camp_id: int = 7,
    *,
    funnel: Funnel | None = None,
    counts: dict[str, int] | None = None,
    name: str = "Campaign",
    title: str = "Title",
    message: str = "Message",
    image_url: str = "",
    deep_links: dict[str, dict[str, str]] | None = None,
    created_at: float = 1_800_000_000.0,
) -> Campaign:
    if funnel is None:
        funnel = funnel_of((counts or {}).items())
    return Campaign(
        camp_id=camp_id,
        name=name,
        title=title,
        message=message,
        image_url=image_url,
        deep_links=deep_links if deep_links is not None else {"android": {}, "ios": {}},
        created_at=created_at,
        funnel=funnel,
    )


def open_db(data_dir: Path) -> sqlite3.Connection:
    """The service's own connection and schema, with two partners and three users."""
    conn = open_sync(data_dir)
    for partner in (PARTNER, OTHER_PARTNER):
        conn.execute(
            "INSERT INTO partners (id, name, api_key_hash, request_token_hash, sdk_key_hash,"
            " rate_limit, advanced_rate_limit, gfc_limit, gfc_window, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 10, 10, 0, 86400, 0, 0)",
            (partner, f"p{partner}", bytes([partner, 1]), bytes([partner, 2]), bytes([partner, 3])),
        )
    for user in (1, 2, 3):
        conn.execute(
            "INSERT INTO profiles (id, partner_id, insider_id, created_at, updated_at)"
            " VALUES (?, ?, ?, 0, 0)",
            (user, PARTNER, f"insider-{user}"),
        )
        conn.execute(
            "INSERT INTO devices (id, partner_id, profile_id, platform, token, environment,"
            " push_optin, token_registered_at, last_active_at)"
            " VALUES (?, ?, ?, ?, ?, 'production', 1, 0, 0)",
            (user, PARTNER, user, ("ios", "android", "huawei")[user - 1], f"token-{user}"),
        )
    return conn
