"""Scheduled delivery: 10,000 pushes due in the same second, against the same 10,000 sent at once.

The scheduled-delivery issue asks that due pushes go out within 1 s of their time, and that
10,000 due in the same second all go out. This measures how late they go out: per backend (the
embedded default, SQLite; PostgreSQL + Redis with the job table as the queue; PostgreSQL + Redis
with JetStream carrying the jobs), `--runs` rounds of two arms, each run on a fresh database:

- *scheduled*: `--pushes` pushes (one per user, 20 per request, 8 requests at once) all with one
  `send_at`, a whole second `--lead` s after the first request; lateness = each push's
  `received_at` at the emulator minus the due time;
- *immediate* (the baseline): the same pushes without `send_at`; latency = `received_at` minus
  the answer to the request that carried the push (the API and the worker share the process
  while the pushes come in, as they do in production).

For both: the first, median, p99 and last of those, and the sends/s while draining (pushes /
(last delivery - first delivery)). The two arms of a round run back to back, the first of the two
alternating from round to round, so that a drift of the machine cancels out.

Each run: a fresh data dir (and PostgreSQL schema, Redis prefix, JetStream stream), `pushgate
emulate` on it (the standalone emulators, as tests/e2e/conftest.py's `serve_against`), a partner
with emulator credentials, `--pushes` users with one device each (the platforms in turn) through
`pushgate users import`, then `pushgate serve` (role all: the API and the delivery worker in one
process, no --emulate) pointed at the emulators. The end of a run is the first look (every
100 ms, on the partial index of unsettled jobs) that finds no job queued or leased; then the
emulator's deliveries are read once, and every push must have been delivered exactly once.

    .venv/bin/python bench/run_scheduled.py --rev HEAD     # about 12 minutes
    .venv/bin/python bench/run_scheduled.py --quick        # 2,000 pushes, 3 rounds: ~4 minutes

Traffic goes to 127.0.0.1 only; every request loop is bounded. PostgreSQL, Redis and NATS are the
ones the test suite uses (PUSHGATE_TEST_POSTGRES, PUSHGATE_TEST_REDIS, PUSHGATE_TEST_NATS); the
schemas, keys and streams this script makes are removed at the end. Results:
bench/results/scheduled-<date>-<commit>.md, with the raw figures in a .json beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402  (bench/ is not a package)

TEST_RUN = re.compile("pytest")  # other sessions' test suites: wait until none runs

POSTGRES_URL = os.environ.get("PUSHGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PUSHGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("PUSHGATE_TEST_NATS", "nats://127.0.0.1:4222")
BACKENDS = ("sqlite", "postgres", "jetstream")
BACKEND_TITLES = {
    "sqlite": "SQLite (embedded)",
    "postgres": "PostgreSQL + Redis, job table",
    "jetstream": "PostgreSQL + Redis, JetStream",
}
ARMS = ("scheduled", "immediate")
PLATFORMS = ("ios", "android", "huawei")
# Settings of this environment that would point the processes elsewhere: each run sets its own.
BACKEND_SETTINGS = (
    "PUSHGATE_DATABASE_URL",
    "PUSHGATE_REDIS_URL",
    "PUSHGATE_REDIS_PREFIX",
    "PUSHGATE_QUEUE_URL",
    "PUSHGATE_QUEUE_PREFIX",
    "PUSHGATE_DATA_DIR",
)
CAMP = 1
TTL = 86_400  # a day: nothing expires while it waits
CLIENT_THREADS = 8
POLL = 0.1  # seconds between looks at the unsettled jobs
UNSETTLED = "SELECT count(*) FROM {jobs} WHERE state IN ('queued', 'leased')"
ALL_JOBS = "SELECT count(*) FROM {jobs}"
LOAD_AT_START = "load average at start (1, 5, 15 min)"
DRAIN_LIMIT = 300.0
BUSY_POLL = 10.0  # seconds a run may take from the due time (or first request) to drained


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for_test_runs(limit: float) -> float:
    """Wait (at most `limit` s) until no test run is on the machine; the seconds waited."""
    return harness.wait_for_none(TEST_RUN, limit, BUSY_POLL, log, "test processes")


def device_token(platform: str, i: int) -> str:
    """A token of the platform's shape (as tests/support/emulated.py makes them)."""
    raw = os.urandom(40).hex()
    if platform == "ios":
        return raw[:64]
    if platform == "android":
        return f"f{i:010d}:APA91b{raw}"
    return f"IQAAAACy{raw[:60]}"


def percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def received_at(delivery: dict[str, Any]) -> float:
    stamp = str(delivery["received_at"]).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(stamp).timestamp()


@dataclass
class Run:
    backend: str
    arm: str
    round: int
    pushes: int
    import_s: float
    intake_s: float  # first request sent -> last answer
    due_after_intake_s: float | None  # scheduled: from the last answer to the due time
    first_s: float  # lateness (scheduled) or latency (immediate) of the first delivery
    median_s: float
    p99_s: float
    last_s: float
    drain_s: float  # first delivery -> last delivery
    sends_per_s: float  # pushes / drain_s
    start_to_last_s: float  # due time (scheduled) or first request (immediate) -> last delivery
    server_cores: float  # `pushgate serve` and its children, over the measured window
    emulator_cores: float
    client_cores: float  # this script (its request threads, its polls)
    others: float  # every other process: PostgreSQL, NATS, and whatever else ran
    background_before: float
    load: str
    metrics: dict[str, float] = field(default_factory=dict)


class Backend:
    """Fresh state per run: a data dir, and for PostgreSQL a schema, a Redis key prefix and (with
    JetStream) a stream prefix of its own, all removed at the end."""

    def __init__(self, name: str, work: Path, tag: str) -> None:
        self.name = name
        self.work = work
        self.tag = tag
        self.schemas: list[str] = []
        self.prefixes: list[str] = []
        self.streams: list[str] = []

    def fresh(self, key: str) -> tuple[Path, dict[str, str], str | None]:
        """(data dir, backend settings, schema) for a new run."""
        data = self.work / f"data-{key}"
        shutil.rmtree(data, ignore_errors=True)
        if self.name == "sqlite":
            return data, {}, None
        schema = f"{self.tag}_{key}".lower().replace("-", "_")
        self.schemas.append(schema)
        self.prefixes.append(f"{schema}:")
        env = {
            "PUSHGATE_DATABASE_URL": f"{POSTGRES_URL}?schema={schema}",
            "PUSHGATE_REDIS_URL": REDIS_URL,
            "PUSHGATE_REDIS_PREFIX": f"{schema}:",
        }
        if self.name == "jetstream":
            prefix = schema.upper()
            self.streams.append(f"{prefix}_JOBS")
            env |= {"PUSHGATE_QUEUE_URL": NATS_URL, "PUSHGATE_QUEUE_PREFIX": prefix}
        return data, env, schema

    def cleanup(self) -> None:
        if self.schemas:
            import psycopg

            with (
                contextlib.suppress(Exception),
                psycopg.connect(POSTGRES_URL, autocommit=True) as c,
            ):
                for schema in self.schemas:
                    c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if self.prefixes:
            with contextlib.suppress(Exception):
                import redis

                client = redis.Redis.from_url(REDIS_URL)
                for prefix in self.prefixes:
                    for key in client.scan_iter(f"{prefix}*"):
                        client.delete(key)
        if self.streams:
            asyncio.run(delete_streams(self.streams))


async def delete_streams(streams: Sequence[str]) -> None:
    import nats

    with contextlib.suppress(Exception):
        nc = await nats.connect(NATS_URL)
        try:
            for stream in streams:
                with contextlib.suppress(Exception):
                    await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()


