"""When a push becomes due: `send_at`, `local_time` and the partner's quiet hours (pure).

contract.md: `send_at` is RFC 3339 with an offset or Unix seconds, at most 30 days ahead;
`local_time` "HH:MM" is the next time the user's own clock shows it; quiet hours are read on
each user's clock. A wall time skipped by daylight saving is sent at the first valid minute
after it, and one that occurs twice at its first occurrence.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pushgate.targeting import errors

MAX_AHEAD_SECONDS: int = 30 * 86_400
MINUTES_PER_DAY = 1440

# Written out rather than left to float() and datetime.fromisoformat(), which also take
# "1e9", "inf", " 12_3 ", week dates and date-times without an offset.
_UNIX = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-5][0-9]|60)"
    r"(\.[0-9]+)?(?:([Zz])|([+-])([0-9]{2}):([0-5][0-9]))"
)
_HH_MM = r"([01][0-9]|2[0-3]):([0-5][0-9])"
_LOCAL_TIME = re.compile(_HH_MM)
_QUIET_HOURS = re.compile(rf"{_HH_MM}-{_HH_MM}")
# The longest IANA name is 32 characters; anything much longer is not one, and is not kept
# in the cache below (the names come from users' devices and profiles).
_LONGEST_ZONE_NAME = 64
# Enough to cross a whole skipped day (Pacific/Apia, 2011-12-30) with room to spare.
_GAP_WALK_MINUTES = 48 * 60


def parse_send_at(value: object, now: float) -> float | None:
    """A notification's `send_at` as epoch seconds (None when it has none): Unix seconds, as a
    number (not a bool) or decimal text, or an RFC 3339 date-time with an offset or `Z`
    (fractional seconds, a lower-case t or z and a space for the T are taken too). A time in
    the past is returned as it is: the caller sends it now. `invalid_send_at`, naming the field,
    for another type, other text, a date-time without an offset, a non-finite number, and a
    time more than MAX_AHEAD_SECONDS after `now`."""
    if value is None:
        return None
    # bool is an int to Python, but `true` is no time to JSON.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise errors.invalid_send_at(
            "'send_at' must be an RFC 3339 date-time with an offset or Unix seconds, "
            f"got {_shown(value)}"
        )
    seconds = _send_at_text(value) if isinstance(value, str) else _finite(value)
    if seconds - now > MAX_AHEAD_SECONDS:
        raise errors.invalid_send_at(
            f"'send_at' must be at most {MAX_AHEAD_SECONDS // 86_400} days in the future"
        )
    return seconds


def _finite(value: float) -> float:
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond any float
        seconds = math.inf
    if not math.isfinite(seconds):
        raise errors.invalid_send_at("'send_at' must be a finite number of seconds")
    return seconds


def _send_at_text(text: str) -> float:
    if _UNIX.fullmatch(text):
        return _finite(float(text))
    m = _RFC3339.fullmatch(text)
    if m is None:
        naive = re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9:.]+", text)
        detail = "it has no offset (add Z or ±HH:MM)" if naive else "it is not RFC 3339"
        raise errors.invalid_send_at(
            f"'send_at' must be an RFC 3339 date-time with an offset or Unix seconds; "
            f"{detail}: {_shown(text)}"
        )
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    sign, off_hours, off_minutes = m.group(9), m.group(10), m.group(11)
    offset = timedelta(0)
    if sign is not None:
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
        offset = -offset if sign == "-" else offset
    # RFC 3339 allows a leap second (:60), which POSIX time counts as the next second.
    leap = 1 if second == 60 else 0
    try:
        start = datetime(year, month, day, hour, minute, second - leap, tzinfo=timezone(offset))
        return start.timestamp() + leap + float(m.group(7) or 0)
    except (ValueError, OverflowError):  # 2026-02-30, hour 24, offset +24:00, year 0000
        raise errors.invalid_send_at(
            f"'send_at' is not a valid date-time: {_shown(text)}"
        ) from None


def _shown(value: object) -> str:
    """The value as a message quotes it: a string, cut short (the request may hold any
    amount of text); else its type (str() of an int refuses past 4300 digits)."""
    if not isinstance(value, str):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


def parse_local_time(value: object) -> int | None:
    """A notification's `local_time`, "HH:MM" (00:00 to 23:59, two digits each), as the minute
    of the day (None when it has none); anything else is `invalid_send_at`, naming the field."""
    if value is None:
        return None
    m = _LOCAL_TIME.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise errors.invalid_send_at(
            f"'local_time' must be \"HH:MM\" between 00:00 and 23:59, got {_shown(value)}"
        )
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_quiet_hours(text: str) -> tuple[int, int] | None:
    """A partner's quiet hours: "HH:MM-HH:MM" -> (start minute, end minute); "off" (any
    case, surrounding spaces) -> None. Raises ValueError with a one-line message on anything
    else, including start == end."""
    text = text.strip()
    if text.lower() == "off":
        return None
    m = _QUIET_HOURS.fullmatch(text)
    if m is None:
        raise ValueError(f'quiet hours must be "HH:MM-HH:MM" or "off", got {text!r}')
    start, end = (int(m.group(i)) * 60 + int(m.group(i + 1)) for i in (1, 3))
    if start == end:
        raise ValueError(f'quiet hours must start and end at different times (or be "off"): {text}')
    return start, end


def format_quiet_hours(window: tuple[int, int] | None) -> str:
    if window is None:
        return "off"
    start, end = window
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def zone_named(name: object) -> ZoneInfo | None:
    """The zone an IANA name names (looked up once per name); None for anything else: not a
    string, empty, too long, malformed ("../x", an absolute path) or unknown. Never raises:
    the names come from apps and profiles, not from the caller."""
    if not isinstance(name, str) or not 0 < len(name) <= _LONGEST_ZONE_NAME:
        return None
    return _zone(name)


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    # Not found, malformed ("../x", "/etc/x", "a\0b", a non-TZif file) and a directory or an
    # over-long path (OSError) are each a user's bad data, skipped by the caller.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def user_zone(
    device_attributes: Mapping[str, Any],
    profile_attributes: Mapping[str, Any],
    partner_zone: str | None,
) -> ZoneInfo:
    """The user's clock (contract.md): the zone the SDK sent with the device, else the
    profile's `timezone` attribute (as an upsert sets it, or as a session stored it), else the
    partner's zone, else UTC; a name that is no zone is passed over."""
    for name in (
        device_attributes.get("INSIDER.timezone"),
        profile_attributes.get("timezone"),
        profile_attributes.get("INSIDER.timezone"),
        partner_zone,
    ):
        zone = zone_named(name)
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


