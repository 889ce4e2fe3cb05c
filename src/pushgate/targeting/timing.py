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
    """None when value is None. Accepts int/float Unix seconds (not bool), a string of
    decimal Unix seconds, or an RFC 3339 date-time string WITH offset or Z (e.g.
    "2026-12-08T09:00:00+02:00", "2026-12-08T09:00:00Z", fractional seconds allowed; a
    lower-case t/z and a space separator may be accepted). Returns epoch seconds (a time in the
    past is returned as is; the caller sends it now). Raises errors.invalid_send_at(message)
    with a clear message naming `send_at` for: wrong type, unparsable text, a date-time without
    offset, non-finite numbers, and a time more than MAX_AHEAD_SECONDS after `now`."""
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
    """None when value is None; "HH:MM" (00:00..23:59, exactly two digits each) -> minute of
    day. Anything else raises errors.invalid_send_at naming `local_time`."""
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
    """The zone for an IANA name, cached (functools.lru_cache on the str); None for a
    non-string, empty, malformed (e.g. "../x", absolute paths — ZoneInfo raises ValueError
    for some) or unknown name. Never raises."""
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
    """The first usable zone of: device_attributes["INSIDER.timezone"],
    profile_attributes["timezone"], profile_attributes["INSIDER.timezone"], partner_zone,
    else UTC (ZoneInfo("UTC"))."""
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
    """The first instant at or after `after` (epoch seconds) at which the local clock in
    `zone` shows that minute: if the clock shows that minute at `after` already (i.e.
    within [HH:MM:00, HH:MM:59.999]) returns `after` itself; otherwise the next day's or
    today's HH:MM:00 that is later. A wall time in a DST gap resolves to the first valid
    minute after it (walk forward minute by minute in wall time until
    local->UTC->local round-trips; bound the walk, e.g. 48 h, then fall back to fold=0).
    A repeated wall time resolves to its first occurrence (to its second when `after` is
    past the first: the clock shows it again then)."""
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
    """When one push becomes due: max(now, send_at) if send_at; next_local_time(now,
    local_time, zone()) if local_time; else now; then moved past quiet hours when `quiet`
    is not None (the caller passes None when the notification ignores quiet hours or the
    partner has none). `zone` is called at most once and only when needed (it costs a lookup
    per user)."""
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
