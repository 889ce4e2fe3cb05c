"""Benchmark of the Targeted Push API against the framework ceiling, on this machine.

One script, bounded in time, that:

1. makes a fresh data dir with one partner (rate limit raised) and registers
   `--users` users, each with one device, through `POST /api/sdk/v1/session`,
   plus the user the seed body names (sample@mail.com);
2. serves, one at a time so that they never compete for CPU, the no-op app
   (bench/noop_app.py) and pushgate (`pushgate serve --emulate`), each with uvicorn +
   uvloop + httptools, access log off, one process; every pushgate scenario starts
   from its own copy of the registered data dir;
3. runs each closed-loop scenario with wrk (`--runs` runs of `--duration` s after a
   warm-up) and the open-loop scenarios with bench/loadgen.py at `--rate` requests/s;
4. prints a Markdown table of the medians and writes it, with the machine and every
   run, to bench/results/api-<date>-<commit>.md (and the raw figures to a .json beside
   it; `-dirty` when src/ had uncommitted changes).

Only one run at a time: a lock file makes a second run wait for the first.

    . .venv/bin/activate && python bench/run_api_bench.py --nice -10   # about 14 minutes
    python bench/run_api_bench.py --quick                               # about 3 minutes

Traffic goes to 127.0.0.1 only. Performance is judged from these recorded
figures, never from timed assertions in tests.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402  (bench/ is not a package)
from harness import (  # noqa: E402
    BATCH,
    Bench,
    Scenario,
    fmt_rps,
    machine,
    one_run_at_a_time,
    parse_args,
    profile_lines,
    result_stem,
)

GOAL_RPS = 5000
GOAL_CEILING_SHARE = 1 / 3
GOAL_P99_MS = 20.0


# ---------------------------------------------------------------- report


def report(
    bench: Bench,
    info: dict[str, str],
    scenarios: dict[str, Scenario],
    profile: dict[str, Any],
    started: float,
) -> str:
    a = bench.args
    ceiling = scenarios["noop"].median("rps")
    ceiling_batch = scenarios["noop_batch"].median("rps")
    background = max((r.other_cpu for s in scenarios.values() for r in s.runs), default=0.0)
    lines = [
        f"# pushgate API benchmark, {dt.date.today().isoformat()}",
        "",
        "Written by `python bench/run_api_bench.py"
        + "".join(f" {x}" for x in bench.argv)
        + f"` in {(time.monotonic() - started) / 60:.1f} min. Medians of {a.runs} runs of"
        f" {a.duration:g} s each, after a {a.warmup:g} s warm-up on a freshly started server;"
        " server and load generator on the same machine"
        + (", pinned to CPU 0 and CPU 1" if a.pin else ", not pinned")
        + (f", at niceness {a.nice}" if a.nice else "")
        + ". Each pushgate scenario starts from its own copy of the registered data dir.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        f"- users registered: {bench.registration['sessions']:,} (one device each), through"
        f" the SDK session endpoint in {bench.registration['seconds']} s",
        "- pushgate served from: "
        + (
            f"src/ of commit {info.get('served commit', a.rev)} (git archive)"
            if a.rev
            else "src/ of this checkout, copied at the start of the run"
            if Path(a.src).resolve() == (REPO / "src").resolve()
            else f"`{a.src}` (not this checkout's src/; commit above is this checkout's),"
            " copied at the start of the run"
        ),
        f"- closed loop: wrk -t{a.threads} -c{a.connections}; open loop: bench/loadgen.py",
        f"- other processes on the machine used up to {background:.2f} cores during a run"
        " (column 'others'; the script waits for a quiet machine before each run)",
        "",
        "## Throughput (closed loop, wrk)",
        "",
        "CPU columns are cores used during the runs: the server process with its child"
        " processes (delivery workers; the emulators of `serve --emulate` where the machine has"
        " more than one core), the serving process's event-loop thread in brackets, wrk, and"
        " every other process on the machine.",
        "",
        "| scenario | requests/s | notifications/s | p50 ms | p99 ms | vs no-op"
        " | server CPU (loop) | wrk | others | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scenarios.values():
        if s.kind != "closed":
            continue
        base = ceiling_batch if s.notifications > 1 else ceiling
        rps = s.median("rps")
        lines.append(
            f"| {s.title} | {fmt_rps(rps)} | {fmt_rps(rps * s.notifications)}"
            f" | {s.median('p50_ms'):.2f} | {s.median('p99_ms'):.2f} | {rps / base:.3f}"
            f" | {s.median('server_cpu'):.2f} ({s.median('server_main_cpu'):.2f})"
            f" | {s.median('loadgen_cpu'):.2f} | {s.median('other_cpu'):.2f}"
            f" | {sum(r.errors for r in s.runs)} |"
        )
    lines += [
        "",
        "'vs no-op' divides by the no-op app's rate for the same body.",
        "",
        "## Latency at a constant offered rate (open loop)",
        "",
        "Latency counts from when each request was due, so time spent queued behind a busy"
        " server is included (no coordinated omission). Requests still unanswered 5 s after"
        " the last one was due count as errors (timeouts), and enter the percentiles with"
        " the time they had waited by then (a lower bound).",
        "",
        "| scenario | offered req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms"
        " | server CPU (loop) | load gen. | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scenarios.values():
        if s.kind != "open":
            continue
        lines.append(
            f"| {s.title} | {fmt_rps(s.rate or 0)} | {fmt_rps(s.median('rps'))}"
            f" | {s.median('p50_ms'):.2f} | {s.median('p99_ms'):.2f}"
            f" | {s.median('p999_ms'):.2f} | {s.median('max_ms'):.2f}"
            f" | {s.median('server_cpu'):.2f} ({s.median('server_main_cpu'):.2f})"
            f" | {s.median('loadgen_cpu'):.2f} | {sum(r.errors for r in s.runs)} |"
        )
    lines += [
        "",
        "## SQLite and delivery, per pushgate scenario",
        "",
        "From pushgate's /metrics once the server had worked off its queue (or at most 60 s"
        " after the last run): units of work and group commits of the SQLite writer, and what"
        " the in-process delivery worker sent to the in-process emulators.",
        "",
        "| scenario | units per commit | jobs delivered | jobs still queued |",
        "| --- | ---: | ---: | ---: |",
    ]
    for s in scenarios.values():
        if s.server != "pushgate" or not s.metrics:
            continue
        m = s.metrics
        per_commit = m.get("sqlite_units", 0) / max(1.0, m.get("sqlite_commits", 0))
        delivered = m.get("delivery_done", 0) if s.role != "api" else 0
        lines.append(
            f"| {s.title} | {per_commit:.1f} | {fmt_rps(delivered)}"
            f" | {fmt_rps(m.get('queue_depth', 0))} |"
        )
    # The goals are the API's: answering and durably queueing. With --role all the same
    # process also delivers every job to the in-process emulators (both sides of each
    # provider connection on the one core), which the rows above show separately.
    seed_rps = scenarios["seed_api"].median("rps")
    varied_rps = scenarios["varied_api"].median("rps")
    p99 = scenarios["open_seed_api"].median("p99_ms")
    errors = sum(r.errors for r in scenarios["open_seed_api"].runs)

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines += [
        "",
        "## Goals",
        "",
        "Judged on `--role api` (the API answering and durably queueing; delivery measured"
        " separately above).",
        "",
        f"- seed body, at least {GOAL_RPS:,} requests/s: {fmt_rps(seed_rps)}"
        f" (varied across users: {fmt_rps(varied_rps)}): {mark(seed_rps >= GOAL_RPS)}",
        f"- at least a third of the no-op ceiling ({fmt_rps(ceiling)} requests/s):"
        f" {seed_rps / ceiling:.3f} (varied: {varied_rps / ceiling:.3f}):"
        f" {mark(seed_rps / ceiling >= GOAL_CEILING_SHARE)}",
        f"- p99 under {GOAL_P99_MS:g} ms at 2,000 requests/s offered, seed body:"
        f" {p99:,.2f} ms at {fmt_rps(a.rate)}/s offered, {errors} errors:"
        f" {mark(p99 < GOAL_P99_MS and a.rate >= 2000 and not errors)}",
        "",
    ]
    for role, prof in (profile or {}).items():
        lines += profile_lines(
            f"pushgate --role {role} (py-spy, varied seed body, closed loop)", prof
        )
    lines += [
        "## Every run",
        "",
        "| scenario | kind | run | requests/s | p50 ms | p99 ms | p99.9 ms | max ms | errors"
        " | others (cores) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scenarios.values():
        for n, r in enumerate(s.runs, 1):
            lines.append(
                f"| {s.title} | {s.kind} | {n} | {fmt_rps(r.rps)} | {r.p50_ms:.2f}"
                f" | {r.p99_ms:.2f} | {r.p999_ms:.2f} | {r.max_ms:.2f} | {r.errors}"
                f" | {r.other_cpu:.2f} |"
            )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args_given = list(sys.argv[1:] if argv is None else argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    lock = one_run_at_a_time(args.lock_wait)  # held until this process exits
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pushgate-bench-"))
    bench = Bench(args, work)
    bench.argv = args_given
    info = machine()
    stem = result_stem("api", info, args.rev, "quick" if args.quick else "")
    bench.log(f"work dir {work}; machine: {info['nproc']} x {info['cpu']}")
    closed = [
        Scenario("noop", "no-op, seed body", "no-op", "closed", "seed"),
        Scenario(
            "noop_batch", f"no-op, {BATCH}-notification body", "no-op", "closed", "batch", BATCH
        ),
        Scenario("seed", "pushgate, seed body (same user)", "pushgate", "closed", "seed"),
        Scenario(
            "varied", "pushgate, seed body varied across users", "pushgate", "closed", "varied"
        ),
        Scenario(
            "batch", f"pushgate, {BATCH}-notification body", "pushgate", "closed", "batch", BATCH
        ),
        Scenario(
            "varied_api",
            "pushgate --role api (no delivery), seed body varied",
            "pushgate",
            "closed",
            "varied",
            role="api",
        ),
        Scenario(
            "seed_api",
            "pushgate --role api (no delivery), seed body",
            "pushgate",
            "closed",
            "seed",
            role="api",
        ),
        Scenario(
            "batch_api",
            f"pushgate --role api (no delivery), {BATCH}-notification body",
            "pushgate",
            "closed",
            "batch",
            BATCH,
            role="api",
        ),
    ]
    rate = args.rate
    opened = [
        Scenario("open_noop", "no-op, seed body", "no-op", "open", "seed", rate=rate),
        Scenario("open_seed", "pushgate, seed body", "pushgate", "open", "seed", rate=rate),
        Scenario(
            "open_varied", "pushgate, seed body varied", "pushgate", "open", "varied", rate=rate
        ),
        Scenario(
            "open_seed_api",
            "pushgate --role api (no delivery), seed body",
            "pushgate",
            "open",
            "seed",
            rate=rate,
            role="api",
        ),
    ]
    scenarios = {s.key: s for s in closed + opened}
    profile: dict[str, Any] = {}
    try:
        bodies = bench.setup()
        files = {}
        for name in ("seed", "varied", "batch"):
            files[name] = work / f"{name}.bodies"
            loadgen.write_bodies(files[name], getattr(bodies, name))
        for scenario in closed + opened:
            bench.run_scenario(scenario, files[scenario.body])
        # Below the goal's rate, also show the latency at a rate pushgate can sustain.
        half = round(scenarios["seed_api"].median("rps") / 2, -1)
        if 10 <= half < rate:
            extra = Scenario(
                "open_seed_half",
                f"pushgate --role api, seed body, at half its closed-loop maximum ({half:,.0f}/s)",
                "pushgate",
                "open",
                "seed",
                rate=half,
                role="api",
            )
            scenarios[extra.key] = extra
            bench.run_scenario(extra, files["seed"])
        if args.profile:
            bench.log("profiling pushgate with py-spy (varied seed body)")
            args.out.mkdir(parents=True, exist_ok=True)
            profile = bench.profile(files["varied"], args.out / f"{stem}-profile")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = report(bench, info, scenarios, profile, started)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(text)
    raw = {
        "machine": info,
        "args": {k: str(v) for k, v in vars(args).items()},
        "scenarios": {k: [vars(r) for r in s.runs] for k, s in scenarios.items()},
        "metrics": {k: s.metrics for k, s in scenarios.items() if s.metrics},
        "profile": profile,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(raw, indent=1))
    print()
    print(text)
    bench.log(f"wrote {args.out / (stem + '.md')}")
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
