"""Prometheus metrics, kept off the hot path.

Requests are counted in plain dicts (one dict update and one bisect per
request); the Prometheus families are built only when /metrics is scraped.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        # per path: bucket counts (last one is +Inf) and the sum of durations
        self.latency: dict[str, tuple[list[int], list[float]]] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        key = (path, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        entry = self.latency.get(path)
        if entry is None:
            entry = self.latency[path] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
        entry[0][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        entry[1][0] += seconds


class Collector:
    def __init__(self, requests: RequestMetrics, gauges: dict[str, tuple[str, float]]):
        self.requests = requests
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(
            "pushgate_http_requests",
            "HTTP requests by endpoint and status",
            labels=["endpoint", "status"],
        )
        for (path, status), count in self.requests.counts.items():
            counter.add_metric([path, str(status)], count)
        yield counter
        histogram = HistogramMetricFamily(
            "pushgate_http_request_duration_seconds",
            "Time to answer, by endpoint",
            labels=["endpoint"],
        )
        for path, (buckets, total) in self.requests.latency.items():
            cumulative = 0
            points = []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
                cumulative += count
                points.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            histogram.add_metric([path], points, total[0])
        yield histogram
        for name, (doc, value) in self.gauges.items():
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge


def exposition(requests: RequestMetrics, gauges: dict[str, tuple[str, float]]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(requests, gauges))
    return generate_latest(registry)
