"""Scale-out on this machine: API processes, delivery workers and identifier lookups, on the
embedded default (SQLite) and on PostgreSQL + Redis, in one run.

The scale-out issue's acceptance: the seed-body requests/s and the end-to-end sends/s of 1 and
2 API processes and 1 and 2 workers, against the embedded default in the same run, and the
identifier lookup latency with 10,000 and with 1,000,000 profiles (goal: within 1.5x).
One script, bounded in time, that:

1. registers `--users` users (run_api_bench's set-up, imported) once on each backend: a data
   dir for the embedded default, a PostgreSQL schema of its own (`?schema=`) plus a Redis key
   prefix for the other;
2. API: `pushgate serve --role api` under wrk with the seed body, `--runs` rounds of three
   configurations (embedded; PostgreSQL with 1 process; with 2 processes, one wrk per process
   at once, their requests/s summed), each run on freshly started processes and a fresh copy
   of the registered state, the configurations' order rotating from round to round;
3. delivery: `--jobs` pushes queued once per backend, then per run 1 or 2
   `pushgate serve --role worker` processes pointed at a standalone `pushgate emulate`
   (embedded: 1 worker, SQLite being one process; PostgreSQL: 1 and 2), timed from when the
   jobs are made due until the queue is empty;
4. lookups: 10,000 and `--profiles` (1,000,000) profiles bulk-inserted in SQL into fresh
   schemas (and SQLite data dirs), then `pushgate.store.profiles.resolve` timed for random
   existing users, 1 and 20 identifiers per lookup: p50/p99 and the ratio large/small;
5. writes bench/results/scale-<date>-<commit>.md and .json.

    . .venv/bin/activate && python bench/run_scale_bench.py --rev HEAD   # about 7 min, plus waits
    python bench/run_scale_bench.py --quick                               # about 2 min

It shares run_api_bench's lock (one benchmark at a time) and first waits for test runs and
other benchmarks to finish. Traffic goes to 127.0.0.1 only. PostgreSQL and Redis are the
ones the test suites use (PUSHGATE_TEST_POSTGRES, PUSHGATE_TEST_REDIS); every schema this
script creates is dropped at the end, and its Redis keys deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import loadgen  # noqa: E402  (bench/ is not a package)

POSTGRES_URL = os.environ.get("PUSHGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PUSHGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
BACKEND_SETTINGS = (
    "PUSHGATE_DATABASE_URL",
    "PUSHGATE_REDIS_URL",
    "PUSHGATE_REDIS_PREFIX",
    "PUSHGATE_QUEUE_URL",  # measured: the job table as the queue (the default)
    "PUSHGATE_QUEUE_PREFIX",
    "PGAPPNAME",
)
EMBEDDED, POSTGRES = "embedded", "postgres"
# Lookups may also run on a second PostgreSQL server (--lookup-postgres), one whose shared
# buffers hold the large database, as a production server's would.
LARGE_BUFFERS = "postgres-large-buffers"
DATABASE_NAMES = {
    "postgres": "PostgreSQL",
    LARGE_BUFFERS: "PostgreSQL, large shared buffers",
    "sqlite": "SQLite",
}
# (backend, processes) measured for the API and for delivery; SQLite is one process by design.
CONFIGS = ((EMBEDDED, 1), (POSTGRES, 1), (POSTGRES, 2))
BUSY = re.compile(r"pytest|run_stats_bench|run_api_bench")  # wait until none of these runs
BUSY_POLL = 30.0
NOT_DUE = 1e12  # a due_at no worker claims: jobs wait for the clock to start
IDLE_POLL = 0.25  # DeliveryWorker's idle_poll_seconds: a worker looks at least this often
POLL = 0.05  # seconds between looks at the queue depth
DONE = "SELECT count(*) FROM jobs WHERE state = 'done'"
GOAL_LOOKUP_RATIO = 1.5
KINDS = ("email", "phone_number", "uuid")  # the kinds run_api_bench's users have
SMALL = 10_000
WAIT_POLL = 0.05  # seconds between looks at pg_stat_activity


def rotated(items: Sequence[Any], r: int) -> list[Any]:
    """The items in round r's order: each starts a round in turn, so a drift of the
    machine spreads over all of them."""
    k = r % len(items)
    return [*items[k:], *items[:k]]


def label(backend: str, n: int, role: str) -> str:
    what = "API process" if role == "api" else "worker"
    where = "embedded (SQLite)" if backend == EMBEDDED else "PostgreSQL + Redis"
    return f"{where}, {n} {what}{'es' if n > 1 and role == 'api' else 's' if n > 1 else ''}"


# ---------------------------------------------------------------- the machine


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def busy_processes() -> list[str]:
    """Test runs and other benchmarks on the machine."""
    return harness.processes_matching(BUSY)


def wait_for_quiet_machine(limit: float, log: Callable[[str], None]) -> float:
    """Wait (polling every 30 s, at most `limit` s) until no test run or other benchmark
    runs. Returns the seconds waited."""
    return harness.wait_for_none(BUSY, limit, BUSY_POLL, log, "test/benchmark processes")


def database_cpu() -> float:
    """CPU seconds of every PostgreSQL and Redis process (the postmaster's reaped children
    included): the backends are part of what is measured. Shared with any other user of
    these servers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            stat = (proc / "stat").read_text()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            if comm.startswith("postgres") or comm.startswith("redis-server"):
                total += sum(int(f) for f in stat.rsplit(")", 1)[1].split()[11:15])
    return total / tick


def processes_cpu(pids: Sequence[int]) -> float:
    return sum(sum(harness.cpu_seconds(pid).values()) for pid in pids)


class Clock:
    """Cores used over an interval: given processes, load generators (this script's reaped
    children), the database servers, and everything else on the machine."""

    def __init__(self, pids: Sequence[int], own_time: bool = False) -> None:
        self.pids = list(pids)
        self.own_time = own_time
        self.t0 = time.perf_counter()
        self.procs0 = processes_cpu(self.pids)
        self.children0 = harness.children_cpu()
        self.db0 = database_cpu()
        self.machine0 = harness.machine_busy()
        self.own0 = time.process_time()

    def cores(self, **named: int) -> dict[str, float]:
        """Cores per part since the start; `named` processes are split out of `pids`."""
        wall = time.perf_counter() - self.t0
        procs = processes_cpu(self.pids) - self.procs0
        db = database_cpu() - self.db0
        children = harness.children_cpu() - self.children0
        own = time.process_time() - self.own0 if self.own_time else 0.0
        machine = harness.machine_busy() - self.machine0
        return {
            "wall_s": round(wall, 3),
            "processes": procs / wall,
            "loadgen": children / wall,
            "database": db / wall,
            "others": max(0.0, (machine - procs - children - db - own) / wall),
        }


