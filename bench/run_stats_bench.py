"""What campaign statistics cost the send path: the same run with counting on and off.

The statistics issue's acceptance: statistics cost the send path less than 10% of its
throughput. `PUSHGATE_CAMPAIGN_STATS=off` switches the counting off (docs/statistics.md).
One script, bounded in time, that:

1. registers `--users` users once (run_api_bench's set-up: a partner with emulator
   credentials, one device per user) and starts every pushgate process below from a
   fresh copy of that data dir;
2. scenario A, the API: `pushgate serve --role api` (no delivery worker, so only the
   API's counting) under wrk, with the seed body and with the seed body varied across
   users; each of `--runs` rounds measures counting on and off back to back, the first
   of the two alternating from round to round (on-off, off-on, ...) so that a drift of
   the machine cancels out of the medians;
3. scenario B, delivery: `--jobs` pushes queued through the API (counting on or off as
   the worker will be), then `pushgate serve --role worker` pointed at a standalone
   `pushgate emulate` process (so the emulators do not share the worker's core), timed
   until the queue is empty: settled jobs/s, on and off alternating the same way;
4. prints a Markdown report and writes it to bench/results/stats-<date>-<commit>.md
   (`-dirty` when src/ had uncommitted changes), with the raw figures in a .json beside it.

    . .venv/bin/activate && python bench/run_stats_bench.py --nice -10   # about 12 minutes
    python bench/run_stats_bench.py --quick                               # about 2-3 minutes

It shares run_api_bench's lock, so it never runs at the same time as that script.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import loadgen  # noqa: E402  (bench/ is not a package)
from harness import (  # noqa: E402
    DB_FILE,
    DELIVERY_TTL,
    DRAIN_LIMIT,
    QUEUE_DEPTH,
    STATS_ENV,
    Emulator,
    api_args,
    fmt,
    with_ttl,
)

ARMS = ("on", "off")
GOAL_COST = 0.10
# A run during which other processes used this many cores or more reads low (see
# bench/README.md, run_api_bench's method notes): the quiet-rounds column leaves it out.
QUIET = 0.2
POLL = 0.02  # seconds between looks at the queue
# Share of the queue settled before the drain is timed: the worker starts claiming while
# it starts up, before it answers /healthz, so the clock starts at the first look at the
# queue that finds 10% settled (and divides only what was left by the time it took).
TIMED_FROM = 0.9
# py-spy frames of the counting itself (hour_of is computed whether or not it counts),
# and, for scale, the store's whole unit of work (one transaction per group commit).
COUNTING_FRAMES = {
    "add_counts": "add_counts (pushgate/store/campaign_stats.py",
    "outcome_counts": "outcome_counts (pushgate/stats/funnel.py",
    "settled_counter": "settled_counter (pushgate/stats/funnel.py",
}
STORE_FRAME = "InlineExecutor._flush (pushgate/store/executor.py"


def order(round_: int) -> tuple[str, str]:
    """ABBA: on then off in even rounds, off then on in odd ones."""
    return ARMS if round_ % 2 == 0 else (ARMS[1], ARMS[0])


@dataclass
class Measured:
    """One scenario's runs, per arm; every run has a "rate" (the throughput judged)."""

    key: str
    title: str
    unit: str  # "requests/s" or "jobs/s"
    cpu_unit: str  # what "cpu" per unit of work is, e.g. "µs per request"
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {a: [] for a in ARMS})
    profile: dict[str, Any] = field(default_factory=dict)

    def add(self, arm: str, round_: int, position: int, **figures: Any) -> None:
        self.runs[arm].append({"round": round_ + 1, "first": position == 0, **figures})

    def median(self, arm: str, name: str = "rate") -> float:
        values = [r[name] for r in self.runs[arm] if r.get(name) is not None]
        return statistics.median(values) if values else 0.0

    def cost(self, name: str = "rate") -> float:
        """1 - median(on) / median(off): the share of throughput counting takes."""
        off = self.median("off", name)
        return 1 - self.median("on", name) / off if off else 0.0

    def in_order(self) -> list[tuple[str, dict[str, Any]]]:
        """(arm, run) in the order measured."""
        runs = [(arm, r) for arm in ARMS for r in self.runs[arm]]
        return sorted(runs, key=lambda x: (x[1]["round"], not x[1]["first"]))

    def paired(self, quiet: float | None = None) -> list[float]:
        """on / off of each round (the two runs measured back to back); with `quiet`, only
        of the rounds in which other processes used less than `quiet` cores in both runs."""
        return [
            on["rate"] / off["rate"]
            for on, off in zip(self.runs["on"], self.runs["off"], strict=False)
            if off["rate"] and (quiet is None or max(on["others"], off["others"]) < quiet)
        ]

    def quiet_cost(self) -> str:
        ratios = self.paired(QUIET)
        if not ratios:
            return "no quiet round"
        return f"{(1 - statistics.median(ratios)) * 100:.1f}% ({len(ratios)} of {self.rounds})"

    @property
    def rounds(self) -> int:
        return min(len(self.runs[arm]) for arm in ARMS)