class Database:
    """Reads of the measured database (one connection, reused while polling)."""

    def __init__(self, data: Path, schema: str | None) -> None:
        if schema is None:
            self.conn: Any = sqlite3.connect(
                data / harness.DB_FILE, timeout=30, isolation_level=None
            )
            self.jobs = "jobs"
        else:
            import psycopg

            self.conn = psycopg.connect(POSTGRES_URL, autocommit=True)
            self.jobs = f"{schema}.jobs"

    def count(self, sql: str) -> int:
        return int(self.conn.execute(sql.format(jobs=self.jobs)).fetchone()[0] or 0)

    def close(self) -> None:
        self.conn.close()


class ScheduledBench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        # run_api_bench's Bench for its snapshot of src/ (or --rev) and the environment serving
        # it; its other options are unused here.
        api = harness.api_args(
            argparse.Namespace(
                duration=1,
                warmup=1,
                users=args.pushes,
                nice=args.nice,
                quiet_wait=args.quiet_wait,
                rev=args.rev,
            )
        )
        api.src = args.src
        self.snapshot = harness.Bench(api, work)
        self.snapshot.snapshot_src()
        env = {k: v for k, v in self.snapshot.env.items() if k not in BACKEND_SETTINGS}
        if args.workers:
            env["PUSHGATE_WORKERS"] = str(args.workers)
        self.env = env
        self.python = self.snapshot.python
        tag = f"bsched{os.getpid()}x{time.time_ns() % 10**6}"
        self.backends = {name: Backend(name, work, tag) for name in args.backends}
        self.runs: list[Run] = []
        self.waits: list[dict[str, Any]] = []  # per round: the wait for test runs to end
        self.users = self.write_users()

    def write_users(self) -> list[tuple[str, str, str]]:
        users = []
        for i in range(self.args.pushes):
            platform = PLATFORMS[i % len(PLATFORMS)]
            users.append((f"sched-{i}", platform, device_token(platform, i)))
        with (self.work / "users.csv").open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["uuid", "device.platform", "device.token", "device.environment"])
            out.writerows([u, p, t, "production"] for u, p, t in users)
        return users

    def cli(self, env: dict[str, str], *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [self.python, "-m", "pushgate.cli", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**self.env, **env},
        )
        if out.returncode != 0:
            raise RuntimeError(f"pushgate {' '.join(args[:2])}: {out.stderr[-2000:]}")
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def process(self, name: str, args: list[str], env: dict[str, str]) -> harness.Server:
        port = harness.free_port()
        cmd = [self.python, "-m", "pushgate.cli", *args, "--port", str(port)]
        kind = harness.Emulator if name == "emulate" else harness.Server
        return kind(
            f"pushgate {name}",
            harness.pinned(cmd, None, self.args.nice),
            port,
            self.work / f"{name}.log",
            self.args.nice,
            {**self.env, **env},
        )

    def run(self) -> None:
        for r in range(self.args.runs):
            waited = wait_for_test_runs(self.args.busy_wait)
            self.waits.append(
                {
                    "round": r + 1,
                    "waited_s": waited,
                    "tests": len(harness.processes_matching(TEST_RUN)),
                }
            )
            for name in self.args.backends:
                arms = ARMS if r % 2 == 0 else ARMS[::-1]
                for arm in arms:
                    self.runs.append(self.one(name, arm, r + 1))

    def one(self, name: str, arm: str, round_: int) -> Run:
        backend = self.backends[name]
        data, backend_env, schema = backend.fresh(f"{name}_{arm[:3]}{round_}")
        emulator = self.process("emulate", ["emulate", "--data-dir", str(data)], backend_env)
        assert isinstance(emulator, harness.Emulator)
        with harness.serving(emulator):
            secrets = self.cli(
                backend_env,
                "partners",
                "create",
                harness.PARTNER,
                "--data-dir",
                str(data),
                "--emulator-credentials",
            )
            self.cli(
                backend_env,
                "partners",
                "update",
                harness.PARTNER,
                "--data-dir",
                str(data),
                "--rate-limit",
                "100000000",
            )
            began = time.perf_counter()
            imported = self.cli(
                backend_env,
                "users",
                "import",
                str(self.work / "users.csv"),
                "--partner",
                harness.PARTNER,
                "--data-dir",
                str(data),
                "--restart",
                "--json",
                "--no-progress",
            )
            import_s = time.perf_counter() - began
            if imported.get("devices") != self.args.pushes:
                raise RuntimeError(f"import: {imported}")
            server_env = {**backend_env, **emulator.provider_env(data)}
            args = ["serve", "--data-dir", str(data), "--role", "all"]
            server = self.process("serve", args, server_env)
            with harness.serving(server):
                return self.measure(
                    name, arm, round_, emulator, server, secrets["api_key"], data, schema, import_s
                )

    def measure(
        self,
        name: str,
        arm: str,
        round_: int,
        emulator: harness.Emulator,
        server: harness.Server,
        api_key: str,
        data: Path,
        schema: str | None,
        import_s: float,
    ) -> Run:
        args = self.args
        background = harness.wait_quiet(args.quiet_wait, server.pid)
        db = Database(data, schema)
        try:
            cpu0 = self.cpu(server, emulator)
            began = time.time()
            due = float(int(began + args.lead)) if arm == "scheduled" else None
            answered = self.push(server, api_key, due)
            intake_end = time.time()
            if due is not None:
                if intake_end > due - 0.5:
                    raise RuntimeError(f"intake took {intake_end - began:.1f} s: raise --lead")
                if db.count(UNSETTLED) != args.pushes:
                    raise RuntimeError(f"{db.count(UNSETTLED)} jobs waiting, not {args.pushes}")
                # The measured window starts at the due time.
                time.sleep(max(0.0, due - time.time()))
                cpu0 = self.cpu(server, emulator)
            start = due if due is not None else began
            deadline = time.monotonic() + DRAIN_LIMIT
            while db.count(UNSETTLED) and time.monotonic() < deadline:
                time.sleep(POLL)
            left = db.count(UNSETTLED)
            cpu1 = self.cpu(server, emulator)
            total = db.count(ALL_JOBS)
        finally:
            db.close()
        if left or total != args.pushes:
            raise RuntimeError(f"{name} {arm}: {left} of {total} jobs unsettled at the end")
        metrics = harness.pushgate_metrics(server.port)
        deliveries = json.loads(emulator.control("GET", "/deliveries"))
        counts = Counter(str(d["token"]) for d in deliveries)
        tokens = {t for _, _, t in self.users}
        if set(counts) != tokens or set(counts.values()) != {1}:
            raise RuntimeError(
                f"{name} {arm}: {len(tokens - set(counts))} not delivered,"
                f" {sum(n - 1 for n in counts.values() if n > 1)} duplicates"
            )
        at = {str(d["token"]): received_at(d) for d in deliveries}
        if due is not None:
            late = sorted(at[t] - due for t in tokens)
        else:
            late = sorted(at[t] - answered[t] for t in tokens)
        first, last = min(at.values()), max(at.values())
        wall = max(1e-6, cpu1["wall"] - cpu0["wall"])
        run = Run(
            backend=name,
            arm=arm,
            round=round_,
            pushes=args.pushes,
            import_s=round(import_s, 2),
            intake_s=round(intake_end - began, 2),
            due_after_intake_s=None if due is None else round(due - intake_end, 2),
            first_s=round(late[0], 3),
            median_s=round(statistics.median(late), 3),
            p99_s=round(percentile(late, 0.99), 3),
            last_s=round(late[-1], 3),
            drain_s=round(last - first, 3),
            sends_per_s=round(args.pushes / max(1e-3, last - first)),
            start_to_last_s=round(last - start, 3),
            server_cores=round((cpu1["server"] - cpu0["server"]) / wall, 2),
            emulator_cores=round((cpu1["emulator"] - cpu0["emulator"]) / wall, 2),
            client_cores=round((cpu1["client"] - cpu0["client"]) / wall, 2),
            others=round(
                max(
                    0.0,
                    (cpu1["machine"] - cpu0["machine"]) / wall
                    - sum((cpu1[k] - cpu0[k]) / wall for k in ("server", "emulator", "client")),
                ),
                2,
            ),
            background_before=background,
            load=" ".join(Path("/proc/loadavg").read_text().split()[:3]),
            metrics={k: v for k, v in metrics.items() if k.startswith("delivery_")},
        )
        log(
            f"{name} {arm} round {round_}: first {run.first_s:.3f} s, median {run.median_s:.3f},"
            f" p99 {run.p99_s:.3f}, last {run.last_s:.3f}; {run.sends_per_s:,.0f} sends/s over"
            f" {run.drain_s:.2f} s; intake {run.intake_s:.2f} s; cores: server"
            f" {run.server_cores}, emulator {run.emulator_cores}, others {run.others}"
        )
        return run

    @staticmethod
    def cpu(server: harness.Server, emulator: harness.Emulator) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "wall": time.monotonic(),
            "server": sum(harness.server_cpu_seconds(server.pid).values()),
            "emulator": sum(harness.server_cpu_seconds(emulator.pid).values()),
            "client": own.ru_utime + own.ru_stime,
            "machine": harness.machine_busy(),
        }

    def push(self, server: harness.Server, api_key: str, due: float | None) -> dict[str, float]:
        """One push per user, 20 per request, CLIENT_THREADS requests at once; every user must
        be answered as a success. Returns each token's answer time (time.time())."""
        import httpx

        extra: dict[str, Any] = {"ttl": TTL} if due is None else {"ttl": TTL, "send_at": due}
        chunks = [
            self.users[start : start + harness.BATCH]
            for start in range(0, len(self.users), harness.BATCH)
        ]
        answered: dict[str, float] = {}
        lock = threading.Lock()
        limits = httpx.Limits(max_connections=CLIENT_THREADS)
        url = f"http://{harness.HOST}:{server.port}"
        with httpx.Client(base_url=url, timeout=60.0, limits=limits) as client:

            def send(chunk: list[tuple[str, str, str]]) -> None:
                body = {
                    "api_key": api_key,
                    "notifications": [
                        {
                            "identifiers": {"uuid": uuid},
                            "camp_id": CAMP,
                            "camp_name": "scheduled bench",
                            "title": "A title",
                            "message": "A message",
                            "image_url": "https://img.example.com/i.jpg",
                            **extra,
                        }
                        for uuid, _, _ in chunk
                    ],
                }
                r = client.post(harness.PUSH_PATH, json=body)
                at = time.time()
                if r.status_code != 200 or r.json()["errors"]:
                    raise RuntimeError(f"push answered {r.status_code}: {r.text[:300]}")
                with lock:
                    for success in r.json()["successes"]:
                        answered[success["INSIDER.device_token"]] = at

            with ThreadPoolExecutor(CLIENT_THREADS) as pool:
                list(pool.map(send, chunks))
        if len(answered) != len(self.users):
            raise RuntimeError(f"{len(answered)} of {len(self.users)} pushes answered")
        return answered

    def cleanup(self) -> None:
        for backend in self.backends.values():
            backend.cleanup()


