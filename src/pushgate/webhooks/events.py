"""The events a webhook carries, their bodies, and when a failed delivery is tried again."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

PUSH_ACCEPTED = "push.accepted"
PUSH_FAILED = "push.failed"
PUSH_EXPIRED = "push.expired"
PUSH_OPENED = "push.opened"
DEVICE_UNREGISTERED = "device.unregistered"
CREDENTIAL_INVALID = "credential.invalid"
EVENT_TYPES = (
    PUSH_ACCEPTED,
    PUSH_FAILED,
    PUSH_EXPIRED,
    PUSH_OPENED,
    DEVICE_UNREGISTERED,
    CREDENTIAL_INVALID,
)
# Seconds after each failed attempt before the next (contract.md: about 5 s, 5 min, 30 min,
# 2 h, 5 h, 10 h, 10 h); after the last, the event is given up.
RETRY_DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
ANSWER_SECONDS = 10.0  # a 2xx within this long is delivered

_encode = msgspec.json.encode


class Event(msgspec.Struct, frozen=True):
    """One event as the partner's endpoint receives it."""

    type: str
    timestamp: str  # RFC 3339, UTC
    data: dict[str, Any]


def new_event_id() -> str:
    """The `webhook-id` of an event: unique, and the same on every retry."""
    return "msg_" + secrets.token_urlsafe(18)


def rfc3339(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_body(event_type: str, at: float, data: Mapping[str, Any]) -> bytes:
    """The JSON body of one event; keys whose value is not known (None) are left out."""
    known = {key: value for key, value in data.items() if value is not None}
    return _encode(Event(event_type, rfc3339(at), known))


def parse_events(value: object) -> tuple[str, ...] | None:
    """A webhook's `events`: absent or null for all of them, else a non-empty list of known
    types. ValueError names what is wrong."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("events must be a non-empty list of event types")
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event types: {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})"
        )
    return tuple(dict.fromkeys(value))


def wants(events: Sequence[str] | None, event_type: str) -> bool:
    return events is None or event_type in events


def retry_delay(attempts: int) -> float | None:
    """Seconds to wait after the `attempts`-th failed attempt; None: give up."""
    if attempts < 1 or attempts > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempts - 1]