def count(data_dir: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / DB_FILE, timeout=30)) as conn:
        return int(conn.execute(sql).fetchone()[0] or 0)


def counter_sum(data_dir: Path, prefix: str) -> int:
    """Sum of the campaign_stats counters whose name starts with `prefix` (e.g. "accepted:")."""
    return count(data_dir, f"SELECT sum(count) FROM campaign_stats WHERE name LIKE '{prefix}%'")


@contextlib.contextmanager
def spying(pid: int, raw: Path) -> Iterator[None]:
    """py-spy on `pid` (every thread not idle, native frames) while the block runs."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw"]
    cmd += ["--threads", "--native", "--output", str(raw)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def frame_shares(lines: Sequence[str]) -> dict[str, float]:
    """% of samples (all threads) with the counting code on the stack (any of it, then
    each function), and with the store's unit of work on the stack, for scale."""
    total = 0
    hits = dict.fromkeys(["all counting", *COUNTING_FRAMES, "store unit (for scale)"], 0)
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        found = [name for name, frame in COUNTING_FRAMES.items() if frame in stack]
        for name in found:
            hits[name] += int(n)
        hits["all counting"] += int(n) if found else 0
        hits["store unit (for scale)"] += int(n) if STORE_FRAME in stack else 0
    return {k: round(100 * v / total, 2) if total else 0.0 for k, v in hits.items()}


def _frame(name: str) -> str:
    """A frame without its line number (a function's lines add up) or its address."""
    return re.sub(r"^0x[0-9a-f]+ ", "? ", re.sub(r":\d+\)$", ")", name))


