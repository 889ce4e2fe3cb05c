"""Soak: pushgate as a user runs it, at a constant share of its measured peak, for minutes.

The hardening issue's acceptance: a run of at least 10 minutes at 70% of the measured peak
shows flat p99 latency and flat memory. One script, bounded in time, that:

1. registers `--users` users in a fresh data dir (run_api_bench's set-up, imported: partner,
   SDK sessions, the bodies, the check that each body really sends);
2. measures the peak: `pushgate serve --emulate` (role all: the API, the delivery worker and
   the in-process emulators, the embedded default) under wrk for `--peak-duration` s after a
   `--warmup`, on its own copy of the data dir; peak = requests/s (`--peak N` skips this);
3. soaks a freshly started server on another fresh copy: open loop (bench/loadgen.py, a
   constant `--load` x peak requests/s, latency from when each request was due) for
   `--duration` s, and every `--window` s records requests sent and answered, errors by
   status, the window's p50/p99/p99.9, the server's RSS and CPU (every process of its process
   group, from /proc), the queue depth and jobs delivered (its /metrics), the data dir's size;
4. judges: p99 is flat when the median window p99 of the last third is within
   P99_RATIO_LIMIT x that of the first third (the first window, a warm-up, left out), memory
   when RSS grows by at most RSS_GROWTH_LIMIT from the end of the first third to the end;
5. writes bench/results/soak-<date>-<commit>.md and .json.

    . .venv/bin/activate && python bench/run_soak.py --rev HEAD   # about 12 min, plus waits
    python bench/run_soak.py --duration 60 --window 10             # a smoke run, 2 min

It first waits until no test run or other benchmark runs (`pgrep -f BUSY_PATTERN` finds nothing
for `--quiet-for` s in a row), then takes run_api_bench's lock (one benchmark at a time).
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import loadgen  # noqa: E402  (bench/ is not a package)

BUSY_PATTERN = "pytest|run_scale_bench|run_api_bench|run_stats_bench"
P99_RATIO_LIMIT = 1.5  # last third's median window p99 / first third's
RSS_GROWTH_LIMIT = 0.10  # RSS at the end / RSS at the end of the first third, minus 1
WARMUP_WINDOWS = 1  # windows left out of the verdict
SATURATED_CORES = 0.95  # pushgate is one event loop: a core is all it can use
MIB = 1024 * 1024


# ---------------------------------------------------------------- the load generator


def generate(
    port: int, bodies: Path, rate: float, duration: float, window: float, connections: int
) -> None:
    """The open loop, in its own process: one JSON line per window on stdout.

    loadgen.open_loop sends at the constant rate; a task swaps the pool's Stats at each window
    boundary, so a request counts in the window in which it was answered, with its latency
    from when it was due. The last window is open_loop's own summary: it runs to the end of
    the drain, and requests unanswered then count in it as timeouts."""
    requests = [
        loadgen.build_request(harness.PUSH_PATH, b, port) for b in loadgen.read_bodies(bodies)
    ]
    windows = round(duration / window)
    tasks: list[asyncio.Task[None]] = []
    holder: dict[str, Any] = {}
    emitted = {"sent": 0}

    def emit(k: int, summary: dict[str, Any], sent: int, pool: Any, stats: Any) -> None:
        emitted["sent"] += sent
        record = {**summary, "window": k, "sent": sent, "in_flight": pool.outstanding}
        record["connect_errors"] = stats.connect_errors
        record["connections_open"] = pool.open
        print(json.dumps(record), flush=True)

    async def boundaries(pool: Any, start: float) -> None:
        outstanding = 0
        for k in range(1, windows):  # the last window is open_loop's result
            await asyncio.sleep(max(0.0, start + k * window - time.perf_counter()))
            stats, pool.stats = pool.stats, loadgen.Stats()
            summary = stats.summary(window)
            sent = summary["answered"] + stats.dropped + pool.outstanding - outstanding
            outstanding = pool.outstanding
            emit(k, summary, sent, pool, stats)

    def on_start(pool: Any, start: float) -> None:
        holder["pool"] = pool
        tasks.append(asyncio.get_running_loop().create_task(boundaries(pool, start)))

    async def run() -> None:
        result = await loadgen.open_loop(
            port, requests, rate, duration, connections, on_start=on_start
        )
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        last = result["elapsed_s"] - (windows - 1) * window
        result["rps"] = round(result["answered"] / window, 1)
        result["elapsed_s"] = round(last, 3)  # the last window and the drain after it
        pool = holder["pool"]
        emit(windows, result, result["sent"] - emitted["sent"], pool, pool.stats)

    loadgen.run(run())


# ---------------------------------------------------------------- the machine and the server


def busy_processes() -> list[str]:
    """What `pgrep -f BUSY_PATTERN` finds: test runs and other benchmarks."""
    out = subprocess.run(
        ["pgrep", "-af", BUSY_PATTERN], capture_output=True, text=True, timeout=10, check=False
    )
    mine = str(os.getpid())
    return [line[:160] for line in out.stdout.splitlines() if line.split(" ", 1)[0] != mine]


def wait_for_quiet(
    quiet_for: float, poll: float, limit: float, log: Callable[[str], None]
) -> dict[str, Any]:
    """Poll every `poll` s (at most `limit` s) until `busy_processes()` has found nothing for
    `quiet_for` s in a row."""
    started = time.monotonic()
    quiet_since: float | None = None
    seen: list[str] = []
    while True:
        now = time.monotonic()
        found = busy_processes()
        if found:
            if quiet_since is not None or not seen:
                log(f"waiting: {len(found)} test/benchmark processes, e.g. {found[0]}")
            quiet_since = None
            seen = found
        elif quiet_since is None:
            quiet_since = now
        if quiet_since is not None and now - quiet_since >= quiet_for:
            return {"waited_s": round(now - started), "quiet": True, "last_busy": seen[:3]}
        if now - started >= limit:
            log(f"the machine did not get quiet in {limit:.0f} s; going on")
            return {"waited_s": round(now - started), "quiet": False, "last_busy": found[:3]}
        time.sleep(poll)


def process_group(pgid: int) -> list[int]:
    """Every process in process group `pgid` (the server runs in a session of its own)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    pids.append(int(proc.name))
    return pids


