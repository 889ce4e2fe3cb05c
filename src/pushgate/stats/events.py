"""App events from the mobile SDK (`POST /api/sdk/v1/events`, contract.md): validation (pure)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pushgate.stats.funnel import EVENT_COUNTS
from pushgate.targeting.errors import ApiError, invalid_type, invalid_value, missing_field
from pushgate.targeting.validate import MAX_INT

MAX_EVENTS = 1000
# The app's clock may run a little ahead of ours; later than this is treated as "now".
CLOCK_SKEW_SECONDS = 300


@dataclass(frozen=True, slots=True)
class AppEvent:
    name: str  # push_delivered or push_session
    camp_id: int
    at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class EventBatch:
    insider_id: str
    events: tuple[AppEvent, ...]


def invalid_event(detail: str, where: str) -> ApiError:
    return ApiError(400, "invalid_event", f"{detail} (at {where})")


def parse_timestamp(text: str, where: str) -> float:
    """RFC 3339 / ISO 8601 with a zone (`Z` or an offset); a naive time would be ambiguous."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            400, "invalid_timestamp", f"timestamp must be an RFC 3339 date-time (at {where})"
        ) from None
    if when.tzinfo is None:
        raise ApiError(
            400, "invalid_timestamp", f"timestamp needs a time zone, e.g. Z (at {where})"
        )
    return when.timestamp()


def parse_events(body: Any, now: float) -> EventBatch:
    if not isinstance(body, Mapping):
        raise invalid_type("expected object", "")
    insider_id = body.get("insider_id")
    if insider_id is None:
        raise missing_field("insider_id", "")
    if not isinstance(insider_id, str) or not insider_id:
        raise invalid_type("expected a non-empty string", "insider_id")
    events = body.get("events")
    if events is None:
        raise missing_field("events", "")
    if not isinstance(events, list):
        raise invalid_type("expected array", "events")
    if not 1 <= len(events) <= MAX_EVENTS:
        raise ApiError(
            400, "invalid_events", f"'events' must hold between 1 and {MAX_EVENTS} events"
        )
    return EventBatch(insider_id, tuple(_event(e, i, now) for i, e in enumerate(events)))


def _event(event: Any, index: int, now: float) -> AppEvent:
    where = f"events[{index}]"
    if not isinstance(event, Mapping):
        raise invalid_type("expected object", where)
    name = event.get("event_name")
    if name is None:
        raise missing_field("event_name", where)
    if not isinstance(name, str):
        raise invalid_type("expected str", f"{where}.event_name")
    if name not in EVENT_COUNTS:
        raise invalid_event(
            f"event_name must be one of {', '.join(sorted(EVENT_COUNTS))}, got {name!r}",
            f"{where}.event_name",
        )
    camp_id = event.get("camp_id")
    if camp_id is None:
        raise missing_field("camp_id", where)
    if isinstance(camp_id, bool) or not isinstance(camp_id, int):
        raise invalid_type("expected int", f"{where}.camp_id")
    if not 0 < camp_id <= MAX_INT:  # the range a campaign can have (targeted push)
        raise invalid_value(f"camp_id must be between 1 and {MAX_INT}", f"{where}.camp_id")
    stamp = event.get("timestamp")
    if stamp is None:
        at = now
    elif isinstance(stamp, str):
        at = parse_timestamp(stamp, f"{where}.timestamp")
    else:
        raise invalid_type("expected str", f"{where}.timestamp")
    if at > now + CLOCK_SKEW_SECONDS:
        at = now
    return AppEvent(name, camp_id, at)