def frame_counts(lines: Sequence[str]) -> tuple[int, Counter[str], Counter[str]]:
    """Samples in all, and per function: on the stack (inclusive), and running (self)."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in lines:
        stack, _, n = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("thread", "process"))]
        if not n.isdigit() or not frames:
            continue
        total += int(n)
        own[frames[-1]] += int(n)
        for f in set(frames):
            inclusive[f] += int(n)
    return total, inclusive, own


def compare_profiles(spied: dict[str, dict[str, Any]], top: int = 12) -> dict[str, Any]:
    """Where counting's cost goes: each function's share of the samples times the CPU time
    per unit of work measured over the same run, stats on minus stats off."""
    counted = {arm: frame_counts(spied[arm]["lines"]) for arm in ARMS}
    scale = {arm: spied[arm]["cpu"] / max(1, counted[arm][0]) for arm in ARMS}
    tables = {arm: {"inclusive": counted[arm][1], "self": counted[arm][2]} for arm in ARMS}

    def largest(kind: str, keep: Callable[[str], bool]) -> list[tuple[str, float, float]]:
        on, off = tables["on"][kind], tables["off"][kind]
        rows = [
            (f, on[f] * scale["on"], off[f] * scale["off"]) for f in set(on) | set(off) if keep(f)
        ]
        rows.sort(key=lambda r: r[2] - r[1])
        return [(f, round(a, 2), round(b, 2)) for f, a, b in rows[:top]]

    def ours(f: str) -> bool:  # pushgate's functions, but not the whole process
        return "pushgate/" in f and not f.startswith(("<module> ", "serve "))

    return {
        "counting": frame_shares(spied["on"]["lines"]),
        **{f"{key}_{arm}": spied[arm][key] for key in ("file", "cpu", "rate") for arm in ARMS},
        **{f"samples_{arm}": counted[arm][0] for arm in ARMS},
        "inclusive": largest("inclusive", ours),
        "self": largest("self", lambda f: True),
    }


class StatsBench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        # run_api_bench's Bench measures one run per server start here (runs=1): each run
        # gets a freshly started server on a fresh copy of the data dir.
        self.bench = harness.Bench(api_args(args), work)
        self.log = self.bench.log
        self.template_counts: dict[str, int] = {}
        self.queued: dict[str, Path] = {}
        self.profiles: dict[str, dict[str, dict[str, Any]]] = {}

    def env(self, arm: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**self.bench.env, STATS_ENV: arm, **(extra or {})}

    def server(self, data_dir: Path, role: str, arm: str, **extra: str) -> harness.Server:
        server = self.bench.pushgate_server(data_dir, role)
        server.env = self.env(arm, extra)
        if role == "worker":  # delivers to the standalone emulators, not in-process ones
            server.cmd = [c for c in server.cmd if c != "--emulate"]
        return server

    def copy_of(self, source: Path, name: str) -> Path:
        target = self.work / f"data-{name}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        return target

    # ------------------------------------------------------------ scenario A

    def api_scenario(self, measured: Measured, bodies_file: Path) -> None:
        scenarios = {
            arm: harness.Scenario(f"{measured.key}-{arm}", measured.title, "pushgate", "closed", "")
            for arm in ARMS
        }
        for r in range(self.args.runs):
            for position, arm in enumerate(order(r)):
                self.log(f"{measured.title}, round {r + 1}/{self.args.runs}, stats {arm}")
                data = self.bench.fresh_copy(f"{measured.key}-{arm}")
                with harness.serving(self.server(data, "api", arm)) as server:
                    self.bench.measure(scenarios[arm], server, bodies_file)
                run = scenarios[arm].runs[-1]
                measured.add(
                    arm,
                    r,
                    position,
                    rate=run.rps,
                    p99_ms=run.p99_ms,
                    cpu=run.server_cpu / run.rps * 1e6 if run.rps else None,
                    server_cores=run.server_cpu,
                    others=run.other_cpu,
                    errors=run.errors,
                )
        for arm in ARMS if self.args.profile else ():
            data = self.bench.fresh_copy(f"{measured.key}-profile")
            with harness.serving(self.server(data, "api", arm)) as server:
                self.bench.wrk(server.port, harness.PUSH_PATH, bodies_file, self.args.warmup)
                with self.profiling(measured, arm, server.pid) as spied:
                    cpu0 = sum(harness.cpu_seconds(server.pid).values())
                    load = self.bench.wrk(
                        server.port, harness.PUSH_PATH, bodies_file, self.args.duration
                    )
                    cpu = sum(harness.cpu_seconds(server.pid).values()) - cpu0
                    spied["cpu"] = cpu / load["requests"] * 1e6  # µs per request
                    spied["rate"] = load["requests"] / (load["duration_us"] / 1e6)

    @contextlib.contextmanager
    def profiling(self, measured: Measured, arm: str, pid: int) -> Iterator[dict[str, Any]]:
        """py-spy on `pid` while the block runs, which sets "cpu" (CPU time of the process
        per unit of work) and "rate" in the dict it gets; once both arms have a profile,
        they are compared into measured.profile."""
        raw = self.work / f"profile-{measured.key}-{arm}.txt"
        spied: dict[str, Any] = {}
        with spying(pid, raw):
            yield spied
        if not raw.exists():
            self.log("py-spy wrote no profile")
            return
        out = self.args.out / f"{self.stem}-profile-{measured.key}-{arm}.txt.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(gzip.compress(raw.read_bytes()))
        spied |= {"file": out.name, "lines": raw.read_text().splitlines()}
        self.profiles.setdefault(measured.key, {})[arm] = spied
        if len(self.profiles[measured.key]) == len(ARMS):
            measured.profile = compare_profiles(self.profiles[measured.key])
            self.log(f"  profile, stats on: {measured.profile['counting']}")

    # ------------------------------------------------------------ scenario B

    def queue_jobs(self, arm: str, bodies: Sequence[bytes]) -> dict[str, Any]:
        """A data dir holding len(bodies) queued jobs, sent through `--role api` with
        counting `arm`; each drain starts from a copy of it."""
        data = self.bench.fresh_copy(f"queued-{arm}")
        with harness.serving(self.server(data, "api", arm)) as server:
            requests = [loadgen.build_request(harness.PUSH_PATH, b, server.port) for b in bodies]
            started = time.perf_counter()
            result, _ = loadgen.run(loadgen.closed_loop(server.port, requests, 32))
            took = time.perf_counter() - started
        if result["statuses"] != {"200": len(bodies)}:
            raise RuntimeError(f"queueing with stats {arm}: {result['statuses']}")
        jobs = count(data, QUEUE_DEPTH)
        counted = counter_sum(data, "queued:") - self.template_counts["queued:"]
        self.log(
            f"queued {jobs:,} jobs with stats {arm} in {took:.1f} s"
            f" ({len(bodies) / took:,.0f} requests/s); 'queued' counters added: {counted:,}"
        )
        if jobs != len(bodies) or counted != (jobs if arm == "on" else 0):
            raise RuntimeError(f"stats {arm}: {jobs} jobs queued, {counted} counted")
        self.queued[arm] = data
        return {"jobs": jobs, "seconds": round(took, 2), "queued_counted": counted}

    def drain(self, arm: str, emulator: Emulator, provider: dict[str, str]) -> dict[str, Any]:
        """Start a worker on a copy of the queued data dir; time it until the queue is empty."""
        data = self.copy_of(self.queued[arm], "worker")
        jobs = count(data, QUEUE_DEPTH)
        emulator.control("DELETE", "/deliveries")
        background = harness.wait_quiet(self.args.quiet_wait, emulator.pid)
        server = self.server(data, "worker", arm, **provider)
        spawned = time.perf_counter()
        with harness.serving(server), contextlib.closing(sqlite3.connect(data / DB_FILE)) as db:
            ready = time.perf_counter() - spawned
            timed = self.time_drain(db, jobs, server.pid, emulator.pid)
            timed["from_spawn_s"] = round(time.perf_counter() - spawned, 2)
            metrics = harness.pushgate_metrics(server.port)
        delivered = {k: int(v) for k, v in metrics.items() if k.startswith("delivery_")}
        accepted = counter_sum(data, "accepted:") - self.template_counts["accepted:"]
        if delivered.get("delivery_done") != jobs:
            self.log(f"  not every job was delivered: {delivered}")
        return {
            **timed,
            "jobs": jobs,
            "ready_s": round(ready, 2),
            "background_before": background,
            "delivery": delivered,
            "delivered": delivered.get("delivery_done", 0),
            "accepted_counted": accepted,
        }

    def time_drain(self, db: sqlite3.Connection, jobs: int, pid: int, emu: int) -> dict[str, Any]:
        deadline = time.monotonic() + DRAIN_LIMIT
        start: tuple[float, int, dict[str, float], float, float, float] | None = None
        while time.monotonic() < deadline:
            depth = int(db.execute(QUEUE_DEPTH).fetchone()[0])
            now = time.perf_counter()
            if start is None and depth <= TIMED_FROM * jobs:
                start = (
                    now,
                    depth,
                    harness.cpu_seconds(pid),
                    sum(harness.cpu_seconds(emu).values()),
                    harness.machine_busy(),
                    time.process_time(),
                )
            if depth == 0:
                break
            time.sleep(POLL)
        else:
            raise RuntimeError(f"the worker did not empty its queue in {DRAIN_LIMIT:.0f} s")
        assert start is not None
        t0, left, cpu0, emu0, busy0, own0 = start
        wall = now - t0
        cpu1 = harness.cpu_seconds(pid)
        worker = (cpu1["main"] - cpu0["main"] + cpu1["other"] - cpu0["other"]) / wall
        emulator = (sum(harness.cpu_seconds(emu).values()) - emu0) / wall
        own = (time.process_time() - own0) / wall
        others = max(0.0, (harness.machine_busy() - busy0) / wall - worker - emulator - own)
        rate = left / wall
        self.log(
            f"  settled {left:,} jobs in {wall:.2f} s: {rate:,.0f} jobs/s; worker CPU"
            f" {worker:.2f} (loop {(cpu1['main'] - cpu0['main']) / wall:.2f}), emulator"
            f" {emulator:.2f}, other processes {others:.2f}"
        )
        return {
            "rate": rate,
            "timed_jobs": left,
            "timed_s": round(wall, 3),
            "cpu": worker * wall / left * 1000,  # worker CPU ms per job
            "worker_cores": worker,
            "worker_main_cores": (cpu1["main"] - cpu0["main"]) / wall,
            "emulator_cores": emulator,
            "others": others,
        }

    def delivery_scenario(self, measured: Measured, bodies: Sequence[bytes]) -> dict[str, Any]:
        queueing = {arm: self.queue_jobs(arm, bodies) for arm in ARMS}
        emu_data = self.bench.fresh_copy("emulator")
        cmd = [self.bench.python, "-m", "pushgate.cli", "emulate", "--data-dir", str(emu_data)]
        port = harness.free_port()
        emulator = Emulator(
            "pushgate emulate",
            harness.pinned([*cmd, "--port", str(port)], None, self.args.nice),
            port,
            self.work / "emulate.log",
            self.args.nice,
            self.bench.env,
        )
        with harness.serving(emulator):
            provider = emulator.provider_env(emu_data)
            for r in range(self.args.runs):
                for position, arm in enumerate(order(r)):
                    self.log(f"{measured.title}, round {r + 1}/{self.args.runs}, stats {arm}")
                    measured.add(arm, r, position, **self.drain(arm, emulator, provider))
            for arm in ARMS if self.args.profile else ():
                data = self.copy_of(self.queued[arm], "worker")
                jobs = count(data, QUEUE_DEPTH)
                server = self.server(data, "worker", arm, **provider)
                with (
                    harness.serving(server),
                    contextlib.closing(sqlite3.connect(data / DB_FILE)) as db,
                    self.profiling(measured, arm, server.pid) as spied,
                ):
                    timed = self.time_drain(db, jobs, server.pid, emulator.pid)
                    spied |= {"cpu": timed["cpu"] * 1000, "rate": timed["rate"]}  # µs per job
        return queueing

    # ------------------------------------------------------------ all

    def run(self) -> tuple[list[Measured], dict[str, Any]]:
        bodies = self.bench.setup()
        template = self.bench.template
        self.template_counts = {p: counter_sum(template, p) for p in ("queued:", "accepted:")}
        files = {}
        for name in ("seed", "varied"):
            files[name] = self.work / f"{name}.bodies"
            loadgen.write_bodies(files[name], getattr(bodies, name))
        a_seed = Measured("api_seed", "A: --role api, seed body", "requests/s", "µs per request")
        a_varied = Measured(
            "api_varied",
            "A: --role api, seed body varied across users",
            "requests/s",
            "µs per request",
        )
        b = Measured(
            "delivery",
            "B: --role worker to a standalone `pushgate emulate`",
            "jobs/s",
            "ms per job",
        )
        self.api_scenario(a_seed, files["seed"])
        self.api_scenario(a_varied, files["varied"])
        unique = [with_ttl(body, DELIVERY_TTL) for body in bodies.varied]
        jobs = [unique[i % len(unique)] for i in range(self.args.jobs)]
        queueing = self.delivery_scenario(b, jobs)
        return [a_seed, a_varied, b], queueing

    @property
    def stem(self) -> str:
        return str(self.args.stem)


# ---------------------------------------------------------------- report


# The per-run tables: (header, key of the run's figures, format; "n" = integer with commas)
A_COLUMNS = [
    ("requests/s", "rate", "n"),
    ("p99 ms", "p99_ms", ".2f"),
    ("server CPU µs/request", "cpu", ".1f"),
    ("server cores", "server_cores", ".2f"),
    ("others (cores)", "others", ".2f"),
    ("errors", "errors", "n"),
]
B_COLUMNS = [
    ("jobs/s", "rate", "n"),
    ("timed jobs", "timed_jobs", "n"),
    ("timed s", "timed_s", ".2f"),
    ("worker CPU ms/job", "cpu", ".3f"),
    ("worker cores", "worker_cores", ".2f"),
    ("(its loop thread)", "worker_main_cores", ".2f"),
    ("emulator cores", "emulator_cores", ".2f"),
    ("others (cores)", "others", ".2f"),
    ("delivered", "delivered", "n"),
    ("`accepted` counted", "accepted_counted", "n"),
]


def runs_table(m: Measured, columns: Sequence[tuple[str, str, str]]) -> list[str]:
    """Every run in the order measured, then each arm's medians."""

    def cell(x: float | None, how: str) -> str:
        return "" if x is None else f"{x:,.0f}" if how == "n" else format(x, how)

    lines = [
        "| round | stats | first? | " + " | ".join(c[0] for c in columns) + " |",
        "| ---: | --- | --- |" + " ---: |" * len(columns),
    ]
    for arm, r in m.in_order():
        cells = [cell(r.get(key), how) for _, key, how in columns]
        first = "yes" if r["first"] else "no"
        lines.append(f"| {r['round']} | {arm} | {first} | " + " | ".join(cells) + " |")
    for arm in ARMS:
        cells = [cell(m.median(arm, key), how) for _, key, how in columns]
        lines.append(f"| median | {arm} | | " + " | ".join(cells) + " |")
    return lines