def status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes on disk under `path` (allocated blocks), and of its SQLite write-ahead logs."""
    total = wal = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                used = os.stat(os.path.join(root, name)).st_blocks * 512
                total += used
                wal += used if name.endswith("-wal") else 0
    return total, wal


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Sampler:
    """The server's process group, the load generator and the machine, at one moment."""

    def __init__(self, server: harness.Server, data_dir: Path, generator: int) -> None:
        self.server = server
        self.data_dir = data_dir
        self.generator = generator

    def sample(self) -> dict[str, Any]:
        pids = process_group(self.server.pid)
        disk, wal = disk_usage(self.data_dir)
        return {
            "at": time.monotonic(),
            "pids": len(pids),
            "rss_kb": sum(status_kb(p, "VmRSS") for p in pids),
            "server_cpu_s": sum(sum(harness.cpu_seconds(p).values()) for p in pids),
            "generator_cpu_s": sum(harness.cpu_seconds(self.generator).values()),
            "own_cpu_s": own_cpu(),
            "machine_cpu_s": harness.machine_busy(),
            "metrics": harness.pushgate_metrics(self.server.port),
            "disk_bytes": disk,
            "wal_bytes": wal,
        }


def window_row(
    record: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    emulator_log: int | None,
) -> dict[str, Any]:
    """One window: the load generator's record and what changed on the server meanwhile."""
    wall = max(1e-9, after["at"] - before["at"])
    server = (after["server_cpu_s"] - before["server_cpu_s"]) / wall
    generator = (after["generator_cpu_s"] - before["generator_cpu_s"]) / wall
    own = (after["own_cpu_s"] - before["own_cpu_s"]) / wall
    machine = (after["machine_cpu_s"] - before["machine_cpu_s"]) / wall
    m0, m1 = before["metrics"], after["metrics"]

    def delta(name: str) -> float | None:
        # Outcome counters appear once counted: 0 when the server counts deliveries at all.
        if name not in m1 and "delivery_done" not in m1:
            return None
        return m1.get(name, 0.0) - m0.get(name, 0.0)

    errors = {k: v for k, v in record["statuses"].items() if k != "200"}
    for name in ("connect_errors", "timeouts"):
        if record.get(name):
            errors[name] = record[name]
    dropped = record["errors"] - record.get("connect_errors", 0) - record["timeouts"]
    if dropped:
        errors["dropped"] = dropped
    return {
        "window": record["window"],
        "sent": record["sent"],
        "answered": record["answered"],
        "answered_rps": record["rps"],
        "errors": errors,
        "in_flight_end": record["in_flight"],
        "p50_ms": record["p50_ms"],
        "p99_ms": record["p99_ms"],
        "p999_ms": record["p999_ms"],
        "max_ms": record["max_ms"],
        "rss_mib": round(after["rss_kb"] / 1024, 1),
        "processes": after["pids"],
        "server_cores": round(server, 3),
        "generator_cores": round(generator, 3),
        "other_cores": round(max(0.0, machine - server - generator - own), 3),
        "queue_depth": m1.get("queue_depth"),
        "delivered": delta("delivery_done"),
        "expired": delta("delivery_expired"),
        "delivered_total": m1.get("delivery_done"),
        "emulator_log": (
            min(m1["delivery_done"], emulator_log)
            if "delivery_done" in m1 and emulator_log
            else None
        ),
        "data_dir_mib": round(after["disk_bytes"] / MIB, 1),
        "wal_mib": round(after["wal_bytes"] / MIB, 1),
        "busy_processes": len(busy_processes()),
    }