def next_local_time(after: float, minute_of_day: int, zone: ZoneInfo) -> float:
    """The first instant at or after `after` at which the clock in `zone` shows the minute:
    `after` itself when the clock shows it already (the minute has begun and is not over),
    else that minute's start, today or later. A minute that a clock change skips that day
    resolves to the first minute after it that exists; a minute the clock shows twice, to its
    first occurrence (to its second when `after` is past the first: the clock shows it again)."""
    hour, minute = divmod(minute_of_day, 60)
    # From the day before: a gap or a fall back across midnight can put yesterday's wall
    # minute after `after`. A minute that began before `after` but is not over yet counts.
    day = datetime.fromtimestamp(after, zone).date() - timedelta(days=1)
    # Ends within days: even a clock set back a whole day (Alaska, 1867) moves on after it.
    while True:
        wall = datetime(day.year, day.month, day.day, hour, minute)
        later = [t for t in _instants(wall, zone) if t + 60 > after]
        if later:
            return max(after, min(later))
        day += timedelta(days=1)


def _instants(wall: datetime, zone: ZoneInfo) -> list[float]:
    """Epoch seconds at which the clock in `zone` shows the naive `wall`: one, two when the
    clock falls back over it (first occurrence first), or, when it springs forward over it,
    the first valid minute after it."""
    found = [
        t
        for t in (wall.replace(tzinfo=zone, fold=fold).timestamp() for fold in (0, 1))
        if _shows(t, wall, zone)
    ]
    if found:
        return found
    for minutes in range(1, _GAP_WALK_MINUTES + 1):
        candidate = wall + timedelta(minutes=minutes)
        t = candidate.replace(tzinfo=zone).timestamp()
        if _shows(t, candidate, zone):
            return [t]
    return [wall.replace(tzinfo=zone).timestamp()]


def _shows(at: float, wall: datetime, zone: ZoneInfo) -> bool:
    return datetime.fromtimestamp(at, zone).replace(tzinfo=None) == wall


def in_quiet_hours(at: float, window: tuple[int, int], zone: ZoneInfo) -> bool:
    """Whether local wall time at `at` falls in [start, end) of the window, which wraps
    past midnight when start > end."""
    local = datetime.fromtimestamp(at, zone)
    minute = local.hour * 60 + local.minute
    start, end = window
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def after_quiet_hours(at: float, window: tuple[int, int], zone: ZoneInfo) -> float:
    """`at` if not in quiet hours, else next_local_time(at, end, zone) (the window's end)."""
    if not in_quiet_hours(at, window, zone):
        return at
    return next_local_time(at, window[1], zone)


def due_time(
    now: float,
    send_at: float | None,
    local_time: int | None,
    quiet: tuple[int, int] | None,
    zone: Callable[[], ZoneInfo],
) -> float:
    """When one push becomes due: at its `send_at` (now if that has passed), at the user's
    next `local_time`, or now; then, inside the `quiet` window (None: the partner has none, or
    the notification ignores it), at the window's end. `zone` gives the user's zone, looked up
    only when one is needed, and once."""
    tz: ZoneInfo | None = None
    if send_at is not None:
        due = max(now, send_at)
    elif local_time is not None:
        tz = zone()
        due = next_local_time(now, local_time, tz)
    else:
        due = now
    if quiet is None:
        return due
    return after_quiet_hours(due, quiet, tz if tz is not None else zone())
