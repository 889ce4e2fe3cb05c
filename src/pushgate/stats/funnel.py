"""Campaign counters: their names, what increments them, and the funnel read from them (pure).

Counters are rows `(camp_id, name, hour) -> count`; docs/statistics.md says what each name means.
Names carry their split after colons (`queued:ios`, `failed:android:NotRegistered`), so one
additive upsert per name and hour is all a writer ever does.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pushgate.jobs import CANCELLED_REASON, DEAD, DONE, EXPIRED, FAILED
from pushgate.targeting.decide import NO_USER_FOUND, Outcome
from pushgate.wire.stats import FailRecord, FunnelCounts, PlatformCounts, Rates, SeriesPoint

PLATFORMS = ("ios", "android", "huawei")
REQUESTED = "requested"
QUEUED = "queued"
EXCLUDED = "excluded"
ACCEPTED = "accepted"
FAILED_NAME = "failed"
EXPIRED_NAME = "expired"
DELIVERED = "delivered"
OPENED = "opened"

PUSH_DELIVERED = "push_delivered"
PUSH_SESSION = "push_session"
# An open proves the push arrived: a session also counts the user as delivered.
EVENT_COUNTS: dict[str, tuple[str, ...]] = {
    PUSH_DELIVERED: (DELIVERED,),
    PUSH_SESSION: (DELIVERED, OPENED),
}

CountKey = tuple[int, str]  # (camp_id, counter name)


def hour_of(ts: float) -> int:
    """The UTC hour a timestamp falls in, as hours since the epoch."""
    return int(ts // 3600)


def hour_instant(hour: int) -> datetime.datetime:
    return instant(hour * 3600)


def instant(ts: float) -> datetime.datetime:
    """UTC to the whole second: msgspec encodes it as `2027-01-15T09:02:03Z`."""
    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC)


def outcome_counts(outcomes: Iterable[Outcome]) -> Counter[CountKey]:
    """The API's counts for one request: users requested, queued per platform, excluded."""
    counts: Counter[CountKey] = Counter()
    for o in outcomes:
        camp = o.push.camp_id
        counts[camp, REQUESTED] += 1
        if o.device is not None:
            counts[camp, f"{QUEUED}:{o.device.platform}"] += 1
        elif o.reason is not None:
            counts[camp, f"{EXCLUDED}:{o.reason}"] += 1
    return counts


def settled_counter(state: str, platform: str, reason: str | None) -> str | None:
    """The counter a job's final state increments; None while it is still to be retried."""
    if state == DONE:
        return f"{ACCEPTED}:{platform}"
    if state == EXPIRED:
        return f"{EXPIRED_NAME}:{platform}"
    if state in (FAILED, DEAD):
        return f"{FAILED_NAME}:{platform}:{reason or 'Unknown'}"
    return None


def percent(part: int, whole: int) -> float:
    return round(part * 100 / whole, 2) if whole else 0.0


def open_rate_text(opened: int, delivered: int) -> str:
    """Insider's format: `"% "` then the percentage with two decimals."""
    return f"% {percent(opened, delivered):.2f}"


