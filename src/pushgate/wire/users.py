"""User data: POST /api/user/v1/upsert, /profile and /delete (insider-ecosystem.md §4,
docs/decisions.md)."""

from __future__ import annotations

import datetime
from typing import Any

import msgspec


class UserEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    event_name: str
    timestamp: datetime.datetime | None = None
    event_params: dict[str, Any] | None = None


class UserRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One user of an upsert: `identifiers` (or `insider_id`), and attributes or events."""

    identifiers: dict[str, Any] | None = None
    insider_id: str | None = None
    attributes: dict[str, Any] | None = None
    events: list[UserEvent] | None = None
    # Array attributes append unless `not_append` is true or `append` false (`append` wins).
    append: bool | None = None
    not_append: bool | None = None


class UpsertRequest(msgspec.Struct, kw_only=True):
    users: list[UserRecord]  # at most 1,000


class UpsertCount(msgspec.Struct, kw_only=True):
    count: int


class UpsertFailures(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`{}` when every user was valid; else the count and the messages by rule key
    (`users.<index>.<field>.<rule>`)."""

    count: int = 0
    errors: dict[str, list[str]] = msgspec.field(default_factory=dict)


class UpsertData(msgspec.Struct, kw_only=True):
    successful: UpsertCount
    fail: UpsertFailures


class UpsertResult(msgspec.Struct, kw_only=True):
    data: UpsertData


class ProfileQuery(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Who /profile reads and /delete erases: identifiers, or the insider_id."""

    identifiers: dict[str, Any] | None = None
    insider_id: str | None = None


class Profile(msgspec.Struct, kw_only=True):
    insider_id: str
    identifiers: dict[str, Any]  # standard ones by kind, custom ones under "custom"
    attributes: dict[str, Any]  # INSIDER.<name> for the defaults, own names for the rest
    # Most recently active first: INSIDER.* attributes, plus "registered" (the token is live).
    devices: list[dict[str, Any]]
    event_count: int


class Deleted(msgspec.Struct, kw_only=True):
    """/delete's answer: `{}`, whether or not there was a profile to erase."""
