"""The process's own counters, kept off the hot path.

Counting is plain dict and list updates on objects made in advance (one per route, say), so a
request or a send pays a few O(1) updates and no Prometheus machinery; the Prometheus families
are built only when /metrics is scraped (exposition.py). Every process counts what it did
itself; the serving process adds up its children's (merge_*), and separate `serve` commands
are added up by Prometheus.

Label values come from bounded sets: route templates, not raw paths; the platforms; the
exclusion and fail-record reason names. Reasons a provider chose are capped at MAX_REASONS
distinct values per process, beyond which they are counted as `Other`.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TypeVar

from pushgate.jobs import DEAD, DONE, EXPIRED, FAILED, QUEUED, DeliveryOutcome
from pushgate.targeting.decide import Outcome

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # the endpoint label of requests no route took (404, 405)
HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
MAX_REASONS = 64
OTHER_REASON = "Other"
# A job's state after an attempt, as the `outcome` label of pushgate_delivery_sends_total.
OUTCOMES = {DONE: "accepted", QUEUED: "retried", FAILED: "failed", EXPIRED: "expired", DEAD: "dead"}
DEVICE_STATUS = {"unregister": "unregistered"}
K = TypeVar("K")


class Histogram:
    """Counts per bucket (the last one is +Inf) and the sum, as Prometheus wants them."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # `le` buckets include their bound: the first bound >= value.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def add(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total

    def cumulative(self) -> list[tuple[str, float]]:
        points: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            points.append((bound, running))
        return points


class EndpointStats:
    """One route's requests: counts per status and the latency histogram."""

    __slots__ = ("endpoint", "latency", "method", "statuses")

    def __init__(self, method: str, endpoint: str) -> None:
        self.method = method
        self.endpoint = endpoint
        self.statuses: dict[int, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS)

    def observe(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latency.observe(seconds)


class RequestMetrics:
    def __init__(self) -> None:
        self.endpoints: list[EndpointStats] = []
        self._unmatched: dict[str, EndpointStats] = {}

    def endpoint(self, method: str, template: str) -> EndpointStats:
        """The stats of a route, made once when the route is added."""
        stats = EndpointStats(method, template)
        self.endpoints.append(stats)
        return stats

    def unmatched(self, method: str) -> EndpointStats:
        """Requests no route took, by method (any other method is `other`, so a client
        cannot make new series)."""
        key = method if method in HTTP_METHODS else "other"
        stats = self._unmatched.get(key)
        if stats is None:
            stats = self._unmatched[key] = self.endpoint(key, UNMATCHED)
        return stats


class _Reasons:
    """Reason label values as they come, up to MAX_REASONS distinct ones, then `Other`."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, reason: str) -> str:
        if reason in self._seen:
            return reason
        if len(self._seen) >= MAX_REASONS:
            return OTHER_REASON
        self._seen.add(reason)
        return reason


class PushMetrics:
    """What the Targeted Push API decided for each user: queued per platform, or excluded
    (and why: `UserGloballyCapped` is the frequency cap)."""

    def __init__(self) -> None:
        self.queued: dict[str, int] = {}
        self.excluded: dict[str, int] = {}

    def count(self, outcomes: Iterable[Outcome]) -> None:
        queued, excluded = self.queued, self.excluded
        for o in outcomes:
            if o.device is not None:
                queued[o.device.platform] = queued.get(o.device.platform, 0) + 1
            elif o.reason is not None:
                excluded[o.reason] = excluded.get(o.reason, 0) + 1


class DeliveryMetrics:
    """The delivery worker's attempts, by platform (ios: APNs, android: FCM, huawei: HMS)."""

    def __init__(self) -> None:
        # (platform, outcome, reason): reason is the fail record's name, "" when accepted or
        # retried (pushgate_delivery_retries_total says why a send is retried).
        self.sends: dict[tuple[str, str, str], int] = {}
        self.retries: dict[tuple[str, str], int] = {}
        self.invalidations: dict[tuple[str, str], int] = {}  # (platform, new device status)
        self.send_seconds: dict[str, Histogram] = {}
        # Worker trouble: claim_failed, lease_lost, crashed.
        self.events: Counter[str] = Counter()
        self._reason = _Reasons()

    def provider_answered(self, platform: str, seconds: float) -> None:
        histogram = self.send_seconds.get(platform)
        if histogram is None:
            histogram = self.send_seconds[platform] = Histogram(SEND_BUCKETS)
        histogram.observe(seconds)

    def settled(self, platform: str, outcome: DeliveryOutcome, retry_reason: str) -> None:
        """An attempt's outcome, recorded by the worker that held the job."""
        state = OUTCOMES.get(outcome.state, outcome.state)
        reason = self._reason(outcome.reason) if outcome.reason else ""
        key = (platform, state, reason)
        self.sends[key] = self.sends.get(key, 0) + 1
        if outcome.state == QUEUED:
            retry = (platform, self._reason(retry_reason))
            self.retries[retry] = self.retries.get(retry, 0) + 1
        if outcome.device_action is not None:
            dead = (platform, DEVICE_STATUS[outcome.device_action])
            self.invalidations[dead] = self.invalidations.get(dead, 0) + 1


def add_counts(into: dict[K, int], part: Mapping[K, int]) -> None:
    """Add `part`'s counts into `into`, key by key."""
    for key, n in part.items():
        into[key] = into.get(key, 0) + n


def merge_delivery(parts: list[DeliveryMetrics]) -> DeliveryMetrics:
    """The sum of several workers' counters."""
    total = DeliveryMetrics()
    for part in parts:
        add_counts(total.sends, part.sends)
        add_counts(total.retries, part.retries)
        add_counts(total.invalidations, part.invalidations)
        for platform, histogram in part.send_seconds.items():
            into = total.send_seconds.get(platform)
            if into is None:
                into = total.send_seconds[platform] = Histogram(histogram.bounds)
            into.add(histogram)
        total.events.update(part.events)
    return total


def merge_requests(parts: list[RequestMetrics]) -> RequestMetrics:
    """The sum of several API processes' request counters, route by route."""
    total = RequestMetrics()
    by_route: dict[tuple[str, str], EndpointStats] = {}
    for part in parts:
        for stats in part.endpoints:
            into = by_route.get((stats.method, stats.endpoint))
            if into is None:
                into = by_route[stats.method, stats.endpoint] = total.endpoint(
                    stats.method, stats.endpoint
                )
            add_counts(into.statuses, stats.statuses)
            into.latency.add(stats.latency)
    return total


def merge_pushes(parts: list[PushMetrics]) -> PushMetrics:
    """The sum of several API processes' push decisions."""
    total = PushMetrics()
    for part in parts:
        add_counts(total.queued, part.queued)
        add_counts(total.excluded, part.excluded)
    return total
