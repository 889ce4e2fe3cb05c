"""/metrics after a real scenario: exact counts, parsed with prometheus_client's own parser.

docs/operations.md ("Monitoring") names every metric and its labels; this module drives pushes
(accepted, to an unknown user, to a token the provider reports dead, past the frequency cap, one
retried after a 503 from the emulator) and checks what the server counted. Counters are compared
as differences from a scrape taken before, so the tests of a module may run in any order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.emulated import (
    Control,
    Standalone,
    create_emulator_partner,
    device_token,
    wait_for,
)
from tests.support.pushes import SETTINGS_DELAY, notification
from tests.support.server import Partner, Server

Sample = tuple[str, frozenset[tuple[str, str]]]
PUSH = "/api/v2/notification/user"


def scrape(server: Server) -> dict[Sample, float]:
    r = server.client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def sample(name: str, **labels: str) -> Sample:
    return name, frozenset(labels.items())


class Metrics:
    """Differences between scrapes of one server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.before = scrape(server)
        self.now = self.before

    def refresh(self) -> Metrics:
        self.now = scrape(self.server)
        return self

    def delta(self, name: str, **labels: str) -> float:
        key = sample(name, **labels)
        return self.now.get(key, 0.0) - self.before.get(key, 0.0)

    def deltas(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every series of the sample `name` that changed, by its labels."""
        keys = {k for k in (*self.now, *self.before) if k[0] == name}
        changed = {k[1]: self.now.get(k, 0.0) - self.before.get(k, 0.0) for k in keys}
        return {labels: d for labels, d in changed.items() if d}

    def wait(self, done: Callable[[Metrics], bool], timeout: float = 15.0) -> None:
        if not wait_for(lambda: done(self.refresh()), timeout, 0.1):
            pytest.fail(f"metrics did not get there in {timeout} s; log: {self.server.log_path}")


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


@pytest.fixture
def control(server: Server) -> Iterator[Control]:
    ctl = Control(server.base_url)
    yield ctl
    ctl.clear_faults()
    ctl.close()


def push(partner: Partner, *notifications: dict[str, Any]) -> dict[str, Any]:
    r = partner.push({"notifications": list(notifications)})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_push_outcomes_and_deliveries_are_counted_exactly(
    partner: Partner, control: Control
) -> None:
    server = partner.server
    ok, dead = device_token("ios"), device_token("ios")
    partner.session({"uuid": "m-ok"}, "ios", ok)
    partner.session({"uuid": "m-dead"}, "ios", dead)
    control.token_outcome("ios", dead, "Unregistered")
    m = Metrics(server)

    body = push(
        partner,
        notification({"uuid": "m-ok"}, camp_id=71),
        notification({"uuid": "m-dead"}, camp_id=71),
        notification({"uuid": "m-nobody"}, camp_id=71),
    )
    assert body["errors"] == {"NoUserFound": [{"uuid": "m-nobody"}]}
    m.wait(lambda m: m.delta("pushgate_delivery_sends_total", **SENT_IOS) == 1)
    m.wait(lambda m: m.delta("pushgate_delivery_sends_total", **DEAD_IOS) == 1)
    # The provider said the token is dead: the user is now excluded as Unregistered.
    body = push(partner, notification({"uuid": "m-dead"}, camp_id=71))
    assert body["errors"] == {"Unregistered": [{"uuid": "m-dead"}]}
    m.refresh()

    assert m.deltas("pushgate_push_queued_total") == {labels(platform="ios"): 2}
    assert m.deltas("pushgate_push_exclusions_total") == {
        labels(reason="NoUserFound"): 1,
        labels(reason="Unregistered"): 1,
    }
    assert m.deltas("pushgate_delivery_sends_total") == {
        labels(**SENT_IOS): 1,
        labels(**DEAD_IOS): 1,
    }
    assert m.deltas("pushgate_delivery_token_invalidations_total") == {
        labels(platform="ios", status="unregistered"): 1
    }
    assert m.deltas("pushgate_delivery_retries_total") == {}
    assert m.deltas("pushgate_delivery_send_duration_seconds_count") == {labels(platform="ios"): 2}
    requests = {"method": "POST", "endpoint": PUSH}
    assert m.delta("pushgate_http_requests_total", **requests, status="200") == 2
    assert m.delta("pushgate_http_request_duration_seconds_count", **requests) == 2
    assert m.delta("pushgate_http_request_duration_seconds_bucket", **requests, le="+Inf") == 2
    assert m.now[sample("pushgate_queue_depth")] == 0
    assert m.now[sample("pushgate_queue_jobs", state="queued")] == 0
    assert m.now[sample("pushgate_queue_jobs", state="leased")] == 0
    assert m.now[sample("pushgate_queue_oldest_job_age_seconds")] == 0


SENT_IOS = {"platform": "ios", "outcome": "accepted", "reason": ""}
DEAD_IOS = {"platform": "ios", "outcome": "failed", "reason": "Unregistered"}


def test_frequency_cap_exclusions_are_counted(server: Server) -> None:
    partner = server.create_partner()
    partner.update("--gfc-limit", "1")
    time.sleep(SETTINGS_DELAY)
    partner.session({"uuid": "m-capped"}, "android", device_token("android"))
    m = Metrics(server)

    first = push(partner, notification({"uuid": "m-capped"}, camp_id=72, GFC_enabled=True))
    second = push(partner, notification({"uuid": "m-capped"}, camp_id=72, GFC_enabled=True))

    assert first["errors"] == {}
    assert second["errors"] == {"UserGloballyCapped": [{"uuid": "m-capped"}]}
    m.refresh()
    assert m.deltas("pushgate_push_exclusions_total") == {labels(reason="UserGloballyCapped"): 1}
    assert m.deltas("pushgate_push_queued_total") == {labels(platform="android"): 1}


def test_a_send_retried_after_a_503_is_counted_once_as_retried_then_accepted(
    partner: Partner, control: Control
) -> None:
    server = partner.server
    partner.session({"uuid": "m-retry"}, "android", device_token("android"))
    control.fault("android", status=503, rate=1.0, retry_after=1)
    m = Metrics(server)

    push(partner, notification({"uuid": "m-retry"}, camp_id=73))
    # The retry comes a second later (Retry-After: 1): by then the fault is gone.
    m.wait(lambda m: m.delta("pushgate_delivery_retries_total", **RETRIED) == 1)
    control.clear_faults()
    m.wait(lambda m: m.delta("pushgate_delivery_sends_total", **SENT_ANDROID) == 1)

    assert m.deltas("pushgate_delivery_retries_total") == {labels(**RETRIED): 1}
    assert m.deltas("pushgate_delivery_sends_total") == {
        labels(platform="android", outcome="retried", reason=""): 1,
        labels(**SENT_ANDROID): 1,
    }
    assert m.deltas("pushgate_delivery_token_invalidations_total") == {}


RETRIED = {"platform": "android", "reason": "UNAVAILABLE"}
SENT_ANDROID = {"platform": "android", "outcome": "accepted", "reason": ""}


def test_requests_are_counted_by_route_template_not_by_path(partner: Partner) -> None:
    server = partner.server
    m = Metrics(server)

    for camp_id in (101, 102, 103):
        r = server.client.get(
            f"/api/v1/campaigns/{camp_id}/report", headers={"X-API-KEY": partner.api_key}
        )
        assert r.status_code == 404, r.text  # no such campaign
    assert server.client.get("/no/such/path/4711").status_code == 404
    assert server.client.delete("/healthz").status_code == 405
    m.refresh()

    assert m.deltas("pushgate_http_requests_total") == {
        labels(method="GET", endpoint="/api/v1/campaigns/{camp_id}/report", status="404"): 3,
        labels(method="GET", endpoint="/metrics", status="200"): 1,
        labels(method="GET", endpoint="unmatched", status="404"): 1,
        labels(method="DELETE", endpoint="unmatched", status="405"): 1,
    }
    assert not [k for k in m.now if any("4711" in v or "101" in v for _, v in k[1])]


def test_queue_gauges_show_jobs_waiting(partner: Partner, control: Control) -> None:
    """A job retried in 30 s waits in the queue: its age grows, nothing is due yet."""
    server = partner.server
    partner.session({"uuid": "m-wait"}, "huawei", device_token("huawei"))
    control.fault("huawei", status=503, rate=1.0, retry_after=30)
    m = Metrics(server)

    push(partner, notification({"uuid": "m-wait"}, camp_id=74, ttl=60))
    m.wait(lambda m: bool(m.deltas("pushgate_delivery_retries_total")))
    time.sleep(0.5)
    m.refresh()

    assert m.now[sample("pushgate_queue_jobs", state="queued")] == 1
    assert m.now[sample("pushgate_queue_jobs", state="leased")] == 0
    assert m.now[sample("pushgate_queue_depth")] == 1
    assert 0.5 <= m.now[sample("pushgate_queue_oldest_job_age_seconds")] < 30
    assert m.now[sample("pushgate_queue_lag_seconds")] == 0  # not due for half a minute


def test_each_process_counts_its_own_work(standalone: Standalone, backend: str) -> None:
    """An API process and a worker on one database: the API counts the pushes, the worker the
    sends; both report the same queue."""
    if backend != "postgres":
        pytest.skip("the embedded store serves one process")
    started: list[Server] = []
    try:
        for role in ("api", "worker"):
            srv = Server(
                standalone.data_dir,
                emulate=False,
                backend_env=standalone.backend_env,
                env={**standalone.provider_env(), "PUSHGATE_ROLE": role},
            )
            started.append(srv.start())
        api, worker = started
        partner = create_emulator_partner(standalone.data_dir, api)
        for n in range(3):
            partner.session({"uuid": f"m-proc-{n}"}, "ios", device_token("ios"))
        at_worker = Metrics(worker)

        push(partner, *(notification({"uuid": f"m-proc-{n}"}, camp_id=75) for n in range(3)))
        at_worker.wait(lambda m: m.delta("pushgate_delivery_sends_total", **SENT_IOS) == 3)
        at_api = scrape(api)

        assert at_api[sample("pushgate_push_queued_total", platform="ios")] == 3
        assert not [k for k in at_api if k[0].startswith("pushgate_delivery_")]
        assert at_worker.deltas("pushgate_delivery_sends_total") == {labels(**SENT_IOS): 3}
        assert not [k for k in at_worker.now if k[0] == "pushgate_push_queued_total"]
        served = at_worker.deltas("pushgate_http_requests_total")
        assert {dict(k)["endpoint"] for k in served} == {"/metrics"}
        depth = sample("pushgate_queue_depth")
        assert at_api[depth] == at_worker.refresh().now[depth] == 0
    finally:
        for srv in started:
            srv.stop()