@dataclass
class Funnel:
    """One campaign's totals, read from its counter rows."""

    requested: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    platforms: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            p: {QUEUED: 0, ACCEPTED: 0, FAILED_NAME: 0, EXPIRED_NAME: 0} for p in PLATFORMS
        }
    )
    failed_by_name: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    opened: int = 0
    scheduled: int = 0  # queued and waiting for their time: read from the jobs, not counted

    def add(self, name: str, count: int) -> None:
        kind, _, rest = name.partition(":")
        if kind == REQUESTED:
            self.requested += count
        elif kind == EXCLUDED:
            self.excluded[rest] = self.excluded.get(rest, 0) + count
        elif kind in (QUEUED, ACCEPTED, EXPIRED_NAME, FAILED_NAME):
            platform, _, reason = rest.partition(":")
            split = self.platforms.setdefault(
                platform, {QUEUED: 0, ACCEPTED: 0, FAILED_NAME: 0, EXPIRED_NAME: 0}
            )
            split[kind] += count
            if kind == FAILED_NAME:
                self.failed_by_name[reason] = self.failed_by_name.get(reason, 0) + count
        elif kind == DELIVERED:
            self.delivered += count
        elif kind == OPENED:
            self.opened += count

    def total(self, kind: str) -> int:
        return sum(split[kind] for split in self.platforms.values())

    @property
    def cancelled(self) -> int:
        return self.failed_by_name.get(CANCELLED_REASON, 0)

    @property
    def resolved(self) -> int:
        return self.requested - self.excluded.get(NO_USER_FOUND, 0)

    @property
    def pending(self) -> int:
        queued = self.total(QUEUED)
        return queued - self.total(ACCEPTED) - self.total(FAILED_NAME) - self.total(EXPIRED_NAME)

    def summary(self) -> FunnelCounts:
        """The funnel object of the report (docs/statistics.md)."""
        return FunnelCounts(
            requested=self.requested,
            resolved=self.resolved,
            excluded=dict(sorted(self.excluded.items())),
            queued=self.total(QUEUED),
            scheduled=self.scheduled,
            accepted=self.total(ACCEPTED),
            failed=self.total(FAILED_NAME),
            cancelled=self.cancelled,
            expired=self.total(EXPIRED_NAME),
            pending=self.pending,
            delivered=self.delivered,
            opened=self.opened,
        )

    def rates(self) -> Rates:
        return Rates(
            delivery_rate=percent(self.delivered, self.total(ACCEPTED)),
            open_rate=percent(self.opened, self.delivered),
        )

    def platform_counts(self) -> dict[str, PlatformCounts]:
        return {
            platform: PlatformCounts(
                queued=split[QUEUED],
                accepted=split[ACCEPTED],
                failed=split[FAILED_NAME],
                expired=split[EXPIRED_NAME],
            )
            for platform, split in self.platforms.items()
        }


def funnel_of(rows: Iterable[tuple[str, int]]) -> Funnel:
    funnel = Funnel()
    for name, count in rows:
        funnel.add(name, count)
    return funnel


SERIES_FIELDS = (REQUESTED, QUEUED, ACCEPTED, FAILED_NAME, EXPIRED_NAME, DELIVERED, OPENED)


def series(rows: Iterable[tuple[int, str, int]]) -> list[SeriesPoint]:
    """Hourly points, oldest first, from `(hour, name, count)` rows."""
    points: dict[int, dict[str, int]] = {}
    for hour, name, count in rows:
        kind = name.partition(":")[0]
        if kind not in SERIES_FIELDS:
            continue
        point = points.get(hour)
        if point is None:
            point = points[hour] = dict.fromkeys(SERIES_FIELDS, 0)
        point[kind] += count
    return [SeriesPoint(hour=hour_instant(h), **points[h]) for h in sorted(points)]


@dataclass(frozen=True)
class FailGroup:
    name: str
    count: int
    platforms: dict[str, int]
    sample_tokens: Sequence[str]

    def record(self) -> FailRecord:
        return FailRecord(
            name=self.name,
            count=self.count,
            platforms=self.platforms,
            sample_tokens=list(self.sample_tokens),
        )


def fail_groups(
    rows: Iterable[tuple[str, str, int]], samples: dict[str, list[str]]
) -> list[FailGroup]:
    """Fail records grouped by name from `(name, platform, count)` rows, largest first."""
    by_name: dict[str, dict[str, int]] = {}
    for name, platform, count in rows:
        by_name.setdefault(name, {})[platform] = count
    groups = [
        FailGroup(name, sum(split.values()), dict(sorted(split.items())), samples.get(name, []))
        for name, split in by_name.items()
    ]
    return sorted(groups, key=lambda g: (-g.count, g.name))
