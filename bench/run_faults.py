"""PostgreSQL, Redis and NATS each restarted while pushes flow: what a restart costs (issue 19).

For each part, `--runs` times: servers of the run's own (PostgreSQL, Redis, NATS with JetStream),
`pushgate serve --emulate` on them, `--rate` push requests/s of `--per-request` notifications
(one push per user) for `--seconds`; at `--fault-at` the part is stopped (PostgreSQL: `pg_ctl
stop -m fast`, as `pg_ctlcluster restart` does; Redis and NATS: SIGTERM), kept down for `--down`
seconds and started again. pushgate is not touched. The run itself is tests/support/fault_run.py
(tests/e2e/test_infrastructure_restarts.py asserts on the same run, shorter).

    .venv/bin/python bench/run_faults.py                 # about 4 minutes
    .venv/bin/python bench/run_faults.py --parts redis --runs 1 --down 3

Writes bench/results/faults-<date>-<commit>.md and .json; exits 1 if a push answered with a
success was not delivered, or a request was answered otherwise than 200 or 503 + Retry-After.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import harness  # noqa: E402  (bench/ is not a package)
from tests.support.fault_run import LATE_AFTER, PARTS, FaultReport, run_fault  # noqa: E402

COLUMNS = [
    ("run", lambda r, i: str(i + 1)),
    ("down s", lambda r, i: f"{r.down_for_s:.1f}"),
    ("requests", lambda r, i: f"{r.requests:,}"),
    ("answered 200", lambda r, i: f"{r.answered_200:,}"),
    ("refused 503", lambda r, i: f"{r.refused_503:,}"),
    ("503 without Retry-After", lambda r, i: str(r.refused_without_retry_after)),
    ("other answers", lambda r, i: _other(r)),
    ("slowest answer s", lambda r, i: f"{r.slowest_answer_s:.2f}"),
    ("refused from / to s", lambda r, i: _span(r)),
    ("pushes accepted", lambda r, i: f"{r.pushes_accepted:,}"),
    ("delivered once", lambda r, i: f"{r.delivered_once:,}"),
    ("duplicated", lambda r, i: str(r.duplicated)),
    ("lost", lambda r, i: str(r.lost)),
    (f"delayed > {LATE_AFTER:g} s", lambda r, i: f"{r.delayed:,}"),
    ("latest delivery s", lambda r, i: f"{r.slowest_delivery_s:.1f}"),
    ("/readyz named", lambda r, i: ", ".join(r.readyz_failing) or "nothing"),
    ("served again after s", lambda r, i: _maybe(r.served_after_s)),
    ("ready again after s", lambda r, i: _maybe(r.ready_after_s)),
]


def _maybe(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def _other(report: FaultReport) -> str:
    return ", ".join(f"{n} x {s or 'no answer'}" for s, n in report.other_statuses.items()) or "0"


def _span(report: FaultReport) -> str:
    if report.first_refused_s is None or report.last_refused_s is None:
        return "-"
    return f"{report.first_refused_s:.1f} / {report.last_refused_s:.1f}"


def broken(report: FaultReport) -> list[str]:
    """What breaks the promise: a success not delivered, an answer other than 200 or 503."""
    problems = []
    if report.lost:
        problems.append(f"{report.lost} accepted pushes not delivered")
    if report.other_statuses:
        problems.append(f"answers other than 200/503: {report.other_statuses}")
    if report.refused_without_retry_after:
        problems.append(f"{report.refused_without_retry_after} refusals without Retry-After")
    return problems


def write(args: argparse.Namespace, reports: dict[str, list[FaultReport]], took: float) -> Path:
    machine = harness.machine()
    stem = f"faults-{dt.date.today().isoformat()}-{machine['commit']}"
    out = args.out / f"{stem}.md"
    lines = [
        f"# Infrastructure restarts while pushes flow, {dt.date.today().isoformat()}",
        "",
        f"Written by `python bench/run_faults.py {' '.join(sys.argv[1:])}` in {took / 60:.1f} min.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine.items() if k != "wrk"),
        "",
        "## Method",
        "",
        f"- Per run: PostgreSQL, Redis (no persistence) and NATS (JetStream on a store directory)"
        f" of the run's own; `pushgate serve --emulate` on them (one API process, one delivery"
        f" process); {args.rate:g} push requests/s of {args.per_request} notifications, one push"
        f" per registered user (iOS), for {args.seconds:g} s; {args.fault_at:g} s in, the part is"
        f" stopped (PostgreSQL: `pg_ctl stop -m fast`; Redis, NATS: SIGTERM), kept down"
        f" {args.down:g} s, and started again. pushgate is left running.",
        "- Answers: every request's status and Retry-After; *refused from / to*: when the first"
        " and the last refused request started, in seconds from the stop.",
        "- Deliveries: the emulator's record of every push it accepted (`GET /emulator/v1/"
        "deliveries`), read once every accepted push arrived (or 90 s passed) and 2 s more;"
        f" *delayed*: first delivered more than {LATE_AFTER:g} s after its request was answered.",
        "- *Served again after*: from the part listening again to the first 200 of a request"
        " started after that; *ready again after*: to the first /readyz 200 (asked every 0.2 s).",
        "",
    ]
    for part, runs in reports.items():
        lines += [f"## {part}", ""]
        lines.append("| " + " | ".join(name for name, _ in COLUMNS) + " |")
        lines.append("| " + " | ".join("---" for _ in COLUMNS) + " |")
        for i, report in enumerate(runs):
            lines.append("| " + " | ".join(cell(report, i) for _, cell in COLUMNS) + " |")
        lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    data: dict[str, Any] = {
        "machine": machine,
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": {part: [r.as_dict() for r in runs] for part, runs in reports.items()},
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50.0, help="push requests per second")
    parser.add_argument("--per-request", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--fault-at", type=float, default=5.0)
    parser.add_argument("--down", type=float, default=10.0, help="seconds the part stays down")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    started = time.monotonic()
    reports: dict[str, list[FaultReport]] = {}
    for run in range(args.runs):
        for part in parts:
            print(f"[{time.strftime('%H:%M:%S')}] {part}, run {run + 1}/{args.runs}", flush=True)
            with tempfile.TemporaryDirectory(prefix="pushgate-faults-") as work:
                report = run_fault(
                    part,
                    Path(work),
                    rate=args.rate,
                    per_request=args.per_request,
                    seconds=args.seconds,
                    fault_at=args.fault_at,
                    down_seconds=args.down,
                )
            reports.setdefault(part, []).append(report)
    out = write(args, reports, time.monotonic() - started)
    print(f"wrote {out} and .json")
    problems = [f"{r.part}: {p}" for runs in reports.values() for r in runs for p in broken(r)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