# ---------------------------------------------------------------- report


def median_of(runs: Sequence[Run], attr: str) -> float:
    return float(statistics.median(getattr(r, attr) for r in runs))


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    runs: Sequence[Run],
    waits: Sequence[dict[str, Any]],
    took: float,
) -> str:
    lines = [
        f"# Scheduled delivery: {args.pushes:,} pushes due in the same second",
        "",
        f"`bench/run_scheduled.py {' '.join(args.given)}`, {took / 60:.1f} minutes.",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        "## Medians",
        "",
        f"Medians of {args.runs} runs per backend and arm. *scheduled*: each push's"
        " `received_at` at the emulator minus the due time (one `send_at` for all, a whole"
        f" second {args.lead:.0f} s after the first request). *immediate*: the same pushes"
        " without `send_at`, `received_at` minus the answer to the push's request. sends/s:"
        " pushes / (last delivery - first delivery). Cores over the window from the due time"
        " (scheduled) or the first request (immediate) to the queue found empty; *others*"
        " includes PostgreSQL and NATS.",
        "",
        "| backend | arm | first s | median s | p99 s | last s | sends/s draining"
        " | intake s | server cores | emulator cores | others |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in args.backends:
        for arm in ARMS:
            some = [r for r in runs if r.backend == backend and r.arm == arm]
            if not some:
                continue
            lines.append(
                f"| {BACKEND_TITLES[backend]} | {arm}"
                f" | {median_of(some, 'first_s'):.3f} | {median_of(some, 'median_s'):.3f}"
                f" | {median_of(some, 'p99_s'):.3f} | {median_of(some, 'last_s'):.3f}"
                f" | **{median_of(some, 'sends_per_s'):,.0f}**"
                f" | {median_of(some, 'intake_s'):.2f}"
                f" | {median_of(some, 'server_cores'):.2f}"
                f" | {median_of(some, 'emulator_cores'):.2f}"
                f" | {median_of(some, 'others'):.2f} |"
            )
    lines += ["", "Goal of the issue: the first push within 1 s of its time, and all out.", ""]
    for backend in args.backends:
        some = [r for r in runs if r.backend == backend and r.arm == "scheduled"]
        if some:
            worst_first = max(r.first_s for r in some)
            earliest = min(r.first_s for r in some)
            lines.append(
                f"- {BACKEND_TITLES[backend]}: first push {earliest:.3f}-{worst_first:.3f} s"
                f" after its time ({'met' if worst_first < 1.0 else '**not met**'}); all"
                f" {args.pushes:,} out {min(r.last_s for r in some):.2f}-"
                f"{max(r.last_s for r in some):.2f} s after it; none early:"
                f" {'yes' if earliest >= -0.05 else '**no**'}"
            )
    lines += [
        "",
        "## Every run",
        "",
        "| backend | arm | round | import s | intake s | due after intake s | first s | median s"
        " | p99 s | last s | drain s | sends/s | start to last s | server | emulator | client"
        " | others | others before | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        " ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        due_after = "" if r.due_after_intake_s is None else f"{r.due_after_intake_s:.2f}"
        lines.append(
            f"| {r.backend} | {r.arm} | {r.round} | {r.import_s:.2f} | {r.intake_s:.2f}"
            f" | {due_after} | {r.first_s:.3f} | {r.median_s:.3f} | {r.p99_s:.3f}"
            f" | {r.last_s:.3f} | {r.drain_s:.2f} | {r.sends_per_s:,.0f}"
            f" | {r.start_to_last_s:.2f} | {r.server_cores:.2f} | {r.emulator_cores:.2f}"
            f" | {r.client_cores:.2f} | {r.others:.2f} | {r.background_before:.2f} | {r.load} |"
        )
    lines += [
        "",
        "## Method",
        "",
        f"- Per run: a fresh data dir (PostgreSQL: a fresh schema and Redis prefix; JetStream:"
        f" a fresh stream), `pushgate emulate` on it, `partners create --emulator-credentials`,"
        f" the rate limit raised, {args.pushes:,} users (uuid and one device, ios, android and"
        " huawei in turn) through `pushgate users import` (a CSV, straight into the database;"
        " *import s*), then `pushgate serve --role all` (no --emulate) with the emulators'"
        " URLs and CA, "
        + (
            f"`PUSHGATE_WORKERS={args.workers}`"
            if args.workers
            else "`PUSHGATE_WORKERS` not set (the served version's default)"
        )
        + ", one API process. Before pushing, up to"
        f" {args.quiet_wait:.0f} s for other processes to leave the CPUs (*others before*).",
        f"- Before each round, up to {args.busy_wait:.0f} s for test runs on the machine (other"
        " sessions' suites) to end: "
        + "; ".join(
            f"round {w['round']} waited {w['waited_s']:.0f} s"
            + (f", {w['tests']} test processes still running" if w["tests"] else "")
            for w in waits
        )
        + ".",
        f"- Pushes: {args.pushes // harness.BATCH:,} requests of {harness.BATCH}"
        f" notifications (campaign {CAMP}, `ttl` {TTL:,}), {CLIENT_THREADS} at once from httpx"
        " threads in this script; every push answered under `successes` (*intake s*: the first"
        " request to the last answer).",
        "- Scheduled: every job must be waiting (`queued`) after the intake; the CPU window"
        " starts at the due time.",
        f"- The end: the first look (every {POLL * 1000:.0f} ms, `{UNSETTLED.format(jobs='jobs')}`)"
        " finding none; then `GET /emulator/v1/deliveries` once: every token delivered exactly"
        " once (the run fails otherwise). `received_at` is the emulator's clock in"
        " milliseconds; the emulator and the server share this machine's clock.",
        "- Lateness percentiles: nearest rank over the pushes.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pushes", type=int, default=10_000, help="pushes (and users) per run")
    p.add_argument("--runs", type=int, default=5, help="rounds (each: both arms per backend)")
    p.add_argument("--lead", type=float, default=12.0, help="seconds from push to due time")
    p.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated, of {', '.join(BACKENDS)}",
    )
    p.add_argument("--workers", type=int, default=0, help="PUSHGATE_WORKERS (0: not set)")
    p.add_argument("--quiet-wait", type=float, default=15.0, help="s per run, at most")
    p.add_argument(
        "--busy-wait",
        type=float,
        default=300.0,
        help="seconds to wait, at most, before each round for test runs on the machine to end",
    )
    p.add_argument("--nice", type=int, default=0, help="niceness of every process (root: -10)")
    p.add_argument("--quick", action="store_true", help="2,000 pushes, 3 rounds: a smoke run")
    p.add_argument("--rev", default=None, help="serve this commit's src/ (git archive)")
    p.add_argument("--src", type=Path, default=harness.REPO / "src")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, logs)")
    p.add_argument("--lock-wait", type=float, default=1800.0)
    args = p.parse_args(argv)
    if args.quick:
        args.pushes, args.runs, args.lead = 2_000, 3, 6.0
    args.backends = [b for b in args.backends.split(",") if b]
    if not args.backends or not set(args.backends) <= set(BACKENDS):
        p.error(f"backends: some of {', '.join(BACKENDS)}")
    if not 1 <= args.runs <= 20:
        p.error("runs must be 1..20")
    if not harness.BATCH <= args.pushes <= 100_000:
        p.error(f"pushes must be {harness.BATCH}..100000")
    if not 3 <= args.lead <= 120:
        p.error("lead must be 3..120 s")
    if not -20 <= args.nice <= 19 or not 0 <= args.workers <= 64:
        p.error("nice must be -20..19, workers 0..64")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.given = list(sys.argv[1:] if argv is None else argv)
    lock = harness.one_run_at_a_time(args.lock_wait)
    started = time.monotonic()
    info = harness.machine()
    info.pop("wrk", None)
    info[LOAD_AT_START] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    pytest_runs = subprocess.run(["pgrep", "-c", "-f", "pytest"], capture_output=True, text=True)
    info["pytest processes running at start"] = pytest_runs.stdout.strip() or "0"
    stem = harness.result_stem("scheduled", info, args.rev, "quick" if args.quick else "")
    work = Path(tempfile.mkdtemp(prefix="pushgate-scheduled-bench-"))

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)
    log(f"work dir {work}; {info['nproc']} x {info['cpu']}; load {info[LOAD_AT_START]}")
    bench = ScheduledBench(args, work)
    failed = True
    try:
        bench.run()
        failed = False
    finally:
        bench.cleanup()
        if failed:
            for path in work.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
            log(f"failed: the logs are kept in {work}")
        elif not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = report(args, info, bench.runs, bench.waits, time.monotonic() - started)
    raw = {
        "machine": info,
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": [asdict(r) for r in bench.runs],
        "waits": bench.waits,
    }
    harness.write_results(args.out, stem, text, raw)
    print(f"\n{text}")
    log(f"wrote {args.out / stem}.md and .json")
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
