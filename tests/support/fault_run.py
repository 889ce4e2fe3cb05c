"""One part of the infrastructure restarted while pushes flow (issue 19, item 3).

`run_fault` starts PostgreSQL, Redis and NATS of its own (tests/support/private_services.py),
`pushgate serve --emulate` on them (PostgreSQL + Redis + JetStream, the scale-out set-up), pushes
at a steady rate, one push per user, and in the middle stops one of the three parts, keeps it down
for a while and starts it again, as an operator's restart would. pushgate is not restarted. What
it measures, per fault (`FaultReport`): requests answered, refused with 503 (and whether each said
Retry-After), answered otherwise (500s) or not at all, the slowest answer; pushes accepted,
delivered once, twice or more, not at all, and delivered late; what /readyz named while the part
was down, and how long after the part was back the service served and was ready again.

Used by tests/e2e/test_infrastructure_restarts.py (the invariants) and bench/run_faults.py (the
report, with longer runs).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.emulated import Control, notification, received_at
from tests.support.private_services import PrivateNats, PrivatePostgres, PrivateRedis
from tests.support.pushes import PUSH_PATH, SETTINGS_DELAY
from tests.support.server import Partner, Server

PARTS = ("postgresql", "redis", "nats")
REQUEST_TIMEOUT = 15.0  # the client's own; the service must answer well within it
LATE_AFTER = 2.0  # seconds from the answer: a delivery later than this is "delayed"
READYZ_EVERY = 0.2


@dataclass
class Answer:
    started: float  # time.time()
    ended: float
    status: int  # 0: no answer (the client timed out or the connection failed)
    retry_after: str | None
    tokens: list[str]  # the successes' device tokens
    note: str = ""


@dataclass
class FaultReport:
    part: str
    rate: float  # requests per second offered
    per_request: int  # notifications per request
    down_seconds: float
    requests: int = 0
    answered_200: int = 0
    refused_503: int = 0
    refused_without_retry_after: int = 0
    other_statuses: dict[str, int] = field(default_factory=dict)  # status -> count (0: none)
    other_examples: list[str] = field(default_factory=list)
    slowest_answer_s: float = 0.0
    first_refused_s: float | None = None  # from the stop
    last_refused_s: float | None = None
    pushes_accepted: int = 0
    delivered_once: int = 0
    duplicated: int = 0  # accepted pushes delivered more than once
    extra_deliveries: int = 0
    lost: int = 0  # accepted and not delivered by the end of the wait
    delayed: int = 0  # delivered more than LATE_AFTER s after their answer
    slowest_delivery_s: float = 0.0
    down_for_s: float = 0.0  # stop issued -> the part listening again
    served_after_s: float | None = None  # the part back -> the first 200 of a later request
    ready_after_s: float | None = None  # the part back -> /readyz 200 again
    readyz_failing: list[str] = field(default_factory=list)  # named while the part was down
    readyz_statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Parts:
    """The three services of one run."""

    def __init__(self, root: Path) -> None:
        self.postgres = PrivatePostgres()
        self.redis = PrivateRedis()
        self.nats = PrivateNats(root)

    def start(self) -> None:
        self.postgres.create()
        self.redis.start()
        self.nats.start()

    def part(self, name: str) -> PrivatePostgres | PrivateRedis | PrivateNats:
        return {"postgresql": self.postgres, "redis": self.redis, "nats": self.nats}[name]

    def backend_env(self) -> dict[str, str]:
        return {
            "PUSHGATE_DATABASE_URL": self.postgres.url,
            "PUSHGATE_REDIS_URL": self.redis.url,
            "PUSHGATE_REDIS_PREFIX": "faults:",
            "PUSHGATE_QUEUE_URL": self.nats.url,
            "PUSHGATE_QUEUE_PREFIX": "FAULTS",
        }

    def destroy(self) -> None:
        for part in (self.nats, self.redis, self.postgres):
            with contextlib.suppress(Exception):
                part.destroy()


def _register(partner: Partner, count: int) -> list[tuple[str, str]]:
    users = [(f"fault-user-{i}", os.urandom(32).hex()) for i in range(count)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda u: partner.session({"uuid": u[0]}, token=u[1]), users))
    return users


def run_fault(
    part: str,
    work: Path,
    *,
    rate: float = 40.0,
    per_request: int = 5,
    seconds: float = 16.0,
    fault_at: float = 5.0,
    down_seconds: float = 3.0,
    settle_timeout: float = 90.0,
) -> FaultReport:
    """Push for `seconds` at `rate` requests/s; at `fault_at`, stop `part` for `down_seconds`."""
    assert part in PARTS, part
    parts = _Parts(work)
    server: Server | None = None
    try:
        parts.start()
        server = Server(work / "data", backend_env=parts.backend_env()).start()
        return _measure(
            server,
            parts.part(part),
            FaultReport(part, rate, per_request, down_seconds),
            seconds=seconds,
            fault_at=fault_at,
            settle_timeout=settle_timeout,
        )
    finally:
        if server is not None and server.proc is not None:
            server.kill()
        parts.destroy()


def _measure(
    server: Server,
    target: PrivatePostgres | PrivateRedis | PrivateNats,
    report: FaultReport,
    *,
    seconds: float,
    fault_at: float,
    settle_timeout: float,
) -> FaultReport:
    partner = server.create_partner()
    partner.update("--rate-limit", "1000000")
    time.sleep(SETTINGS_DELAY)
    total = int(report.rate * seconds)
    users = _register(partner, total * report.per_request)
    answers: list[Answer] = []
    readyz: list[tuple[float, int, list[str]]] = []  # (asked at, status, failing)
    window: dict[str, float] = {}
    lock = threading.Lock()
    done = threading.Event()
    client = httpx.Client(
        base_url=server.base_url,
        timeout=REQUEST_TIMEOUT,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )

    def send(i: int) -> None:
        chunk = users[i * report.per_request : (i + 1) * report.per_request]
        body = {
            "api_key": partner.api_key,
            "notifications": [notification(uuid, camp_id=1, ttl=3600) for uuid, _ in chunk],
        }
        started = time.time()
        try:
            r = client.post(PUSH_PATH, json=body)
        except httpx.HTTPError as exc:
            answer = Answer(started, time.time(), 0, None, [], f"{type(exc).__name__}: {exc}")
        else:
            tokens = []
            if r.status_code == 200:
                tokens = [s["INSIDER.device_token"] for s in r.json()["successes"]]
            note = "" if r.status_code in (200, 503) else r.text[:300]
            answer = Answer(
                started, time.time(), r.status_code, r.headers.get("retry-after"), tokens, note
            )
        with lock:
            answers.append(answer)

    def fault() -> None:
        time.sleep(fault_at)
        window["stop"] = time.time()
        target.stop()
        time.sleep(report.down_seconds)
        target.start()
        window["back"] = time.time()

    def watch_readiness() -> None:
        while not done.is_set():
            asked = time.time()
            try:
                r = client.get("/readyz", timeout=5)
                failing = list(r.json().get("failing", [])) if r.status_code == 503 else []
                readyz.append((asked, r.status_code, failing))
            except httpx.HTTPError:
                readyz.append((asked, 0, []))
            done.wait(READYZ_EVERY)

    watcher = threading.Thread(target=watch_readiness, daemon=True)
    faulter = threading.Thread(target=fault, daemon=True)
    with ThreadPoolExecutor(32) as pool:
        t0 = time.monotonic()
        watcher.start()
        faulter.start()
        for i in range(total):
            delay = t0 + i / report.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i)
    faulter.join()
    # Readiness once the part is back, then no longer needed.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        t > window["back"] and status == 200 for t, status, _ in readyz
    ):
        time.sleep(READYZ_EVERY)
    done.set()
    watcher.join()

    accepted = {token: a.ended for a in answers for token in a.tokens}
    control = Control(server.base_url)
    try:
        deadline = time.monotonic() + settle_timeout
        while True:
            delivered = Counter(str(d["token"]) for d in control.deliveries())
            if all(delivered[t] for t in accepted) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(2.0)  # a second send of the same push would come now
        deliveries = control.deliveries()
    finally:
        control.close()
        client.close()
    _summarise(report, answers, accepted, deliveries, readyz, window)
    return report


def _summarise(
    report: FaultReport,
    answers: list[Answer],
    accepted: dict[str, float],
    deliveries: list[dict[str, Any]],
    readyz: list[tuple[float, int, list[str]]],
    window: dict[str, float],
) -> None:
    stop, back = window["stop"], window["back"]
    report.down_for_s = round(back - stop, 2)
    report.requests = len(answers)
    others: Counter[str] = Counter()
    for a in answers:
        report.slowest_answer_s = max(report.slowest_answer_s, round(a.ended - a.started, 3))
        if a.status == 200:
            report.answered_200 += 1
        elif a.status == 503:
            report.refused_503 += 1
            report.refused_without_retry_after += a.retry_after is None
            at = round(a.started - stop, 2)
            if report.first_refused_s is None or at < report.first_refused_s:
                report.first_refused_s = at
            if report.last_refused_s is None or at > report.last_refused_s:
                report.last_refused_s = at
        else:
            others[str(a.status)] += 1
            if len(report.other_examples) < 5:
                report.other_examples.append(f"{a.status} {a.note}")
    report.other_statuses = dict(others)
    later = [a.ended for a in answers if a.status == 200 and a.started >= back]
    report.served_after_s = round(min(later) - back, 2) if later else None

    report.pushes_accepted = len(accepted)
    first: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for d in deliveries:
        token = str(d["token"])
        if token not in accepted:
            continue
        counts[token] += 1
        at = received_at(d)
        first[token] = min(first.get(token, at), at)
    report.delivered_once = sum(1 for t in accepted if counts[t] == 1)
    report.duplicated = sum(1 for t in accepted if counts[t] > 1)
    report.extra_deliveries = sum(counts[t] - 1 for t in accepted if counts[t] > 1)
    report.lost = sum(1 for t in accepted if counts[t] == 0)
    lateness = [first[t] - accepted[t] for t in accepted if t in first]
    report.delayed = sum(1 for late in lateness if late > LATE_AFTER)
    report.slowest_delivery_s = round(max(lateness, default=0.0), 2)

    failing: set[str] = set()
    statuses: Counter[str] = Counter()
    for t, status, names in readyz:
        if stop <= t <= back:
            statuses[str(status)] += 1
            failing.update(names)
    report.readyz_failing = sorted(failing)
    report.readyz_statuses = dict(statuses)
    ready = [t for t, status, _ in readyz if t > back and status == 200]
    report.ready_after_s = round(min(ready) - back, 2) if ready else None
