"""Load shedding (api/admission.py): which request is refused, and that what is admitted is
given back."""

from __future__ import annotations

import json
from typing import Any

from pushgate.api.admission import Admission, Limits
from pushgate.api.http import MAX_BODY_BYTES


def scope(path: str = "/api/v2/notification/user", length: int | None = 100) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


class Gauges:
    def __init__(self) -> None:
        self.store = 0
        self.queue: int | None = None


def admission(gauges: Gauges | None = None, **limits: int) -> Admission:
    g = gauges or Gauges()
    return Admission(Limits(**limits), lambda: g.store, lambda: g.queue)


def reason(answer: Any) -> str:
    assert answer is not None
    assert answer.status == 503
    assert (b"retry-after", b"1") in answer.headers
    body = json.loads(answer.body)
    assert body["error"] == "overloaded"
    return str(body["message"])


def test_requests_beyond_the_bound_in_progress_are_refused_until_one_ends() -> None:
    a = admission(max_requests=2)
    assert a.refuse(scope()) is None
    assert a.refuse(scope()) is None
    assert "too many requests in progress" in reason(a.refuse(scope()))
    a.release(scope())
    assert a.refuse(scope()) is None
    assert a.requests == 2


def test_bodies_beyond_the_byte_bound_are_refused_by_their_announced_length() -> None:
    a = admission(max_body_bytes=1000)
    assert a.refuse(scope(length=600)) is None
    assert "request bytes" in reason(a.refuse(scope(length=600)))
    assert a.refuse(scope(length=400)) is None
    assert a.body_bytes == 1000
    a.release(scope(length=600))
    a.release(scope(length=400))
    assert (a.requests, a.body_bytes) == (0, 0)


def test_a_body_without_a_length_counts_as_the_largest_allowed() -> None:
    a = admission(max_body_bytes=MAX_BODY_BYTES + 10)
    assert a.refuse(scope(length=None)) is None
    assert a.body_bytes == MAX_BODY_BYTES
    assert reason(a.refuse(scope(length=20)))


def test_a_saturated_store_refuses_new_requests() -> None:
    gauges = Gauges()
    a = admission(gauges, max_store_backlog=10)
    gauges.store = 10
    assert "database is saturated" in reason(a.refuse(scope()))
    gauges.store = 9
    assert a.refuse(scope()) is None


def test_a_full_delivery_queue_refuses_new_requests_and_an_unknown_depth_does_not() -> None:
    gauges = Gauges()
    a = admission(gauges, max_queue_depth=5)
    assert a.refuse(scope()) is None  # not read yet
    gauges.queue = 5
    assert "delivery queue is full" in reason(a.refuse(scope()))
    assert a.refused == {"the delivery queue is full": 1}


def test_a_queue_bound_of_zero_means_none() -> None:
    gauges = Gauges()
    gauges.queue = 10**9
    assert admission(gauges, max_queue_depth=0).refuse(scope()) is None


def test_health_readiness_and_metrics_are_never_refused_nor_counted() -> None:
    a = admission(max_requests=0)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert a.refuse(scope(path)) is None
        a.release(scope(path))
    assert a.requests == 0
    assert reason(a.refuse(scope()))
