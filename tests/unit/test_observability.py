"""The pure parts of monitoring: histogram buckets, bounded reason labels, request ids, the log
formats, and the exposition of a scrape."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import sys
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pushgate import logs
from pushgate.exposition import Scrape, exposition
from pushgate.jobs import DeliveryOutcome
from pushgate.metrics import (
    LATENCY_BUCKETS,
    MAX_REASONS,
    DeliveryMetrics,
    Histogram,
    PushMetrics,
    RequestMetrics,
)
from pushgate.queue import backlog
from pushgate.store.sqlite_schema import create_schema


def test_a_value_on_a_bucket_bound_falls_in_that_bucket() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(value)
    assert h.cumulative() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert h.total == pytest.approx(8.65)


def test_provider_reasons_beyond_the_bound_are_counted_as_other() -> None:
    m = DeliveryMetrics()
    for n in range(MAX_REASONS + 3):
        m.settled("ios", DeliveryOutcome("failed", f"Reason{n}"), "")
    reasons = {reason for (_, _, reason) in m.sends}
    assert len(reasons) == MAX_REASONS + 1
    assert m.sends["ios", "failed", "Other"] == 3


def test_outcomes_map_to_their_labels() -> None:
    m = DeliveryMetrics()
    m.settled("android", DeliveryOutcome("done"), "")
    m.settled("android", DeliveryOutcome("queued", retry_at=1.0), "UNAVAILABLE")
    m.settled("android", DeliveryOutcome("expired", "Expired"), "")
    m.settled("ios", DeliveryOutcome("failed", "Unregistered", device_action="unregister"), "")
    assert m.sends == {
        ("android", "accepted", ""): 1,
        ("android", "retried", ""): 1,
        ("android", "expired", "Expired"): 1,
        ("ios", "failed", "Unregistered"): 1,
    }
    assert m.retries == {("android", "UNAVAILABLE"): 1}
    assert m.invalidations == {("ios", "unregistered"): 1}


def test_unmatched_requests_cannot_make_new_series() -> None:
    m = RequestMetrics()
    for method in ("GET", "BREW", "PROPFIND", "GET"):
        m.unmatched(method).observe(404, 0.001)
    assert sorted((e.method, e.endpoint, e.statuses[404]) for e in m.endpoints) == [
        ("GET", "unmatched", 2),
        ("other", "unmatched", 2),
    ]


def test_exposition_parses_back() -> None:
    requests = RequestMetrics()
    requests.endpoint("POST", "/x").observe(200, 0.002)
    requests.endpoint("GET", "/never-called")
    pushes = PushMetrics()
    pushes.excluded["UserGloballyCapped"] = 2
    text = exposition(Scrape(requests, pushes, backlog=backlog.Backlog(3, 1, 9.5, 0.0))).decode()
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }

    def at(name: str, **labels: str) -> float:
        return found[name, frozenset(labels.items())]

    route = {"endpoint": "/x", "method": "POST"}
    assert at("pushgate_http_requests_total", **route, status="200") == 1
    assert at("pushgate_http_request_duration_seconds_bucket", **route, le="0.0025") == 1
    assert at("pushgate_http_request_duration_seconds_bucket", **route, le="0.001") == 0
    assert at("pushgate_push_exclusions_total", reason="UserGloballyCapped") == 2
    assert at("pushgate_queue_jobs", state="queued") == 3
    assert at("pushgate_queue_depth") == 4
    assert at("pushgate_queue_oldest_job_age_seconds") == 9.5
    assert not [k for k in found if ("endpoint", "/never-called") in k[1]]
    buckets = [k for k in found if k[0].endswith("_bucket") and ("endpoint", "/x") in k[1]]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1


def test_backlog_reads_states_age_and_lag() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    create_schema(conn)
    insert = (
        "INSERT INTO jobs (partner_id, camp_id, profile_id, device_id, platform, token,"
        " environment, payload, push_type, priority, created_at, expires_at, due_at, state,"
        " attempts) VALUES (1, 1, 1, 1, 'ios', 't', 'production', x'00', 'alert', 10, ?, 9e9, ?,"
        " ?, ?)"
    )
    assert backlog.read(conn, 1000.0) == backlog.Backlog(0, 0, 0.0, 0.0)
    conn.execute(insert, (900.0, 990.0, "queued", 0))  # due 10 s ago
    conn.execute(insert, (950.0, 2000.0, "queued", 1))  # a retry, not due yet
    conn.execute(insert, (980.0, 1030.0, "leased", 1))
    conn.execute(insert, (100.0, 100.0, "done", 1))
    assert backlog.read(conn, 1000.0, outbox=True) == backlog.Backlog(2, 1, 100.0, 10.0, 0)
    # Scheduled for later and never tried: neither queued nor the oldest, it waits its time.
    conn.execute(insert, (10.0, 5000.0, "queued", 0))
    assert backlog.read(conn, 1000.0, outbox=True) == backlog.Backlog(
        2, 1, 100.0, 10.0, 0, scheduled=1
    )


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"abc-DEF_1.2", True),
        (b"x" * 128, True),
        (b"x" * 129, False),
        (b"", False),
        (b"a b", False),
        (b'a"b', False),
        (b"a\nb", False),
        (None, False),
    ],
)
def test_request_ids_from_clients_are_kept_only_when_sane(sent: bytes | None, kept: bool) -> None:
    rid = logs.request_id(sent)
    assert (rid == (sent or b"").decode("latin-1")) is kept
    assert logs.request_id(None) != logs.request_id(None)


KNOBS = ("logThreads", "logProcesses", "logMultiprocessing", "_srcfile")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`logs.configure` changes the process's logging: undone after the test."""
    loggers = [logging.getLogger(name) for name in ("", *logs.UVICORN_LOGGERS)]
    saved = [(list(x.handlers), x.level, x.propagate) for x in loggers]
    knobs = {name: getattr(logging, name) for name in KNOBS}
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    for name, value in knobs.items():
        setattr(logging, name, value)
    logging.captureWarnings(False)