class WaitSampler:
    """What this run's PostgreSQL sessions are doing, sampled from pg_stat_activity every
    WAIT_POLL s on a thread while the block runs: shares of the samples per state and wait
    event (the sessions are told apart by their application_name, PGAPPNAME), and the
    statements waiting for another transaction's row lock."""

    def __init__(self, conninfo: str | None, app: str) -> None:
        self.conninfo = conninfo
        self.app = app
        self.events: Counter[str] = Counter()
        self.locked: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WaitSampler:
        if self.conninfo:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _sample(self) -> None:
        import psycopg

        sql = (
            "SELECT state, wait_event_type, wait_event, left(query, 40) FROM pg_stat_activity"
            " WHERE application_name = %s AND backend_type = 'client backend'"
        )
        assert self.conninfo is not None
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.conninfo, autocommit=True) as c,
        ):
            while not self._stop.wait(WAIT_POLL):
                for state, kind, event, query in c.execute(sql, (self.app,)).fetchall():
                    self.events[f"{state}: {kind}/{event}" if kind else str(state)] += 1
                    if kind == "Lock":
                        self.locked[f"{event}: {query}"] += 1

    def shares(self, top: int = 6) -> dict[str, float]:
        total = sum(self.events.values())
        return (
            {k: round(100 * v / total, 1) for k, v in self.events.most_common(top)} if total else {}
        )

    def lock_waits(self, top: int = 3) -> dict[str, float]:
        total = sum(self.events.values())
        return (
            {k: round(100 * v / total, 1) for k, v in self.locked.most_common(top)} if total else {}
        )


# ---------------------------------------------------------------- one backend