# ---------------------------------------------------------------- the run


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.bench = harness.Bench(args, work)
        self.log = self.bench.log
        self.peak: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []
        self.after: dict[str, Any] = {}
        self.first_sample: dict[str, Any] = {}
        self.emulator_log: int | None = None

    def emulator_log_size(self) -> int | None:
        """How many deliveries the served emulators keep in memory (for their control route's
        GET /deliveries), read from the served source; None if it has no such bound."""
        out = subprocess.run(
            [
                self.bench.python,
                "-c",
                "from pushgate.emulators import state as s; print(s.DEFAULT_MAX_DELIVERIES)",
            ],
            env=self.bench.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return int(out.stdout) if out.returncode == 0 and out.stdout.strip().isdigit() else None

    def measure_peak(self, bodies: Path) -> float:
        """Closed loop (wrk) against a freshly started server on a fresh copy of the data."""
        a = self.args
        server = self.bench.pushgate_server(self.bench.fresh_copy("peak"), "all")
        with harness.serving(server):
            self.bench.wrk(server.port, harness.PUSH_PATH, bodies, a.warmup)
            harness.settle(server.pid)
            others = harness.wait_quiet(a.quiet_wait, server.pid)
            cpu0, t0 = harness.cpu_seconds(server.pid), time.perf_counter()
            raw = self.bench.wrk(server.port, harness.PUSH_PATH, bodies, a.peak_duration)
            wall = time.perf_counter() - t0
            cpu1 = harness.cpu_seconds(server.pid)
            metrics = harness.pushgate_metrics(server.port)
        rps = raw["requests"] / (raw["duration_us"] / 1e6)
        failures = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        self.peak = {
            "rps": round(rps, 1),
            "p50_ms": raw["p50_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "errors": sum(raw[k] for k in failures),
            "server_cores": round((sum(cpu1.values()) - sum(cpu0.values())) / wall, 2),
            "others_before": others,
            "metrics_at_end": metrics,
            "wrk": raw,
        }
        self.log(
            f"peak: {rps:,.0f} requests/s (p50 {self.peak['p50_ms']:.2f} ms,"
            f" p99 {self.peak['p99_ms']:.2f} ms, errors {self.peak['errors']})"
        )
        return rps

    def soak(self, bodies: Path, rate: float) -> None:
        a = self.args
        data_dir = self.bench.fresh_copy("soak")
        self.emulator_log = self.emulator_log_size()
        server = self.bench.pushgate_server(data_dir, "all")
        with harness.serving(server):
            others = harness.wait_quiet(a.quiet_wait, server.pid)
            self.log(
                f"soak: {rate:,.0f} requests/s for {a.duration:g} s, windows of {a.window:g} s"
                f" (other processes used {others} cores just before)"
            )
            cmd = [sys.executable, str(Path(__file__).resolve()), "generate"]
            cmd += [str(server.port), str(bodies), str(rate), str(a.duration), str(a.window)]
            cmd += [str(a.connections)]
            proc = subprocess.Popen(
                harness.pinned(cmd, None, a.nice),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            harness.renice_group(proc.pid, a.nice)
            # A watchdog: the generator stops by itself, but never let a hang hold the machine.
            watchdog = threading.Timer(a.duration + 120, proc.kill)
            watchdog.start()
            sampler = Sampler(server, data_dir, proc.pid)
            before = self.first_sample = sampler.sample()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if not line.startswith("{"):
                        continue
                    after = sampler.sample()
                    row = window_row(json.loads(line), before, after, self.emulator_log)
                    before = after
                    self.rows.append(row)
                    self.log(
                        f"  window {row['window']}: {row['answered']:,} answered"
                        f" p50 {row['p50_ms']:.2f} p99 {row['p99_ms']:.2f}"
                        f" p99.9 {row['p999_ms']:.2f} ms, errors {row['errors'] or 0},"
                        f" RSS {row['rss_mib']:.1f} MiB, server {row['server_cores']:.2f} cores,"
                        f" queue {row['queue_depth']}, delivered {row['delivered']},"
                        f" data dir {row['data_dir_mib']:.1f} MiB,"
                        f" others {row['other_cores']:.2f} cores"
                    )
                proc.wait(timeout=60)
            finally:
                watchdog.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if proc.returncode != 0:
                raise RuntimeError(f"load generator failed: {proc.stderr.read()[-2000:]}")
            # After the load: how long the worker takes to empty what is left queued.
            t0 = time.monotonic()
            depth = before["metrics"].get("queue_depth")
            while depth and time.monotonic() - t0 < a.drain_wait:
                time.sleep(1)
                depth = harness.pushgate_metrics(server.port).get("queue_depth")
            end = sampler.sample()
            self.after = {
                "drain_s": round(time.monotonic() - t0, 1),
                "queue_depth": depth,
                "metrics": end["metrics"],
                "rss_mib": round(end["rss_kb"] / 1024, 1),
                "vm_hwm_mib": round(status_kb(server.pid, "VmHWM") / 1024, 1),
                "data_dir_mib": round(end["disk_bytes"] / MIB, 1),
            }
        self.log(f"after the load: {self.after}")


# ---------------------------------------------------------------- verdict and report


def verdict(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    judged = list(rows[WARMUP_WINDOWS:])
    third = len(judged) // 3
    first, last = judged[:third], judged[-third:]
    p99_first = statistics.median(r["p99_ms"] for r in first)
    p99_last = statistics.median(r["p99_ms"] for r in last)
    rss_first, rss_last = first[-1]["rss_mib"], last[-1]["rss_mib"]
    p99_ratio = p99_last / p99_first if p99_first else float("inf")
    rss_growth = rss_last / rss_first - 1 if rss_first else float("inf")
    depths = [r["queue_depth"] for r in judged]
    return {
        "windows_judged": [r["window"] for r in judged],
        "first_third": [r["window"] for r in first],
        "last_third": [r["window"] for r in last],
        "p99_first_ms": p99_first,
        "p99_last_ms": p99_last,
        "p99_ratio": round(p99_ratio, 3),
        "p99_limit": P99_RATIO_LIMIT,
        "p99_flat": p99_ratio <= P99_RATIO_LIMIT,
        "rss_first_mib": rss_first,
        "rss_last_mib": rss_last,
        "rss_growth": round(rss_growth, 4),
        "rss_limit": RSS_GROWTH_LIMIT,
        "rss_flat": rss_growth <= RSS_GROWTH_LIMIT,
        "passed": p99_ratio <= P99_RATIO_LIMIT and rss_growth <= RSS_GROWTH_LIMIT,
        "errors": sum(sum(r["errors"].values()) for r in rows),
        "sent": sum(r["sent"] for r in rows),
        "answered": sum(r["answered"] for r in rows),
        "queue_depth_first": first[-1]["queue_depth"] if None not in depths else None,
        "queue_depth_last": last[-1]["queue_depth"] if None not in depths else None,
        "data_dir_first_mib": first[-1]["data_dir_mib"],
        "data_dir_last_mib": last[-1]["data_dir_mib"],
    }


def num(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in errors.items()) or "0"


def report(
    soak: Soak,
    info: dict[str, str],
    quiet: dict[str, Any],
    rate: float,
    v: dict[str, Any],
    argv: Sequence[str],
    minutes: float,
) -> str:
    a = soak.args
    rows, peak, after = soak.rows, soak.peak, soak.after
    expired = sum(r["expired"] or 0 for r in rows)
    missing = [
        name
        for name, key in (("queue depth", "queue_depth"), ("jobs delivered", "delivered_total"))
        if all(r[key] is None for r in rows)
    ]
    lines = [
        f"# pushgate soak, {dt.date.today().isoformat()}",
        "",
        "Written by `python bench/run_soak.py"
        + "".join(f" {x}" for x in argv)
        + f"` in {minutes:.1f} min (after the waits below). `pushgate serve --emulate` (role all: the API, the delivery"
        " worker and the built-in emulators in one process, the embedded default) at"
        f" {a.load:g} x its measured peak, {a.body} body, for {a.duration:g} s, recorded every"
        f" {a.window:g} s.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v_}" for k, v_ in info.items()),
        f"- users registered: {soak.bench.registration['sessions']:,} (one device each)",
        "- pushgate served from: "
        + (
            f"src/ of commit {info.get('served commit', a.rev)} (git archive)"
            if a.rev
            else "src/ of this checkout, copied at the start of the run"
        ),
        f"- waited {quiet['waited_s']} s for test runs and other benchmarks"
        f' (`pgrep -f "{BUSY_PATTERN}"` empty for {a.quiet_for:g} s in a row): '
        + ("the machine was quiet at the start" if quiet["quiet"] else "**it never got quiet**")
        + f"; then {quiet.get('lock_wait_s', 0)} s for run_api_bench's lock",
        f"- load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
        "",
        "## Method",
        "",
        "- Peak: "
        + (
            f"given (`--peak {a.peak:g}`), not measured"
            if a.peak
            else f"wrk -t{a.threads} -c{a.connections} (closed loop), {a.peak_duration:g} s after a"
            f" {a.warmup:g} s warm-up, on a freshly started server and its own copy of the"
            " registered data dir"
        )
        + ".",
        f"- Soak: another freshly started server on another fresh copy; bench/loadgen.py's open"
        f" loop at a constant {rate:,.0f} requests/s ({a.load:g} x {peak.get('rps', a.peak):,.0f}),"
        " latency counted from when each request was due (no coordinated omission), a request"
        " counted in the window in which it was answered. Requests unanswered 5 s after the last"
        " one was due count as timeouts in the last window.",
        "- Every window: RSS (VmRSS) and CPU of every process in the server's process group"
        " (/proc), queue depth and jobs delivered from its /metrics (`pushgate_queue_depth`;"
        ' delivered: `pushgate_delivery_sends_total{outcome="accepted"}` or, on older servers,'
        " `pushgate_delivery_done`; n/a where the server does not expose it), the data dir's"
        " size on disk (allocated blocks; the SQLite WAL in brackets), and the cores every other"
        " process used ('others'; 'busy' counts test runs and benchmarks found by pgrep).",
        f"- Verdict: window {WARMUP_WINDOWS} is a warm-up and left out; of the"
        f" {len(v['windows_judged'])} others, the first and the last third"
        f" ({len(v['first_third'])} windows each). p99 is flat when the median window p99 of"
        f" the last third is at most {P99_RATIO_LIMIT:g} x that of the first third; memory is"
        f" flat when RSS at the end of the last window is at most {RSS_GROWTH_LIMIT:.0%} above"
        " RSS at the end of the first third.",
        "",
    ]
    if peak:
        lines += [
            "## Peak (closed loop)",
            "",
            "| requests/s | p50 ms | p99 ms | errors | server cores | jobs delivered"
            " | jobs expired | queued at the end |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {peak['rps']:,.0f} | {peak['p50_ms']:.2f} | {peak['p99_ms']:.2f}"
            f" | {peak['errors']} | {peak['server_cores']:.2f}"
            f" | {num(peak['metrics_at_end'].get('delivery_done'))}"
            f" | {num(peak['metrics_at_end'].get('delivery_expired', 0))}"
            f" | {num(peak['metrics_at_end'].get('queue_depth'))} |",
            "",
            "(Counted since the server started, warm-up included.)",
            "",
        ]
    lines += [
        f"## Soak at {rate:,.0f} requests/s offered",
        "",
        "| window | end s | sent | answered | errors | p50 ms | p99 ms | p99.9 ms | max ms"
        " | RSS MiB | emulator log | server cores | queue depth | delivered | expired"
        " | data dir MiB (WAL) | others | busy |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---:"
        " | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        mark = (
            " (warm-up)"
            if r["window"] <= WARMUP_WINDOWS
            else " (first)"
            if r["window"] in v["first_third"]
            else " (last)"
            if r["window"] in v["last_third"]
            else ""
        )
        lines.append(
            f"| {r['window']}{mark} | {r['window'] * a.window:g} | {r['sent']:,}"
            f" | {r['answered']:,} | {errors_text(r['errors'])} | {r['p50_ms']:.2f}"
            f" | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['max_ms']:.2f}"
            f" | {r['rss_mib']:.1f} | {num(r['emulator_log'])} | {r['server_cores']:.2f}"
            f" | {num(r['queue_depth'])}"
            f" | {num(r['delivered'])} | {num(r['expired'])}"
            f" | {r['data_dir_mib']:,.1f} ({r['wal_mib']:,.1f}) | {r['other_cores']:.2f}"
            f" | {r['busy_processes']} |"
        )
    offered = rate * a.duration
    lines += [
        "",
        f"In all: {v['sent']:,} requests sent ({offered:,.0f} scheduled), {v['answered']:,}"
        f" answered, {v['errors']:,} errors; {num(rows[-1]['delivered_total'])} jobs"
        f" delivered and {expired:,.0f} expired during the soak. After the load the queue"
        f" held {num(after.get('queue_depth'))} jobs after {after.get('drain_s')} s"
        f" (waited at most {a.drain_wait:g} s); RSS {after.get('rss_mib')} MiB, peak RSS"
        f" (VmHWM) {after.get('vm_hwm_mib')} MiB, data dir {after.get('data_dir_mib')} MiB.",
        "",
    ]
    busy = sum(1 for r in rows if r["server_cores"] >= SATURATED_CORES)
    if expired or busy > len(rows) / 2:
        lines += [
            f"**Saturated**: the server used at least {SATURATED_CORES:g} cores in {busy} of"
            f" {len(rows)} windows, and {expired:,.0f} jobs expired unsent (their ttl ran out"
            " while queued): delivery did not keep up with this rate, the queue depth is held"
            " down by expiry, and the latencies are those of a server at its limit, not at"
            f" {a.load:g} of it.",
            "",
        ]
    lines += [
        "## Verdict",
        "",
        f"- p99, median window p99 of the last third against the first:"
        f" {v['p99_last_ms']:.2f} ms / {v['p99_first_ms']:.2f} ms = {v['p99_ratio']:.2f}"
        f" (limit {P99_RATIO_LIMIT:g}): " + ("flat" if v["p99_flat"] else "**not flat**"),
        f"- RSS from the end of the first third (window {v['first_third'][-1]}) to the end:"
        f" {v['rss_first_mib']:.1f} MiB to {v['rss_last_mib']:.1f} MiB,"
        f" {v['rss_growth']:+.1%} (limit +{RSS_GROWTH_LIMIT:.0%}): "
        + ("flat" if v["rss_flat"] else "**not flat**"),
        "- **"
        + ("pass" if v["passed"] else "fail")
        + "**"
        + (f" (with {v['errors']:,} errors)" if v["errors"] else ", no errors"),
        f"- queue depth at the end of the first third / the last window:"
        f" {num(v['queue_depth_first'])} / {num(v['queue_depth_last'])}; data dir"
        f" {v['data_dir_first_mib']:,.1f} / {v['data_dir_last_mib']:,.1f} MiB",
        "",
    ]
    log_full = next(
        (r["window"] for r in rows if soak.emulator_log and r["emulator_log"] == soak.emulator_log),
        None,
    )
    if soak.emulator_log:
        lines += [
            "'emulator log': deliveries the in-process emulators hold in memory for their control"
            f" route (`GET /emulator/v1/deliveries`), the last {soak.emulator_log:,} at most"
            " (`pushgate.emulators.state.DEFAULT_MAX_DELIVERIES`); part of the RSS above. "
            + (
                f"It was full from window {log_full} (by {log_full * a.window:g} s), "
                + (
                    "within the first third: RSS after it is the server's own."
                    if log_full <= v["first_third"][-1]
                    else "after the end of the first third: part of the RSS growth judged"
                    " above is that log filling."
                )
                if log_full
                else "It never filled: part of the RSS growth is that log filling."
            ),
            "",
        ]
    if missing:
        names = ", ".join(sorted(soak.first_sample.get("metrics", {}))) or "none"
        lines += [
            f"The server's /metrics did not give: {', '.join(missing)} (names it gave: {names}).",
            "",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds of the soak")
    p.add_argument("--window", type=float, default=30.0, help="seconds per recorded window")
    p.add_argument("--load", type=float, default=0.7, help="share of the peak to offer")
    p.add_argument("--peak", type=float, default=None, help="requests/s; skips measuring it")
    p.add_argument("--peak-duration", type=float, default=20.0, help="seconds of the peak run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before the peak run")
    p.add_argument("--body", choices=("seed", "varied"), default="seed")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--connections", type=int, default=32, help="wrk's, and opened at the start")
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument(
        "--drain-wait", type=float, default=60.0, help="seconds to wait for the queue after"
    )
    p.add_argument(
        "--quiet-for",
        type=float,
        default=60.0,
        help="seconds in a row that no test run or benchmark may run before the start"
        " (0: do not wait)",
    )
    p.add_argument("--busy-poll", type=float, default=30.0, help="seconds between those looks")
    p.add_argument(
        "--busy-wait", type=float, default=2700.0, help="seconds to wait at most for that"
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="seconds to wait, at most, before the peak run and the soak for idle CPUs",
    )
    p.add_argument(
        "--nice", type=int, default=0, help="niceness (and autogroup niceness) of server and load"
    )
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--rev", default=None, help="serve this commit's src/ (git archive), e.g. HEAD")
    p.add_argument(
        "--src", type=Path, default=REPO / "src", help="the source tree to serve (copied)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, logs)")
    p.add_argument("--lock-wait", type=float, default=1800.0)
    args = p.parse_args(argv)
    args.pin = False  # run_api_bench's Bench reads it
    windows = args.duration / args.window
    if not (5 <= args.window <= 600 and 10 <= args.duration <= 7200):
        p.error("window must be 5..600 s and duration 10..7200 s")
    if abs(windows - round(windows)) > 1e-9 or round(windows) < WARMUP_WINDOWS + 3:
        p.error("duration must be a multiple of window, at least 4 windows")
    if not 0 < args.load <= 1.5 or (args.peak is not None and args.peak <= 0):
        p.error("load must be in (0, 1.5] and peak positive")
    if not (harness.BATCH <= args.users <= 200_000 and 5 <= args.peak_duration <= 60):
        p.error(f"users must be {harness.BATCH}..200000, peak duration 5..60 s")
    if not -20 <= args.nice <= 19:
        p.error("nice must be -20..19")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["generate"]:  # the load generator's own process
        port, bodies, rate, duration, window, connections = argv[1:7]
        generate(
            int(port), Path(bodies), float(rate), float(duration), float(window), int(connections)
        )
        return 0
    args = parse_args(argv)
    if args.peak is None and shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk (or give --peak)")
    log = harness.Bench(args, Path(tempfile.gettempdir())).log
    quiet = {"waited_s": 0, "quiet": True, "last_busy": []}
    if args.quiet_for > 0:
        quiet = wait_for_quiet(args.quiet_for, args.busy_poll, args.busy_wait, log)
    locked = time.monotonic()
    lock = harness.one_run_at_a_time(args.lock_wait)  # held until this process exits
    quiet["lock_wait_s"] = round(time.monotonic() - locked)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pushgate-soak-"))
    soak = Soak(args, work)
    info = harness.machine()
    stem = harness.result_stem(
        "soak", info, args.rev, f"{args.duration:g}s" if args.duration < 600 else ""
    )
    log(f"work dir {work}; machine: {info['nproc']} x {info['cpu']}; waited {quiet['waited_s']} s")
    try:
        registered = soak.bench.setup()
        bodies = work / f"{args.body}.bodies"
        loadgen.write_bodies(bodies, getattr(registered, args.body))
        peak = args.peak if args.peak else soak.measure_peak(bodies)
        rate = round(args.load * peak)
        soak.soak(bodies, rate)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    v = verdict(soak.rows)
    minutes = (time.monotonic() - started) / 60
    text = report(soak, info, quiet, rate, v, argv, minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(text)
    raw = {
        "machine": info,
        "command": "python bench/run_soak.py" + "".join(f" {x}" for x in argv),
        "args": {k: str(x) for k, x in vars(args).items()},
        "waited_for_quiet": quiet,
        "peak": soak.peak,
        "rate": rate,
        "windows": soak.rows,
        "first_metrics": soak.first_sample.get("metrics", {}),
        "after": soak.after,
        "verdict": v,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(raw, indent=1))
    print()
    print(text)
    log(f"wrote {args.out / (stem + '.md')}")
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