def test_json_lines_carry_the_request_id_and_the_access_fields(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    log = logging.getLogger("pushgate.test")
    token = logs.REQUEST_ID.set("rid-1")
    try:
        log.info("hello %s", "there", extra={"route": "/x", "status": 200})
    finally:
        logs.REQUEST_ID.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first == {
        "ts": first["ts"],
        "level": "INFO",
        "logger": "pushgate.test",
        "msg": "hello there",
        "request_id": "rid-1",
        "route": "/x",
        "status": 200,
    }
    assert "request_id" not in second
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exc"]


def test_configuring_twice_keeps_one_handler(restore_logging: None) -> None:
    logs.configure("info", "json", io.StringIO())
    logs.configure("info", "text", io.StringIO())
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logs._Handler)]
    assert len(ours) == 1


def test_auto_is_text_on_a_terminal_only() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.resolve_format(None, io.StringIO()) == "json"
    assert logs.resolve_format("auto", Tty()) == "text"
    assert logs.resolve_format("JSON", Tty()) == "json"
    with pytest.raises(ValueError, match="PUSHGATE_LOG_FORMAT"):
        logs.resolve_format("xml", sys.stderr)


def test_uvicorn_lines_go_through_the_same_handler(restore_logging: None) -> None:
    """What `pushgate serve` hands uvicorn: its own lines, from the first, as JSON."""
    import uvicorn

    stream = io.StringIO()
    logs.configure("info", "json", stream)
    uvicorn.Config(
        "x:app", log_config=logs.uvicorn_log_config(), access_log=False, log_level="info"
    )
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
    (line,) = (json.loads(x) for x in stream.getvalue().splitlines())
    assert (line["logger"], line["msg"]) == ("uvicorn.error", "Started server process [1]")