def profile_section(m: Measured) -> list[str]:
    p = m.profile
    per = f"µs per {m.unit.split('s/')[0]}"  # "µs per request", "µs per job"
    counting = p["counting"]
    lines = [
        f"## Profile of {m.title}: stats on against off (py-spy)",
        "",
        "One more run of each arm, under py-spy (100 Hz, threads that are not idle, native"
        f" frames): stats on {p['samples_on']:,} samples at {fmt(p['rate_on'])} {m.unit},"
        f" {p['cpu_on']:.3g} {per} of CPU; stats off {p['samples_off']:,} samples at"
        f" {fmt(p['rate_off'])} {m.unit}, {p['cpu_off']:.3g} {per} (py-spy pauses the"
        f" process to sample, so both are slower than above). Collapsed stacks:"
        f" `{p['file_on']}`, `{p['file_off']}`.",
        "",
        f"Samples of the stats-on run with the counting code on the stack: {counting['all counting']}%"
        f" ({counting['all counting'] / 100 * p['cpu_on']:.3g} {per}), of which "
        + ", ".join(f"`{k}` {v}%" for k, v in counting.items() if k in COUNTING_FRAMES)
        + f"; the store's unit of work, for scale: {counting['store unit (for scale)']}%.",
        "",
        f"Each function's share of the samples times the process's CPU time ({per}),"
        " the largest increases from off to on first. A function's sample count is uncertain"
        " by about its square root, so differences of a few percent of a function's time"
        " are noise.",
        "",
    ]
    for kind, title in (("inclusive", "pushgate function (inclusive)"), ("self", "self")):
        lines += [f"| {title} | on | off | on - off |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| `{f}` | {a:.2f} | {b:.2f} | {a - b:+.2f} |" for f, a, b in p[kind]]
        lines.append("")
    return lines


