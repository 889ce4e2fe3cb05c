"""/metrics: the Prometheus families, built from the counters only when scraped.

Names and label sets are part of the operator's interface: docs/operations.md ("Monitoring")
lists every one; change them only together with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from pushgate.metrics import DeliveryMetrics, PushMetrics, RequestMetrics
from pushgate.queue.backlog import Backlog

WORKER_ERRORS = ("claim_failed", "lease_lost", "crashed")
JETSTREAM_EVENTS = {
    "published": "published",
    "duplicates": "duplicate",
    "skipped": "skipped",
    "dead_letters": "dead_letter",
    "unknown": "unknown_job",
    "foreign": "foreign",
}


@dataclass
class Scrape:
    """Everything one scrape reports: this process's counters, and the queue as the store
    sees it (None when it could not be read)."""

    requests: RequestMetrics
    pushes: PushMetrics
    delivery: DeliveryMetrics | None = None  # None: no worker in this process
    in_flight: int = 0
    backlog: Backlog | None = None
    store_units: int = 0
    store_commits: int = 0
    jetstream: Mapping[str, int] = field(default_factory=dict)


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def http_families(requests: RequestMetrics) -> Iterator[Metric]:
    counts = _counter(
        "pushgate_http_requests",
        "HTTP requests answered, by method, route template and status",
        ["method", "endpoint", "status"],
    )
    latency = HistogramMetricFamily(
        "pushgate_http_request_duration_seconds",
        "Time from the request's arrival to its answer being sent, by method and route template",
        labels=["method", "endpoint"],
    )
    for e in requests.endpoints:
        if not e.statuses:
            continue
        for status, count in sorted(e.statuses.items()):
            counts.add_metric([e.method, e.endpoint, str(status)], count)
        latency.add_metric([e.method, e.endpoint], e.latency.cumulative(), e.latency.total)
    yield counts
    yield latency


def push_families(pushes: PushMetrics) -> Iterator[Metric]:
    queued = _counter(
        "pushgate_push_queued",
        "Users of targeted pushes whose send was queued, by the chosen device's platform",
        ["platform"],
    )
    for platform, count in sorted(pushes.queued.items()):
        queued.add_metric([platform], count)
    yield queued
    excluded = _counter(
        "pushgate_push_exclusions",
        "Users of targeted pushes not sent to, by reason (UserGloballyCapped: the frequency cap)",
        ["reason"],
    )
    for reason, count in sorted(pushes.excluded.items()):
        excluded.add_metric([reason], count)
    yield excluded


def delivery_families(delivery: DeliveryMetrics, in_flight: int) -> Iterator[Metric]:
    sends = _counter(
        "pushgate_delivery_sends",
        "Delivery attempts recorded, by platform, outcome and fail-record reason",
        ["platform", "outcome", "reason"],
    )
    for (platform, outcome, reason), count in sorted(delivery.sends.items()):
        sends.add_metric([platform, outcome, reason], count)
    yield sends
    retries = _counter(
        "pushgate_delivery_retries",
        "Attempts that will be tried again after a backoff, by platform and transient reason",
        ["platform", "reason"],
    )
    for (platform, reason), count in sorted(delivery.retries.items()):
        retries.add_metric([platform, reason], count)
    yield retries
    dead = _counter(
        "pushgate_delivery_token_invalidations",
        "Device tokens the provider refused for good, by platform and the device's new status",
        ["platform", "status"],
    )
    for (platform, status), count in sorted(delivery.invalidations.items()):
        dead.add_metric([platform, status], count)
    yield dead
    seconds = HistogramMetricFamily(
        "pushgate_delivery_send_duration_seconds",
        "Time from handing a push to the provider client to its answer, by platform",
        labels=["platform"],
    )
    for platform, histogram in sorted(delivery.send_seconds.items()):
        seconds.add_metric([platform], histogram.cumulative(), histogram.total)
    yield seconds
    errors = _counter(
        "pushgate_delivery_worker_errors",
        "Claims that failed, outcomes not recorded because the lease ran out, attempts that crashed",
        ["error"],
    )
    for error in WORKER_ERRORS:
        errors.add_metric([error], delivery.events[error])
    yield errors
    yield _gauge("pushgate_delivery_in_flight", "Sends this worker has under way", in_flight)


def queue_families(backlog: Backlog) -> Iterator[Metric]:
    jobs = GaugeMetricFamily(
        "pushgate_queue_jobs", "Delivery jobs not yet settled, by state", labels=["state"]
    )
    jobs.add_metric(["queued"], backlog.queued)
    jobs.add_metric(["leased"], backlog.leased)
    jobs.add_metric(["scheduled"], backlog.scheduled)
    yield jobs
    yield _gauge(
        "pushgate_queue_depth",
        "Delivery jobs queued or leased (those scheduled for later are not counted)",
        backlog.queued + backlog.leased,
    )
    yield _gauge(
        "pushgate_queue_oldest_job_age_seconds",
        "Age of the oldest job queued or leased, scheduled ones aside (0 when there is none)",
        backlog.oldest_age,
    )
    yield _gauge(
        "pushgate_queue_lag_seconds",
        "How long the most overdue job has been due without being claimed (0 when none is)",
        backlog.lag,
    )
    if backlog.outbox is not None:
        yield _gauge(
            "pushgate_queue_outbox_jobs",
            "Jobs committed but not yet published to JetStream",
            backlog.outbox,
        )


class _Collector:
    def __init__(self, scrape: Scrape) -> None:
        self.scrape = scrape

    def collect(self) -> Iterator[Metric]:
        s = self.scrape
        yield from http_families(s.requests)
        yield from push_families(s.pushes)
        if s.delivery is not None:
            yield from delivery_families(s.delivery, s.in_flight)
        if s.backlog is not None:
            yield from queue_families(s.backlog)
        if s.jetstream:
            events = _counter(
                "pushgate_jetstream_messages",
                "JetStream messages: published by the relay, duplicates the stream dropped,"
                " fetched but not due, and given up after MaxDeliver",
                ["event"],
            )
            for key, label in JETSTREAM_EVENTS.items():
                events.add_metric([label], s.jetstream.get(key, 0))
            yield events
        # Names kept from the first benchmarks (bench/run_api_bench.py reads them).
        yield _gauge(
            "pushgate_sqlite_commits",
            "Transactions the store's executor committed",
            s.store_commits,
        )
        yield _gauge(
            "pushgate_sqlite_units", "Units of work the store's executor ran", s.store_units
        )


def exposition(scrape: Scrape) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(scrape))
    return generate_latest(registry)
