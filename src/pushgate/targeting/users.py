"""Validation of user data (insider-ecosystem.md §4) and of SDK sessions (contract.md), pure.

The user API answers 200 even for invalid users: each failure is reported
under a rule key such as `users.0.identifiers.email.regexp(^.+@.+\\..+$)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pushgate import attributes as attrs
from pushgate.targeting.errors import ApiError
from pushgate.targeting.push import Identifier
from pushgate.targeting.validate import normalise_identifier

MAX_USERS = 1000
EMAIL_RULE = r"^.+@.+\..+$"
PHONE_RULE = r"^\+[1-9]\d{6,14}$"
EVENT_NAME_RULE = r"^[a-z0-9][a-zA-Z0-9._-]*$"
# fullmatch + ASCII: `$` must not accept a trailing newline, nor \d other scripts' digits.
_EMAIL = re.compile(EMAIL_RULE, re.ASCII)
_PHONE = re.compile(PHONE_RULE, re.ASCII)
_EVENT_NAME = re.compile(EVENT_NAME_RULE, re.ASCII)
PLATFORMS = frozenset({"ios", "android", "huawei"})


class UserDataError(Exception):
    """A request-level failure of the user API: its own `{"error": "..."}` shape."""

    def __init__(self, status: int, error: str, retry_after: int = 1) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.retry_after = retry_after  # seconds, for a 429


USERS_MISSING = UserDataError(400, "users must be defined: bad request")
TOO_MANY_USERS = UserDataError(400, f"users can't be more than {MAX_USERS}: bad request")


@dataclass(frozen=True, slots=True)
class ParsedIdentifiers:
    identifiers: tuple[Identifier, ...]
    attributes: dict[str, Any]  # INSIDER.email etc., values as given
    insider_id: str | None


@dataclass(slots=True)
class UserData:
    identifiers: ParsedIdentifiers
    attributes: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    append_arrays: bool = True


def parse_identifiers(raw: Any, where: str, problems: dict[str, list[str]]) -> ParsedIdentifiers:
    """Identifiers of the user API; `insider_id` may stand beside or instead of them."""
    found: list[Identifier] = []
    given: dict[str, Any] = {}
    insider_id: str | None = None
    for key, value in (raw or {}).items() if isinstance(raw, Mapping) else ():
        if key == "custom":
            if not isinstance(value, Mapping):
                problems.setdefault(f"{where}.custom.type(object)", []).append(
                    "custom identifiers must be an object"
                )
                continue
            for name, inner in value.items():
                if not isinstance(inner, str):
                    problems.setdefault(f"{where}.custom.{name}.type(string)", []).append(
                        f"custom identifier must be a string: {inner}"
                    )
                elif ident := normalise_identifier(str(name), inner):
                    found.append(ident)
            continue
        kind = key.removeprefix(attrs.PREFIX)
        if kind == "insider_id" and isinstance(value, str):
            insider_id = value
            continue
        if not isinstance(value, str):
            problems.setdefault(f"{where}.{kind}.type(string)", []).append(
                f"{kind} must be a string: {value}"
            )
            continue
        if kind == "email" and not _EMAIL.fullmatch(value):
            problems.setdefault(f"{where}.email.regexp({EMAIL_RULE})", []).append(
                f"not a valid email address: {value}"
            )
            continue
        if kind == "phone_number" and not _PHONE.fullmatch(value):
            problems.setdefault(f"{where}.phone_number.regexp({PHONE_RULE})", []).append(
                f"not a valid phone number: {value}"
            )
            continue
        if ident := normalise_identifier(kind, value):
            found.append(ident)
            if ident.kind in attrs.IDENTIFIER_ATTRIBUTES:
                given[ident.kind] = value
    return ParsedIdentifiers(tuple(found), attrs.identifier_attributes(given), insider_id)


def validate_users(body: Any) -> tuple[list[UserData], dict[str, list[str]], int]:
    """Valid users, failures by rule, and how many users failed."""
    if not isinstance(body, Mapping) or not isinstance(body.get("users"), list):
        raise USERS_MISSING
    users = body["users"]
    if len(users) > MAX_USERS:
        raise TOO_MANY_USERS
    valid: list[UserData] = []
    problems: dict[str, list[str]] = {}
    failed = 0
    for i, raw in enumerate(users):
        before = sum(len(v) for v in problems.values())
        user = _user(raw, f"users.{i}", problems)
        if user is None or sum(len(v) for v in problems.values()) > before:
            failed += 1
        else:
            valid.append(user)
    return valid, problems, failed


def _user(raw: Any, where: str, problems: dict[str, list[str]]) -> UserData | None:
    if not isinstance(raw, Mapping):
        problems.setdefault(f"{where}.type(object)", []).append("a user must be an object")
        return None
    known = len(problems)
    ids = parse_identifiers(raw.get("identifiers"), f"{where}.identifiers", problems)
    insider_id = raw.get("insider_id") if isinstance(raw.get("insider_id"), str) else ids.insider_id
    if len(problems) > known:
        return None  # the identifier's own rule says what is wrong
    if not ids.identifiers and not insider_id:
        problems.setdefault(f"{where}.identifiers.required", []).append(
            "a user needs at least one identifier or an insider_id"
        )
        return None
    attributes = raw.get("attributes")
    events = raw.get("events")
    if attributes is None and events is None:
        problems.setdefault(f"{where}.required(attributes|events)", []).append(
            "a user needs attributes or events"
        )
        return None
    if attributes is not None and not isinstance(attributes, Mapping):
        problems.setdefault(f"{where}.attributes.type(object)", []).append(
            "attributes must be an object"
        )
        return None
    good_events: list[dict[str, Any]] = []
    for j, event in enumerate(events if isinstance(events, list) else []):
        name = event.get("event_name") if isinstance(event, Mapping) else None
        if not isinstance(name, str) or not _EVENT_NAME.fullmatch(name):
            problems.setdefault(
                f"{where}.events.{j}.event_name.regexp({EVENT_NAME_RULE})", []
            ).append(f"not a valid event name: {name}")
            continue
        assert isinstance(event, Mapping)
        timestamp = event.get("timestamp")
        if timestamp is not None and not isinstance(timestamp, str):
            problems.setdefault(f"{where}.events.{j}.timestamp.type(string)", []).append(
                f"timestamp must be an RFC 3339 string: {timestamp}"
            )
            continue
        params = event.get("event_params")
        if params is not None and not isinstance(params, Mapping):
            problems.setdefault(f"{where}.events.{j}.event_params.type(object)", []).append(
                "event_params must be an object"
            )
            continue
        good_events.append(dict(event))
    if events is not None and not isinstance(events, list):
        problems.setdefault(f"{where}.events.type(array)", []).append("events must be an array")
    append = raw.get("append")
    append_arrays = bool(append) if isinstance(append, bool) else not bool(raw.get("not_append"))
    return UserData(
        identifiers=ParsedIdentifiers(ids.identifiers, ids.attributes, insider_id),
        attributes=attrs.profile_attributes(attributes) if attributes else {},
        events=good_events,
        append_arrays=append_arrays,
    )


@dataclass(frozen=True, slots=True)
class Session:
    identifiers: ParsedIdentifiers
    device: dict[str, Any]
    attributes: dict[str, Any]


def invalid_session(message: str) -> ApiError:
    return ApiError(400, "invalid_session", message)


def validate_session(body: Any) -> Session:
    if not isinstance(body, Mapping):
        raise invalid_session("the request body must be a JSON object")
    device = body.get("device")
    if not isinstance(device, Mapping):
        raise invalid_session("'device' is required and must be an object")
    platform = device.get("platform")
    if not isinstance(platform, str) or platform.lower() not in PLATFORMS:
        raise invalid_session("'device.platform' must be one of ios, android, huawei")
    token = device.get("device_token")
    if not isinstance(token, str) or not token.strip():
        raise invalid_session("'device.device_token' is required and must be a non-empty string")
    for name in ("udid", "environment"):
        if device.get(name) is not None and not isinstance(device[name], str):
            raise invalid_session(f"'device.{name}' must be a string")
    for flag in ("push_optin", "location_optin"):
        if flag in device and not isinstance(device[flag], bool):
            raise invalid_session(f"'device.{flag}' must be a boolean")
    if "identifiers" in body and not isinstance(body["identifiers"], Mapping | None):
        raise invalid_session("'identifiers' must be an object")
    problems: dict[str, list[str]] = {}
    ids = parse_identifiers(body.get("identifiers"), "identifiers", problems)
    if problems:
        key, messages = next(iter(problems.items()))
        raise invalid_session(f"{key}: {messages[0]}")
    insider_id = body.get("insider_id")
    attributes = body.get("attributes")
    if attributes is not None and not isinstance(attributes, Mapping):
        raise invalid_session("'attributes' must be an object")
    return Session(
        identifiers=ParsedIdentifiers(
            ids.identifiers,
            ids.attributes,
            insider_id if isinstance(insider_id, str) else ids.insider_id,
        ),
        device={**device, "device_token": token.strip()},
        attributes=attrs.profile_attributes(attributes),
    )