def verdict(cost: float) -> str:
    return "met" if cost < GOAL_COST else "**not met**"


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    measured: Sequence[Measured],
    queueing: dict[str, Any],
    registration: dict[str, Any],
    took: float,
) -> str:
    lines = [
        f"# What campaign statistics cost the send path, {dt.date.today().isoformat()}",
        "",
        "Written by `python bench/run_stats_bench.py"
        + "".join(f" {x}" for x in args.given)
        + f"` in {took / 60:.1f} min. Each arm (`{STATS_ENV}=on`, `=off`) was measured"
        f" {args.runs} times; in each round the two ran back to back, the first of the two"
        " alternating from round to round (on-off, off-on, ...), every run on a freshly"
        " started server from a fresh copy of the registered data dir"
        + (f", at niceness {args.nice}" if args.nice else "")
        + ".",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        f"- users registered: {registration['sessions']:,} (one device each)",
        "",
        "## Result",
        "",
        "Goal: statistics cost the send path less than 10% of its throughput, where the cost"
        " is 1 - median(on) / median(off).",
        "",
        "| scenario | stats on (median) | stats off (median) | cost | goal (< 10%)"
        " | on/off per round | cost, quiet rounds | CPU on | CPU off |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for m in measured:
        cost = m.cost()
        lines.append(
            f"| {m.title} | {fmt(m.median('on'))} {m.unit} | {fmt(m.median('off'))} {m.unit}"
            f" | {cost * 100:.1f}% | {verdict(cost)}"
            f" | {', '.join(f'{x:.3f}' for x in m.paired())} | {m.quiet_cost()}"
            f" | {m.median('on', 'cpu'):.3g} {m.cpu_unit} | {m.median('off', 'cpu'):.3g} |"
        )
    missed = [m.title for m in measured if m.cost() >= GOAL_COST]
    lines += [
        "",
        "Goal: " + (f"**not met** in {'; '.join(missed)}." if missed else "met in every scenario."),
        "",
        "'on/off per round' divides the two runs measured back to back in each round."
        f" 'cost, quiet rounds' is 1 - the median of those ratios over the rounds in which"
        f" other processes used less than {QUIET:g} cores during both runs (column 'others'"
        " below; such runs read low), for information: the goal is judged on all runs."
        " 'CPU' is the median CPU time of the pushgate process (all its threads; in B the"
        " worker, not the emulators) per unit of work.",
        "",
        "What the switch covers: with counting on, each push request adds one additive"
        " upsert per counter it touches (`requested`, `queued:<platform>`, `excluded:<reason>`)"
        " into `campaign_stats`, in the request's transaction (`send_pushes`,"
        " `funnel.outcome_counts`), and each settled job one more (`record_settled`:"
        " `accepted:`, `failed:`, `expired:`). Not switched off, in both arms: the"
        " `campaigns` row (`INSERT OR IGNORE`) and the `campaign_variants` upsert per request,"
        " and the `inbox` insert per accepted job: they are Message Center data, not"
        " statistics, so their cost is in both arms and not in the figures above.",
        "",
        "## Scenario A: the API (`pushgate serve --role api`, wrk)",
        "",
        f"wrk -t1 -c32, {args.duration:g} s per run after a {args.warmup:g} s warm-up; no"
        " delivery worker (the in-process emulators idle), so jobs accumulate and only the"
        " API counts.",
        "",
    ]
    for m in measured:
        if m.unit == "requests/s":
            lines += [f"{m.title}:", "", *runs_table(m, A_COLUMNS), ""]
    lines += [
        "## Scenario B: delivery (`pushgate serve --role worker`, standalone `pushgate emulate`)",
        "",
        f"{args.jobs:,} pushes (the seed body varied across users, `ttl` raised to"
        f" {DELIVERY_TTL:,} s so that nothing expires while queued) were queued once per arm"
        " through `--role api` with counting on or off as the worker would be:",
        "",
        *(
            f"- stats {arm}: {q['jobs']:,} jobs queued in {q['seconds']} s (bench/loadgen.py,"
            f" 32 connections); `queued` counters added: {q['queued_counted']:,}"
            for arm, q in queueing.items()
        ),
        "",
        "Each run copies that data dir, starts `pushgate serve --role worker` (no `--emulate`)"
        " pointed at one standalone `pushgate emulate` process (PUSHGATE_APNS_URL and so on, as"
        " tests/e2e/conftest.py's `serve_against`), and reads the queue depth from the SQLite"
        f" file every {POLL * 1000:.0f} ms until it is 0. The worker claims jobs while it starts,"
        f" before it answers /healthz, so the clock starts at the first look that finds at"
        f" least {100 - TIMED_FROM * 100:.0f}% settled: jobs/s = jobs left then / time until"
        " the queue was empty.",
        "",
    ]
    for m in measured:
        if m.unit == "jobs/s":
            lines += [*runs_table(m, B_COLUMNS), ""]
    for m in measured:
        if m.profile:
            lines += profile_section(m)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="rounds (each: stats on and off)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per API run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each API run")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--jobs", type=int, default=30_000, help="jobs each delivery run settles")
    p.add_argument("--quiet-wait", type=float, default=10.0, help="see run_api_bench.py")
    p.add_argument(
        "--nice", type=int, default=0, help="niceness of servers and wrk, e.g. -10 (root)"
    )
    p.add_argument(
        "--profile", action="store_true", help="also a py-spy profile of each scenario, stats on"
    )
    p.add_argument("--quick", action="store_true", help="2 rounds, 3 s runs, 1,000 users")
    p.add_argument("--rev", default=None, help="serve this commit's src/ (git archive), e.g. HEAD")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, logs)")
    p.add_argument("--lock-wait", type=float, default=1800.0)
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup, args.users, args.jobs = 2, 3.0, 1.0, 1000, 3000
    if not (1 <= args.runs <= 20 and 1 <= args.duration <= 60 and 0 < args.warmup <= 30):
        p.error("runs must be 1..20, duration 1..60 s, warm-up up to 30 s")
    if not (100 <= args.jobs <= 200_000):
        p.error("jobs must be 100..200000")
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
    load = Path("/proc/loadavg").read_text().split()[:3]
    info = harness.machine()
    info["load average at start (1, 5, 15 min)"] = " ".join(load)
    args.stem = harness.result_stem("stats", info, args.rev, "quick" if args.quick else "")
    work = Path(tempfile.mkdtemp(prefix="pushgate-stats-bench-"))
    bench = StatsBench(args, work)
    bench.log(f"work dir {work}; load average {' '.join(load)}")
    try:
        measured, queueing = bench.run()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    took = time.monotonic() - started
    text = report(args, info, measured, queueing, bench.bench.registration, took)
    raw = {
        "machine": info,
        "args": {k: str(v) for k, v in vars(args).items()},
        "queueing": queueing,
        "scenarios": {
            m.key: {
                "title": m.title,
                "unit": m.unit,
                "median_on": m.median("on"),
                "median_off": m.median("off"),
                "cost": m.cost(),
                "goal_met": m.cost() < GOAL_COST,
                "paired_on_over_off": m.paired(),
                "quiet_rounds_cost": m.quiet_cost(),
                "runs": m.runs,
                "profile": m.profile,
            }
            for m in measured
        },
    }
    harness.write_results(args.out, args.stem, text, raw)
    print(f"\n{text}")
    bench.log(f"wrote {args.out / args.stem}.md and .json")
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