class BackendBench(harness.Bench):
    """run_api_bench's Bench with every process on one backend: the embedded default (no
    backend settings, whatever this environment holds) or PostgreSQL + Redis."""

    def __init__(
        self, args: argparse.Namespace, work: Path, name: str, backend_env: dict[str, str]
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
        super().__init__(args, work)
        self.name = name
        self.backend_env = backend_env
        self.url = backend_env.get("PUSHGATE_DATABASE_URL")
        self.data: Path | None = None  # the data dir the measured processes use
        self.queued: Path | None = None  # embedded: a data dir holding the queued jobs

    def snapshot_src(self) -> None:
        super().snapshot_src()
        env = {k: v for k, v in self.env.items() if k not in BACKEND_SETTINGS}
        self.env = {**env, **self.backend_env}

    def server(self, data_dir: Path, role: str, **extra: str) -> harness.Server:
        """`pushgate serve --role ROLE` without --emulate (as tests/e2e/test_scale_out.py)."""
        server = self.pushgate_server(data_dir, role)
        server.cmd = [c for c in server.cmd if c != "--emulate"]
        server.env = {**self.env, **extra}
        return server

    @contextlib.contextmanager
    def serving(self, servers: Sequence[harness.Server]) -> Iterator[list[harness.Server]]:
        """Start the processes together; stop them all at the end."""
        try:
            with ThreadPoolExecutor(len(servers)) as pool:
                list(pool.map(harness.Server.start, servers))
            yield list(servers)
        finally:
            for s in servers:
                with contextlib.suppress(Exception):
                    s.stop()

    def sampler(self) -> WaitSampler:
        """Wait events of this backend's sessions (none for the embedded one)."""
        app = self.backend_env.get("PGAPPNAME", "")
        return WaitSampler(self.args.postgres_conninfo if self.url else None, app)

    def db(self) -> Any:
        """A connection (autocommit, `?` placeholders) to the measured database."""
        if self.url:
            from pushgate.store import postgres

            return postgres.connect(postgres.parse_url(self.url))
        assert self.data is not None
        conn = sqlite3.connect(self.data / harness.DB_FILE, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def count(self, sql: str) -> int:
        with contextlib.closing(self.db()) as conn:
            return int(conn.execute(sql).fetchone()[0] or 0)

    def execute(self, *statements: str) -> None:
        with contextlib.closing(self.db()) as conn:
            for sql in statements:
                conn.execute(sql)

    def fresh_state(self) -> Path:
        """The registered state without any job: a fresh copy of the data dir (embedded), or
        the tables that pushes fill emptied (PostgreSQL, processes stopped)."""
        if not self.url:
            self.data = self.fresh_copy("run")
        else:
            self.data = self.template
            self.execute(
                "TRUNCATE jobs, inbox, fail_records, campaigns, campaign_variants,"
                " campaign_stats, async_requests"
            )
        return self.data

    def queue(self, bodies: Sequence[bytes]) -> dict[str, Any]:
        """Queue len(bodies) jobs through `--role api`, not yet due; each drain starts from
        them (a copy of the data dir, or of the jobs table)."""
        data = self.fresh_state()
        with self.serving([self.server(data, "api")]) as (server,):
            requests = [loadgen.build_request(harness.PUSH_PATH, b, server.port) for b in bodies]
            started = time.perf_counter()
            result, _ = loadgen.run(loadgen.closed_loop(server.port, requests, 32))
            took = time.perf_counter() - started
        queued = self.count(harness.QUEUE_DEPTH)
        if result["statuses"] != {"200": len(bodies)} or queued != len(bodies):
            raise RuntimeError(f"{self.name}: {result['statuses']}, {queued} jobs queued")
        self.execute(f"UPDATE jobs SET due_at = {NOT_DUE} WHERE state = 'queued'")
        if self.url:
            self.execute(
                "DROP TABLE IF EXISTS bench_queued", "CREATE TABLE bench_queued AS TABLE jobs"
            )
        else:
            self.queued = self.work / "queued"
            shutil.rmtree(self.queued, ignore_errors=True)
            shutil.copytree(data, self.queued)
        self.log(f"{self.name}: queued {queued:,} jobs in {took:.1f} s")
        return {
            "jobs": queued,
            "seconds": round(took, 2),
            "requests_per_s": round(len(bodies) / took),
        }

    def restore_queue(self) -> Path:
        if self.url:
            self.execute(
                "TRUNCATE jobs, inbox, fail_records", "INSERT INTO jobs SELECT * FROM bench_queued"
            )
            self.data = self.template
        else:
            assert self.queued is not None
            self.data = self.work / "data-worker"
            shutil.rmtree(self.data, ignore_errors=True)
            shutil.copytree(self.queued, self.data)
        return self.data


# ---------------------------------------------------------------- measured series


@dataclass
class Series:
    """The runs of one configuration; every run has a "rate"."""

    key: str
    backend: str
    processes: int
    title: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, name: str = "rate") -> float:
        values = [r[name] for r in self.runs if r.get(name) is not None]
        return statistics.median(values) if values else 0.0


class ScaleBench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.name = f"bench_scale_{os.getpid()}_{time.time_ns() % 10**6}"
        self.schemas: list[tuple[str, str]] = []  # (server, schema)
        self.shared_buffers: dict[str, str] = {}  # per PostgreSQL lookup database
        self.waited: list[dict[str, Any]] = []
        self.embedded = BackendBench(
            harness.api_args(args),
            work / "embedded",
            EMBEDDED,
            {harness.STATS_ENV: args.campaign_stats},
        )
        self.log = self.embedded.log
        self.pg: BackendBench | None = None
        self.bodies: dict[str, harness.Bodies] = {}
        self.registration: dict[str, Any] = {}
        self.emulator_data: dict[str, Path] = {}
        self.body_files: dict[str, Path] = {}
        self.profiles: dict[str, Any] = {}  # per backend: run_api_bench's profile summary

    def quiet(self, what: str) -> None:
        """Before each heavy step: no test run or other benchmark on the machine."""
        waited = wait_for_quiet_machine(self.args.busy_wait, self.log)
        self.waited.append({"before": what, "waited_s": waited, "load": load_average()})

    def schema(self, suffix: str = "", server: str | None = None) -> str:
        server = server or self.args.postgres
        name = self.name + suffix
        self.schemas.append((server, name))
        return f"{server}?schema={name}"

    def setup(self) -> None:
        self.bodies[EMBEDDED] = self.embedded.setup()
        self.registration[EMBEDDED] = self.embedded.registration
        # The same source tree, already snapshotted: both backends serve one version.
        pg_args = harness.api_args(argparse.Namespace(**{**vars(self.args), "rev": None}))
        pg_args.src = self.embedded.src
        pg_args.postgres_conninfo = self.args.postgres
        backend_env = {
            "PUSHGATE_DATABASE_URL": self.schema(),
            "PUSHGATE_REDIS_URL": self.args.redis,
            "PUSHGATE_REDIS_PREFIX": f"{self.name}:",
            "PGAPPNAME": self.name,  # libpq's application_name: tells our sessions apart
            harness.STATS_ENV: self.args.campaign_stats,
        }
        self.pg = BackendBench(pg_args, self.work / "postgres", POSTGRES, backend_env)
        self.bodies[POSTGRES] = self.pg.setup()
        self.registration[POSTGRES] = self.pg.registration
        # From here on, this process imports the served pushgate (the lookups run in it).
        sys.path.insert(0, str(self.embedded.src))
        for name in [m for m in sys.modules if m == "pushgate" or m.startswith("pushgate.")]:
            del sys.modules[name]

    def backend(self, name: str) -> BackendBench:
        bench = self.embedded if name == EMBEDDED else self.pg
        assert bench is not None
        return bench

    # ------------------------------------------------------------ API

    def wrk_all(
        self, bench: BackendBench, servers: Sequence[harness.Server], body: Path, seconds: float
    ) -> list[dict[str, Any]]:
        """One wrk per process, all at once, the connections split between them."""
        each = copy.copy(bench)
        each.args = argparse.Namespace(
            **{**vars(bench.args), "connections": max(1, bench.args.connections // len(servers))}
        )
        with ThreadPoolExecutor(len(servers)) as pool:
            return list(
                pool.map(lambda s: each.wrk(s.port, harness.PUSH_PATH, body, seconds), servers)
            )

    def api_run(self, series: Series, body: Path) -> None:
        bench = self.backend(series.backend)
        data = bench.fresh_state()
        servers = [bench.server(data, "api") for _ in range(series.processes)]
        with bench.serving(servers):
            self.wrk_all(bench, servers, body, self.args.warmup)
            background = harness.wait_quiet(self.args.quiet_wait, servers[0].pid)
            clock = Clock([s.pid for s in servers])
            with bench.sampler() as waits:
                raws = self.wrk_all(bench, servers, body, self.args.duration)
            cores = clock.cores()
        failures = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        rates = [r["requests"] / (r["duration_us"] / 1e6) for r in raws]
        requests = sum(r["requests"] for r in raws)
        jobs = bench.count(harness.QUEUE_DEPTH)
        run = {
            "rate": sum(rates),
            "per_process": [round(x) for x in rates],
            "p50_ms": max(r["p50_us"] for r in raws) / 1000,
            "p99_ms": max(r["p99_us"] for r in raws) / 1000,
            "errors": sum(r[k] for r in raws for k in failures),
            "requests": requests,
            "jobs_queued": jobs,
            "server_cores": cores["processes"],
            "wrk_cores": cores["loadgen"],
            "database_cores": cores["database"],
            "others": cores["others"],
            "background_before": background,
            "load": load_average(),
            "pg_waits": waits.shares(),
            "pg_lock_waits": waits.lock_waits(),
        }
        series.runs.append(run)
        self.log(
            f"  {series.title}: {run['rate']:,.0f} req/s {run['per_process']}, p99"
            f" {run['p99_ms']:.1f} ms, errors {run['errors']}, {jobs:,} jobs for {requests:,}"
            f" answers; cores: pushgate {run['server_cores']:.2f}, wrk {run['wrk_cores']:.2f},"
            f" database {run['database_cores']:.2f}, others {run['others']:.2f}"
        )

    def api_phase(self) -> list[Series]:
        files = {}
        for name, bodies in self.bodies.items():
            files[name] = self.work / f"{name}-{self.args.body}.bodies"
            loadgen.write_bodies(files[name], getattr(bodies, self.args.body))
        self.body_files = files
        series = [Series(f"api_{b}_{n}", b, n, label(b, n, "api")) for b, n in CONFIGS]
        for r in range(self.args.runs):
            self.quiet(f"API round {r + 1}")
            for s in rotated(series, r):
                self.log(f"API round {r + 1}/{self.args.runs}: {s.title}")
                self.api_run(s, files[s.backend])
        return series

    def profile_phase(self, out_stem: Path) -> None:
        """One API process of each backend under py-spy (run_api_bench's profile_server)."""
        for name in self.body_files:
            bench = self.backend(name)
            with bench.serving([bench.server(bench.fresh_state(), "api")]) as (server,):
                self.log(f"profiling one API process, {name}")
                # Python frames only: with native ones, the pool's threads waiting in libpq
                # look busy.
                found = bench.profile_server(
                    server, self.body_files[name], out_stem, name, native=False
                )
            if found:
                self.profiles[name] = found

    # ------------------------------------------------------------ delivery

    def drain(self, series: Series, emulators: dict[str, harness.Emulator]) -> None:
        bench = self.backend(series.backend)
        emulator = emulators[series.backend]
        data = bench.restore_queue()
        jobs, done0 = bench.count(harness.QUEUE_DEPTH), bench.count(DONE)
        emulator.control("DELETE", "/deliveries")
        provider = emulator.provider_env(self.emulator_data[series.backend])
        servers = [bench.server(data, "worker", **provider) for _ in range(series.processes)]
        with bench.serving(servers), contextlib.closing(bench.db()) as db:
            background = harness.wait_quiet(self.args.quiet_wait, emulator.pid)
            due = time.time()
            db.execute("UPDATE jobs SET due_at = ? WHERE state = 'queued'", (due,))
            made_due = time.perf_counter()
            # Every worker looks at least every IDLE_POLL s: from then on all of them send.
            time.sleep(IDLE_POLL + POLL)
            clock = Clock([*(s.pid for s in servers), emulator.pid], own_time=True)
            left = depth = int(db.execute(harness.QUEUE_DEPTH).fetchone()[0])
            emulator_cpu0 = processes_cpu([emulator.pid])
            deadline = time.monotonic() + harness.DRAIN_LIMIT
            with bench.sampler() as waits:
                while depth and time.monotonic() < deadline:
                    time.sleep(POLL)
                    depth = int(db.execute(harness.QUEUE_DEPTH).fetchone()[0])
            cores = clock.cores()
            emulator_cores = (processes_cpu([emulator.pid]) - emulator_cpu0) / cores["wall_s"]
            total_s = time.perf_counter() - made_due
            metrics = [harness.pushgate_metrics(s.port) for s in servers]
        if depth:
            raise RuntimeError(
                f"{series.title}: {depth} jobs still queued after {harness.DRAIN_LIMIT} s"
            )
        done = bench.count(DONE) - done0
        wall = cores["wall_s"]
        run = {
            "rate": left / wall,
            "rate_from_due": jobs / total_s,
            "timed_jobs": left,
            "timed_s": wall,
            "jobs": jobs,
            "done": done,
            "per_worker": [int(m.get("delivery_done", 0)) for m in metrics],
            "worker_cores": cores["processes"] - emulator_cores,
            "emulator_cores": emulator_cores,
            "database_cores": cores["database"],
            "others": cores["others"],
            "background_before": background,
            "load": load_average(),
            "pg_waits": waits.shares(),
            "pg_lock_waits": waits.lock_waits(),
        }
        series.runs.append(run)
        self.log(
            f"  {series.title}: settled {left:,} jobs in {wall:.2f} s: {run['rate']:,.0f}"
            f" jobs/s (from due: {run['rate_from_due']:,.0f}); done {done:,} of {jobs:,}"
            f" {run['per_worker']}; cores: workers {run['worker_cores']:.2f}, emulator"
            f" {emulator_cores:.2f}, database {run['database_cores']:.2f}, others"
            f" {run['others']:.2f}"
        )
        if done != jobs:
            raise RuntimeError(f"{series.title}: {done} of {jobs} jobs done")

    def emulator(self, bench: BackendBench) -> harness.Emulator:
        """`pushgate emulate` on a copy of the backend's data dir (its secret key, and its
        credentials: in the copied SQLite file, or in PostgreSQL)."""
        data = self.emulator_data[bench.name] = bench.fresh_copy("emulator")
        port = harness.free_port()
        cmd = [bench.python, "-m", "pushgate.cli", "emulate", "--data-dir", str(data)]
        return harness.Emulator(
            "pushgate emulate",
            harness.pinned([*cmd, "--port", str(port)], None, self.args.nice),
            port,
            bench.work / "emulate.log",
            self.args.nice,
            bench.env,
        )

    def delivery_phase(self) -> tuple[list[Series], dict[str, Any]]:
        self.quiet("queueing")
        queueing = {}
        for name in (EMBEDDED, POSTGRES):
            bench = self.backend(name)
            unique = [harness.with_ttl(b, harness.DELIVERY_TTL) for b in self.bodies[name].varied]
            queueing[name] = bench.queue([unique[i % len(unique)] for i in range(self.args.jobs)])
        series = [Series(f"delivery_{b}_{n}", b, n, label(b, n, "worker")) for b, n in CONFIGS]
        with contextlib.ExitStack() as stack:
            emulators = {name: self.emulator(self.backend(name)) for name in (EMBEDDED, POSTGRES)}
            for emulator in emulators.values():
                stack.enter_context(harness.serving(emulator))
            for r in range(self.args.runs):
                self.quiet(f"delivery round {r + 1}")
                for s in rotated(series, r):
                    self.log(f"delivery round {r + 1}/{self.args.runs}: {s.title}")
                    self.drain(s, emulators)
        return series, queueing

    # ------------------------------------------------------------ lookups

    def populate(self, conn: Any, dialect: str, n: int) -> int:
        """`n` profiles of one partner, each with the three identifiers and the one device
        of run_api_bench's users, in a few bulk INSERT ... SELECT statements; then ANALYZE."""
        sql = LOOKUP_SQL[dialect]
        now = time.time()
        conn.execute("BEGIN")
        partner = conn.execute(
            "INSERT INTO partners (name, api_key_hash, request_token_hash, sdk_key_hash,"
            " rate_limit, advanced_rate_limit, gfc_limit, gfc_window, created_at, updated_at)"
            " VALUES ('lookup', ?, ?, ?, 1000, 1000, 0, 86400, ?, ?) RETURNING id",
            (b"api", b"request", b"sdk", now, now),
        ).fetchone()[0]
        series = sql["series"].format(n=n)
        conn.execute(
            "INSERT INTO profiles (id, partner_id, insider_id, attributes, created_at,"
            f" updated_at, last_active_at) SELECT g, ?, {sql['hex']}, {sql['attributes']},"
            f" ?, ?, ? FROM ({series}) AS s",
            (partner, now, now, now),
        )
        for kind in KINDS:
            conn.execute(
                "INSERT INTO identifiers (partner_id, kind, value, profile_id)"
                f" SELECT ?, ?, {sql[kind]}, g FROM ({series}) AS s",
                (partner, kind),
            )
        conn.execute(
            "INSERT INTO devices (partner_id, profile_id, platform, token, udid, environment,"
            " push_optin, status, token_registered_at, last_active_at, attributes)"
            f" SELECT ?, g, CASE WHEN g % 2 = 0 THEN 'ios' ELSE 'android' END, {sql['token']},"
            f" 'BENCH-' || g, 'production', 1, 'active', ?, ?, {sql['device']}"
            f" FROM ({series}) AS s",
            (partner, now, now),
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        return int(partner)

    def lookup_targets(self) -> list[tuple[str, str, int]]:
        """(database, where, profiles) of every lookup database; the database's name starts
        with its dialect."""
        targets = []
        sizes = (SMALL, self.args.profiles)
        if not self.args.skip_sqlite_lookup:
            targets += [("sqlite", str(self.work / f"lookup-{n}"), n) for n in sizes]
        targets += [("postgres", self.schema(f"_lk{n}"), n) for n in sizes]
        if self.args.lookup_postgres:
            server = self.args.lookup_postgres
            targets += [(LARGE_BUFFERS, self.schema(f"_lkb{n}", server), n) for n in sizes]
        return targets

    def lookup_phase(self) -> dict[str, Any]:
        from pushgate.store import backend as store_backend

        self.quiet("lookup population")
        dbs: dict[tuple[str, int], tuple[Any, int]] = {}
        populated: dict[str, Any] = {}
        try:
            for db, where, n in self.lookup_targets():
                dialect = dialect_of(db)
                url = where if dialect == "postgres" else None
                conn = store_backend.connect_sync(Path(where), url)
                started = time.perf_counter()
                partner = self.populate(conn, dialect, n)
                took = time.perf_counter() - started
                dbs[(db, n)] = (conn, partner)
                populated[f"{db} {n}"] = round(took, 1)
                if dialect == "postgres":
                    buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
                    self.shared_buffers[db] = str(buffers)
                self.log(f"lookups: {db}, {n:,} profiles inserted in {took:.1f} s")
            results: dict[str, Any] = {
                "populate_s": populated,
                "shared_buffers": self.shared_buffers,
                "runs": {},
                "plans": {},
            }
            for r in range(self.args.runs):
                self.quiet(f"lookup round {r + 1}")
                for (db, n), (conn, partner) in rotated(list(dbs.items()), r):
                    run = self.lookups(conn, partner, n, random.Random(r))
                    results["runs"].setdefault(f"{db} {n}", []).append(run)
                    self.log(
                        f"lookups round {r + 1}/{self.args.runs}, {db}, {n:,} profiles: "
                        + ", ".join(
                            f"{k} p50 {v['p50_us']:.0f} µs p99 {v['p99_us']:.0f} µs"
                            for k, v in run.items()
                        )
                    )
            for (db, n), (conn, partner) in dbs.items():  # after the runs: warm
                results["plans"][f"{db} {n}"] = explain(conn, dialect_of(db), partner, n)
        finally:
            for conn, _ in dbs.values():
                with contextlib.suppress(Exception):
                    conn.close()
        return results

    def lookups(self, conn: Any, partner: int, n: int, rng: random.Random) -> dict[str, Any]:
        """Warm-up, then `--lookups` lookups of 1 identifier and a fifth as many of 20
        (20 random users, one identifier each, the kinds in turn)."""
        from pushgate.store.profiles import resolve

        found: dict[str, Any] = {}
        for name, size, count in (
            ("warm-up", 1, 1000),
            ("1 identifier", 1, self.args.lookups),
            ("20 identifiers", 20, self.args.lookups // 5),
        ):
            times = []
            for _ in range(count):
                wanted = random_identifiers(rng, n, size)
                t0 = time.perf_counter_ns()
                matches, profiles = resolve(conn, partner, wanted)
                times.append(time.perf_counter_ns() - t0)
                if len(matches) != size or len(profiles) != size:
                    raise RuntimeError(f"lookup of {wanted} found {matches}")
            if name == "warm-up":
                continue
            times.sort()
            found[name] = {
                "lookups": count,
                "p50_us": loadgen.percentile(times, 50) / 1000,
                "p99_us": loadgen.percentile(times, 99) / 1000,
                "mean_us": statistics.fmean(times) / 1000,
            }
        return found

    # ------------------------------------------------------------ end

    def cleanup(self) -> None:
        import psycopg

        for server in dict.fromkeys(server for server, _ in self.schemas):
            with contextlib.suppress(Exception), psycopg.connect(server, autocommit=True) as c:
                for where, schema in self.schemas:
                    if where == server:
                        c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(self.args.redis)
            for key in client.scan_iter(f"{self.name}:*"):
                client.delete(key)
        if self.schemas:
            self.log(f"dropped schemas {', '.join(schema for _, schema in self.schemas)}")


# The lookup databases' bulk inserts, per dialect: the row numbers g = 1..n, and the values of
# run_api_bench's user g (api.user_identifiers: user{g}@bench.example, +6590{g:07d}, bench-{g}).
LOOKUP_SQL = {
    "postgres": {
        "series": "SELECT g FROM generate_series(1, {n}) AS g",
        "hex": "upper(md5(g::text))",
        "attributes": "json_build_object('name', 'User' || g, 'surname', 'Bench', 'gender',"
        " 'f', 'age', 20 + g % 50)::text",
        "email": "'user' || g || '@bench.example'",
        "phone_number": "'+6590' || lpad(g::text, 7, '0')",
        "uuid": "'bench-' || g",
        "token": "md5(g::text) || md5((g + 1)::text)",
        "device": "json_build_object('model', 'iPhone 11', 'app_version', '4.0')::text",
    },
    "sqlite": {
        "series": "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n})"
        " SELECT g FROM s",
        "hex": "printf('%016X%016X', g, g * 7919)",
        "attributes": "json_object('name', 'User' || g, 'surname', 'Bench', 'gender', 'f',"
        " 'age', 20 + g % 50)",
        "email": "'user' || g || '@bench.example'",
        "phone_number": "'+6590' || printf('%07d', g)",
        "uuid": "'bench-' || g",
        "token": "printf('%032x%032x', g, g * 7919)",
        "device": "json_object('model', 'iPhone 11', 'app_version', '4.0')",
    },
}


class Recording:
    """A connection that remembers the statements run through it (to explain them)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements: list[tuple[str, Sequence[Any]]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.statements.append((sql, params))
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, params: Any) -> Any:
        return self.conn.executemany(sql, params)


def random_identifiers(rng: random.Random, n: int, count: int) -> list[Any]:
    """One identifier each of `count` random users of 1..n, the kinds in turn."""
    from pushgate.targeting.push import Identifier

    users = rng.sample(range(1, n + 1), count)
    return [
        Identifier(KINDS[i % 3], harness.user_identifiers(u)[KINDS[i % 3]])
        for i, u in enumerate(users)
    ]


def explain(conn: Any, dialect: str, partner: int, n: int, samples: int = 50) -> dict[str, Any]:
    """resolve's statement for 20 random users: its plan (PostgreSQL: EXPLAIN ANALYZE with
    BUFFERS, and over `samples` lookups the shared buffers hit and read per lookup and the
    median planning and execution times the server reports; SQLite: EXPLAIN QUERY PLAN), and
    the size of the three tables."""
    from pushgate.store.profiles import resolve

    rng = random.Random(n)
    found: dict[str, Any] = {}
    hit = read = 0
    timings: dict[str, list[float]] = {"Planning Time": [], "Execution Time": []}
    for i in range(samples if dialect == "postgres" else 1):
        rec = Recording(conn)
        resolve(rec, partner, random_identifiers(rng, n, 20))
        sql, params = rec.statements[-1]
        if dialect == "sqlite":
            rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            found["plan"] = [str(r[-1]) for r in rows]
            break
        if i == 0:
            options = "ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY ON"
            rows = conn.execute(f"EXPLAIN ({options}) {sql}", params).fetchall()
            found["plan"] = [str(r[0]) for r in rows]
        doc = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params).fetchone()[0]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        hit += doc[0]["Plan"]["Shared Hit Blocks"]
        read += doc[0]["Plan"]["Shared Read Blocks"]
        for name, values in timings.items():
            values.append(doc[0][name] * 1000)
    if dialect == "postgres":
        found["buffers_per_lookup"] = {"hit": hit / samples, "read": read / samples}
        found["server_us"] = {k: statistics.median(v) for k, v in timings.items()}
        size = "SELECT " + " + ".join(
            f"pg_total_relation_size('{t}')" for t in ("profiles", "identifiers", "devices")
        )
        found["tables_mb"] = round(int(conn.execute(size).fetchone()[0]) / 2**20)
    else:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        found["tables_mb"] = round(pages * page_size / 2**20)  # the whole file
    return found


# ---------------------------------------------------------------- report


fmt = harness.fmt  # numbers as the statistics benchmark writes them


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def lookup_medians(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per database and lookup size: the medians over the runs of p50, p99 and the mean."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for db, runs in results.get("runs", {}).items():
        for size in runs[0]:
            found.setdefault(db, {})[size] = {
                k: statistics.median(run[size][k] for run in runs)
                for k in ("p50_us", "p99_us", "mean_us")
            }
    return found


def dialect_of(db: str) -> str:
    """The SQL dialect of a lookup database's name ("postgres-large-buffers": postgres)."""
    return db.partition("-")[0]


def lookup_ratios(args: argparse.Namespace, medians: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for db in ("postgres", LARGE_BUFFERS, "sqlite"):
        small, large = medians.get(f"{db} {SMALL}"), medians.get(f"{db} {args.profiles}")
        if not small or not large:
            continue
        for size in small:
            a, b = small[size], large[size]
            rows.append(
                {
                    "database": DATABASE_NAMES[db],
                    "lookup": size,
                    "small": a,
                    "large": b,
                    "ratio_p50": b["p50_us"] / a["p50_us"],
                    "ratio_p99": b["p99_us"] / a["p99_us"],
                    "goal_met": b["p50_us"] / a["p50_us"] <= GOAL_LOOKUP_RATIO,
                }
            )
    return rows


def runs_table(series: Sequence[Series], columns: Sequence[tuple[str, str, str]]) -> list[str]:
    lines = [
        "| configuration | run | " + " | ".join(c[0] for c in columns) + " |",
        "| --- | ---: |" + " ---: |" * len(columns),
    ]

    def cell(x: Any, how: str) -> str:
        if x is None:
            return ""
        if isinstance(x, (list, str)):
            return ", ".join(f"{v:,}" for v in x) if isinstance(x, list) else x
        return f"{x:,.0f}" if how == "n" else format(x, how)

    for s in series:
        for n, r in enumerate(s.runs, 1):
            cells = [cell(r.get(key), how) for _, key, how in columns]
            lines.append(f"| {s.title} | {n} | " + " | ".join(cells) + " |")
    return lines


API_COLUMNS = [
    ("requests/s", "rate", "n"),
    ("per process", "per_process", ""),
    ("p50 ms", "p50_ms", ".2f"),
    ("p99 ms", "p99_ms", ".2f"),
    ("errors", "errors", "n"),
    ("pushgate cores", "server_cores", ".2f"),
    ("wrk cores", "wrk_cores", ".2f"),
    ("database cores", "database_cores", ".2f"),
    ("others", "others", ".2f"),
    ("load average", "load", ""),
]
DELIVERY_COLUMNS = [
    ("sends/s", "rate", "n"),
    ("from due", "rate_from_due", "n"),
    ("timed jobs", "timed_jobs", "n"),
    ("timed s", "timed_s", ".2f"),
    ("done, per worker", "per_worker", ""),
    ("worker cores", "worker_cores", ".2f"),
    ("emulator cores", "emulator_cores", ".2f"),
    ("database cores", "database_cores", ".2f"),
    ("others", "others", ".2f"),
    ("load average", "load", ""),
]


def waits_table(series: Sequence[Series]) -> list[str]:
    """The PostgreSQL sessions' states and wait events, mean share over each configuration's
    runs, and the statements waiting for row locks."""
    lines = []
    for s in series:
        if not any(r.get("pg_waits") for r in s.runs):
            continue
        for key, what in (
            ("pg_waits", "state: wait event"),
            ("pg_lock_waits", "waiting for a lock"),
        ):
            mean: Counter[str] = Counter()
            for r in s.runs:
                mean.update({k: v / len(s.runs) for k, v in r.get(key, {}).items()})
            cells = ", ".join(f"{k} {v:.0f}%" for k, v in mean.most_common(6) if v >= 1)
            if cells:
                lines.append(f"| {s.title} | {what} | {cells} |")
    if not lines:
        return []
    return [
        "PostgreSQL sessions of the measured processes during the runs (pg_stat_activity every"
        f" {WAIT_POLL * 1000:.0f} ms, mean share of the samples; `idle in transaction: Client/"
        "ClientRead` is a transaction waiting for pushgate's next statement, `active:"
        " Lock/transactionid` a statement waiting for another transaction's row lock):",
        "",
        "| configuration | | share of samples |",
        "| --- | --- | --- |",
        *lines,
        "",
    ]


def summary(api_series: Sequence[Series], delivery: Sequence[Series]) -> dict[str, Any]:
    """The medians of each configuration, and the ratios the issue asks for."""
    out: dict[str, Any] = {}
    for kind, series in (("api", api_series), ("delivery", delivery)):
        if not series:
            continue
        m = {s.key.split("_", 1)[1]: s.median() for s in series}
        out[kind] = {
            "medians": m,
            "postgres_2_over_1": m[f"{POSTGRES}_2"] / m[f"{POSTGRES}_1"],
            "postgres_1_over_embedded": m[f"{POSTGRES}_1"] / m[f"{EMBEDDED}_1"],
            "postgres_2_over_embedded": m[f"{POSTGRES}_2"] / m[f"{EMBEDDED}_1"],
        }
    return out


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    bench: ScaleBench,
    api_series: Sequence[Series],
    delivery: Sequence[Series],
    queueing: dict[str, Any],
    lookups: dict[str, Any],
    took: float,
) -> str:
    lines = [
        f"# Scale-out benchmark, {dt.date.today().isoformat()}",
        "",
        "Written by `python bench/run_scale_bench.py"
        + "".join(f" {x}" for x in args.given)
        + f"` in {took / 60:.1f} min. Medians of {args.runs} runs per configuration; in each"
        " round every configuration ran once, on freshly started processes and a fresh copy of"
        " the registered state, the configurations' order rotating from round to round"
        + (f"; servers, wrk and emulator at niceness {args.nice}" if args.nice else "")
        + f". Campaign statistics (`{harness.STATS_ENV}`): {args.campaign_stats}.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        *(
            f"- users registered ({name}): {r['sessions']:,} (one device each) in {r['seconds']} s"
            for name, r in bench.registration.items()
        ),
        "- waits for test runs and other benchmarks (`pytest|run_stats_bench|run_api_bench`)"
        " before each step: "
        + ", ".join(
            f"{w['before']} {w['waited_s']:.0f} s (load {w['load']})" for w in bench.waited
        ),
        "",
        f"Everything runs on this {info['nproc']}-core machine: pushgate, wrk, the emulators,"
        " PostgreSQL and Redis share the cores, so a second process can only add what is left"
        " idle by the first. The figures are for the ratios, and per process on this machine;"
        " PostgreSQL and Redis are the test suites' local servers (PostgreSQL 15, default"
        " settings: `synchronous_commit = on`, 128 MB shared buffers).",
        "",
    ]
    sums = summary(api_series, delivery)
    if sums:
        lines += [
            "## Result",
            "",
            "| | embedded (SQLite) | PostgreSQL + Redis, 1 process | 2 processes | 2 vs 1"
            " | 1 vs embedded | 2 vs embedded |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for kind, what in (
            ("api", f"API, {args.body} body: requests/s"),
            ("delivery", "delivery: sends/s"),
        ):
            if kind not in sums:
                continue
            m, s = sums[kind]["medians"], sums[kind]
            lines.append(
                f"| {what} | {fmt(m[f'{EMBEDDED}_1'])} | {fmt(m[f'{POSTGRES}_1'])}"
                f" | {fmt(m[f'{POSTGRES}_2'])} | {s['postgres_2_over_1']:.2f}"
                f" | {s['postgres_1_over_embedded']:.2f} | {s['postgres_2_over_embedded']:.2f} |"
            )
        lines.append("")
    medians = lookup_medians(lookups)
    rows = lookup_ratios(args, medians)
    if rows:
        lines += [
            f"Identifier lookups (`pushgate.store.profiles.resolve`), {SMALL:,} against"
            f" {args.profiles:,} profiles, µs per lookup (medians of the runs' p50 and p99);"
            f" goal: the larger database's p50 within {GOAL_LOOKUP_RATIO}x of the smaller's:",
            "",
            f"| database | lookup | p50 {SMALL:,} | p50 {args.profiles:,} | ratio | goal"
            f" | p99 {SMALL:,} | p99 {args.profiles:,} | ratio p99 |",
            "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
        ]
        for r in rows:
            lines.append(
                f"| {r['database']} | {r['lookup']} | {r['small']['p50_us']:.0f}"
                f" | {r['large']['p50_us']:.0f} | {r['ratio_p50']:.2f} | {mark(r['goal_met'])}"
                f" | {r['small']['p99_us']:.0f} | {r['large']['p99_us']:.0f}"
                f" | {r['ratio_p99']:.2f} |"
            )
        lines.append("")
    if api_series:
        lines += [
            "## API: `pushgate serve --role api`, wrk",
            "",
            f"wrk -t1, {args.duration:g} s per run after a {args.warmup:g} s warm-up, the"
            f" {args.body} body of run_api_bench ({bench.registration[EMBEDDED]['sessions']:,}"
            f" registered users). With 2 processes, two wrk processes at once, one per port,"
            f" {harness.parse_args([]).connections // 2} connections each (32 in all, as with one"
            " process); requests/s is their sum, p50 and p99 the worse of the two. No delivery"
            " worker runs: jobs accumulate. Cores: pushgate (all API processes), wrk, PostgreSQL"
            " + Redis (all their processes), others (everything else on the machine).",
            "",
            *runs_table(api_series, API_COLUMNS),
            "",
            *waits_table(api_series),
        ]
    if delivery:
        lines += [
            "## Delivery: `pushgate serve --role worker` to a standalone `pushgate emulate`",
            "",
            f"{args.jobs:,} pushes (the varied seed body, `ttl` raised to {harness.DELIVERY_TTL:,} s)"
            " queued once per backend through `--role api`: "
            + "; ".join(
                f"{name} {q['jobs']:,} in {q['seconds']} s ({q['requests_per_s']:,} requests/s)"
                for name, q in queueing.items()
            )
            + ". Each run restores those jobs (a copy of the data dir; in PostgreSQL the jobs"
            " table from a copy) with a due time no worker claims, starts the workers (no"
            " `--emulate`, PUSHGATE_APNS_URL and so on pointing at one `pushgate emulate` per"
            " backend), waits for /healthz, then makes every job due at once. Each worker looks"
            f" for due jobs at least every {IDLE_POLL} s, so the clock starts"
            f" {IDLE_POLL + POLL:.2f} s later, with every worker sending: sends/s = jobs still"
            f" queued then / time until the queue is empty (looked at every {POLL * 1000:.0f} ms)."
            " 'from due' divides all the jobs by the time from making them due. Every run checks"
            " that every job ended `done`.",
            "",
            *runs_table(delivery, DELIVERY_COLUMNS),
            "",
            *waits_table(delivery),
        ]
    if lookups:
        lines += [
            "## Identifier lookups",
            "",
            "Each database holds one partner with N profiles, each with run_api_bench's three"
            " identifiers (email, phone_number, uuid) and one device, bulk-inserted with"
            " INSERT ... SELECT (generate_series; in SQLite a recursive CTE) into the tables"
            " pushgate made, then ANALYZE. Seconds to insert: "
            + ", ".join(f"{k} {v}" for k, v in lookups["populate_s"].items())
            + f". Each run: 1,000 lookups to warm up, then {args.lookups:,} lookups of one"
            f" identifier of a random existing user and {args.lookups // 5:,} of 20 (20 random"
            " users, one identifier each, the kinds in turn), through"
            " `pushgate.store.profiles.resolve` on one connection in this process (PostgreSQL:"
            " `pushgate.store.postgres.connect`, autocommit; SQLite: `open_sync`); every lookup"
            " must find every user with its device. Each lookup is one statement (one round"
            " trip): the time is PostgreSQL's planning and execution, the round trip, psycopg"
            " and the decoding of the rows (SQLite: all in this process). PostgreSQL's shared"
            " buffers: "
            + ", ".join(f"{k} {v}" for k, v in lookups.get("shared_buffers", {}).items())
            + ".",
            "",
            "| database | tables (MB) | PostgreSQL buffers per 20-identifier lookup: hit"
            " | read | server planning µs | server execution µs |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for db, found in lookups["plans"].items():
            buffers, server = found.get("buffers_per_lookup"), found.get("server_us")
            cells = (
                f"{buffers['hit']:.1f} | {buffers['read']:.1f}"
                f" | {server['Planning Time']:.0f} | {server['Execution Time']:.0f}"
                if buffers and server
                else "- | - | - | -"
            )
            size = f"{found['tables_mb']:,}" + (" (the file)" if db.startswith("sqlite") else "")
            lines.append(f"| {db} profiles | {size} | {cells} |")
        lines += [
            "",
            "Buffers (means) and server times (medians) over 50 random 20-identifier lookups"
            " run under EXPLAIN (ANALYZE, BUFFERS) after the runs (not prepared, so planned each"
            " time; the measured lookups are prepared statements after psycopg's fifth use)."
            " SQLite's page cache is 64 MB per connection (`cache_size`); a larger file is read"
            " from the OS page cache as lookups need its pages.",
            "",
            "| database | run | lookup | p50 µs | p99 µs | mean µs |",
            "| --- | ---: | --- | ---: | ---: | ---: |",
        ]
        for db, runs in lookups["runs"].items():
            for n, run in enumerate(runs, 1):
                for size, v in run.items():
                    lines.append(
                        f"| {db} profiles | {n} | {size} | {v['p50_us']:.0f} | {v['p99_us']:.0f}"
                        f" | {v['mean_us']:.0f} |"
                    )
        lines += ["", "Plans of one 20-identifier lookup, after the runs:", ""]
        for db, found in lookups["plans"].items():
            lines += [f"{db} profiles:", "", "```", *found["plan"], "```", ""]
    for name, prof in bench.profiles.items():
        lines += harness.profile_lines(f"one API process, {name} (py-spy, {args.body} body)", prof)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs of each configuration")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per API run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each API run")
    p.add_argument("--users", type=int, default=10_000, help="users registered for the API")
    p.add_argument("--body", choices=("seed", "varied"), default="seed", help="API body")
    p.add_argument("--jobs", type=int, default=20_000, help="jobs each delivery run settles")
    p.add_argument("--profiles", type=int, default=1_000_000, help="the large lookup database")
    p.add_argument("--lookups", type=int, default=5_000, help="1-identifier lookups per run")
    p.add_argument(
        "--campaign-stats",
        choices=("on", "off"),
        default="on",
        help="PUSHGATE_CAMPAIGN_STATS of every process (off: to see what counting costs)",
    )
    p.add_argument("--skip-api", action="store_true")
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the API runs, one API process of each backend under py-spy (pip install"
        " py-spy); stacks beside the results, summaries in the report",
    )
    p.add_argument("--skip-delivery", action="store_true")
    p.add_argument("--skip-lookup", action="store_true")
    p.add_argument("--skip-sqlite-lookup", action="store_true", help="lookups in PostgreSQL only")
    p.add_argument("--quiet-wait", type=float, default=10.0, help="see run_api_bench.py")
    p.add_argument(
        "--busy-wait",
        type=float,
        default=1500.0,
        help="seconds to wait, at most, before each step for test runs and other benchmarks"
        " (pytest, run_stats_bench, run_api_bench) to finish",
    )
    p.add_argument("--nice", type=int, default=0, help="niceness of servers and wrk (root)")
    p.add_argument(
        "--quick", action="store_true", help="2 runs, 3 s, 100,000 profiles: a smoke run"
    )
    p.add_argument("--rev", default=None, help="serve this commit's src/ (git archive), e.g. HEAD")
    p.add_argument("--postgres", default=POSTGRES_URL, help="PostgreSQL URL (without schema=)")
    p.add_argument("--redis", default=REDIS_URL)
    p.add_argument(
        "--lookup-postgres",
        default=None,
        help="a second PostgreSQL URL (without schema=) for the lookups too, e.g. a server whose"
        " shared_buffers hold the large database (bench/README.md shows how to start one)",
    )
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, logs)")
    p.add_argument("--lock-wait", type=float, default=1800.0)
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup, args.users = 2, 3.0, 1.0, 1000
        args.jobs, args.profiles, args.lookups = 3000, 100_000, 1000
    if not (1 <= args.runs <= 20 and 1 <= args.duration <= 60 and 0 < args.warmup <= 30):
        p.error("runs must be 1..20, duration 1..60 s, warm-up up to 30 s")
    if not (100 <= args.jobs <= 200_000 and SMALL < args.profiles <= 10_000_000):
        p.error(f"jobs must be 100..200000, profiles {SMALL + 1}..10000000")
    if not 100 <= args.lookups <= 100_000:
        p.error("lookups must be 100..100000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.given = list(sys.argv[1:] if argv is None else argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    lock = harness.one_run_at_a_time(
        args.lock_wait
    )  # run_api_bench's lock: one benchmark at a time
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pushgate-scale-bench-"))
    bench = ScaleBench(args, work)
    bench.quiet("start")
    info = harness.machine()
    info["load average at start (1, 5, 15 min)"] = load_average()
    stem = harness.result_stem(
        "scale",
        info,
        args.rev,
        "stats-off" if args.campaign_stats == "off" else "",
        "quick" if args.quick else "",
    )
    bench.log(f"work dir {work}; load average {info['load average at start (1, 5, 15 min)']}")
    api_series: list[Series] = []
    delivery: list[Series] = []
    queueing: dict[str, Any] = {}
    lookups: dict[str, Any] = {}
    try:
        if not (args.skip_api and args.skip_delivery):
            bench.setup()
        else:
            bench.embedded.snapshot_src()
            sys.path.insert(0, str(bench.embedded.src))
        import pushgate

        if not pushgate.__file__ or not pushgate.__file__.startswith(str(bench.embedded.src)):
            raise RuntimeError(f"this process imports another pushgate: {pushgate.__file__}")
        if not args.skip_api:
            api_series = bench.api_phase()
            if args.profile:
                args.out.mkdir(parents=True, exist_ok=True)
                bench.profile_phase(args.out / f"{stem}-profile")
        if not args.skip_delivery:
            delivery, queueing = bench.delivery_phase()
        if not args.skip_lookup:
            lookups = bench.lookup_phase()
    finally:
        bench.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load average at end"] = load_average()
    took = time.monotonic() - started
    text = report(args, info, bench, api_series, delivery, queueing, lookups, took)
    raw = {
        "machine": info,
        "args": {k: str(v) for k, v in vars(args).items()},
        "waits": bench.waited,
        "registration": bench.registration,
        "summary": summary(api_series, delivery),
        "api": {
            s.key: {"title": s.title, "median": s.median(), "runs": s.runs} for s in api_series
        },
        "queueing": queueing,
        "delivery": {
            s.key: {"title": s.title, "median": s.median(), "runs": s.runs} for s in delivery
        },
        "lookups": {
            **lookups,
            "medians": lookup_medians(lookups),
            "ratios": lookup_ratios(args, lookup_medians(lookups)),
        },
        "profiles": bench.profiles,
        "took_s": round(took),
    }
    harness.write_results(args.out, stem, text, raw)
    print(f"\n{text}")
    bench.log(f"wrote {args.out / stem}.md and .json in {took / 60:.1f} min")
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
