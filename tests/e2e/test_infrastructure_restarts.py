"""PostgreSQL, Redis and NATS each restarted while pushes flow, pushgate left running (issue 19,
item 3; the run itself is tests/support/fault_run.py, which bench/run_faults.py also reports from).

Every push answered with a success is delivered, once (or, at most, again among the jobs a
worker held at that instant); a request meanwhile is answered, never with a 500 nor after the
client's timeout, and a refusal is 503 with Retry-After; /readyz names the part that is down;
the service serves again once the part is back, by itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fault_run import REQUEST_TIMEOUT, FaultReport, run_fault
from tests.support.private_services import missing

WORKER_CONCURRENCY = 256  # pushgate.delivery.worker.CONCURRENCY: the jobs one worker holds
ANSWER_BUDGET = 12.0  # seconds; well within the client's REQUEST_TIMEOUT
RECOVERY_BUDGET = 5.0  # seconds from the part back to a request served and /readyz ready

# What /readyz names while each part is down (api/monitoring.py's checks).
NAMED = {"postgresql": "store", "redis": "redis", "nats": "queue"}


@pytest.fixture(scope="module", autouse=True)
def _servers_installed() -> None:
    if absent := missing():
        pytest.skip(f"not installed: {', '.join(absent)}")


def restarted(part: str, tmp_path: Path) -> FaultReport:
    # Down for longer than a request waits for a database connection (3 s), so that requests
    # meet the outage itself, not only a slow answer.
    report = run_fault(
        part, tmp_path, rate=40, per_request=5, seconds=14, fault_at=4, down_seconds=5
    )
    assert report.requests == 14 * 40
    assert ANSWER_BUDGET < REQUEST_TIMEOUT
    return report


def assert_nothing_lost_nor_broken(report: FaultReport) -> None:
    assert report.other_statuses == {}, report.other_examples
    assert report.refused_without_retry_after == 0
    assert report.slowest_answer_s < ANSWER_BUDGET
    assert report.answered_200 + report.refused_503 == report.requests
    assert report.pushes_accepted == 5 * report.answered_200, "every push of an answered request"
    assert report.lost == 0, report
    assert report.duplicated <= WORKER_CONCURRENCY, report
    assert report.delivered_once + report.duplicated == report.pushes_accepted
    assert NAMED[report.part] in report.readyz_failing, report.readyz_failing
    assert report.served_after_s is not None and report.served_after_s < RECOVERY_BUDGET
    assert report.ready_after_s is not None and report.ready_after_s < RECOVERY_BUDGET


def test_postgresql_restarted_mid_run_refuses_with_503_and_loses_no_accepted_push(
    tmp_path: Path,
) -> None:
    report = restarted("postgresql", tmp_path)
    assert_nothing_lost_nor_broken(report)
    assert report.refused_503 > 0, "requests met the outage"


def test_redis_restarted_empty_mid_run_refuses_with_503_and_loses_no_accepted_push(
    tmp_path: Path,
) -> None:
    report = restarted("redis", tmp_path)
    assert_nothing_lost_nor_broken(report)
    assert report.refused_503 > 0, "requests met the outage"


def test_nats_restarted_mid_run_refuses_nothing_and_delivers_every_push_afterwards(
    tmp_path: Path,
) -> None:
    # The API writes a push's job and its outbox row in the database; the broker being away
    # only holds their publishing back (docs/queue.md).
    report = restarted("nats", tmp_path)
    assert_nothing_lost_nor_broken(report)
    assert report.refused_503 == 0
    assert report.delayed > 0, "pushes accepted while NATS was down waited for it"
