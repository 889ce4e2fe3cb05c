"""When a send's pushes become due: the `send_at`, `local_time` and `ignore_quiet_hours` a
`send`/`submit` call gives for its notifications (docs/api.md, "Send later").

The notification's own fields keep the server's wire forms (RFC 3339 text with an offset, or
Unix seconds), since `Notification` is the very Struct the server decodes with; the call's
`send_at` also takes a `datetime`, made into RFC 3339 text here. A naive datetime is refused:
the server would refuse its text too, but the mistake is the caller's Python, so it is a
`ValueError` before anything is sent, like a missing key.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from pushgate.wire.push import Notification

# A datetime with its zone, Unix seconds, or the server's own text forms.
SendAt = datetime.datetime | int | float | str


def send_at_value(value: SendAt) -> float | str:
    """`value` as the `send_at` of a notification; raises ValueError for a naive datetime
    (and a bool, which Python counts as an int but is no time)."""
    if isinstance(value, datetime.datetime):
        offset = value.utcoffset()
        if offset is None:
            raise ValueError(
                "send_at: a naive datetime has no time zone, so it is no instant; give it one"
                " (datetime.now(datetime.UTC), .replace(tzinfo=ZoneInfo(...))) or Unix seconds"
            )
        # RFC 3339 offsets are whole minutes; a zone's old local mean time is not.
        if offset % datetime.timedelta(minutes=1):
            value = value.astimezone(datetime.UTC)
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(
            f"send_at: a datetime, Unix seconds or RFC 3339 text, not {type(value).__name__}"
        )
    return value


@dataclass(frozen=True, slots=True)
class Timing:
    """The timing a `send`/`submit` call gives its notifications: defaults, never overrides.

    `send_at` or `local_time` (one "when") goes to the notifications that have no when of
    their own, whole: a notification's own `send_at` is not joined by the call's `local_time`,
    which the server would refuse. `ignore_quiet_hours=True` goes to every notification."""

    send_at: float | str | None = None
    local_time: str | None = None
    ignore_quiet_hours: bool = False

    @classmethod
    def of(cls, send_at: SendAt | None, local_time: str | None, ignore_quiet_hours: bool) -> Timing:
        """Raises ValueError for a naive datetime, or `send_at` and `local_time` together."""
        if send_at is not None and local_time is not None:
            raise ValueError("give send_at or local_time, not both: each says when to send")
        value = None if send_at is None else send_at_value(send_at)
        return cls(value, local_time, ignore_quiet_hours)

    def apply(self, notifications: Sequence[Notification]) -> Sequence[Notification]:
        if self.send_at is None and self.local_time is None and not self.ignore_quiet_hours:
            return notifications
        return [self._on(n) for n in notifications]

    def _on(self, n: Notification) -> Notification:
        changes: dict[str, Any] = {}
        if n.send_at is None and n.local_time is None:
            changes |= {"send_at": self.send_at, "local_time": self.local_time}
        if self.ignore_quiet_hours:
            changes["ignore_quiet_hours"] = True
        return msgspec.structs.replace(n, **changes) if changes else n
