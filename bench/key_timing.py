"""How long pushgate takes to refuse a wrong key, by kind of wrong key: unknown, revoked (rotated
out with `partners rotate-keys`), and near miss (a live key with one character changed).

docs/security.md argues that the three cannot be told apart by time: a key is looked up by the
SHA-256 of the whole key, so nothing the server does depends on how much of a real key a wrong
one shares, and a revoked key's hash is simply no longer stored. This script measures it, since
tests never assert timings.

1. a fresh data dir with one partner, rotated `--requests` times in one transaction (so there are
   that many revoked API keys, each used once: the partner cache never answers a repeat);
2. `pushgate serve` on it (the bad-key limit off, since this is what it would refuse);
3. for each endpoint (`GET /api/v1/campaigns` with `X-API-KEY`, `POST /api/v2/notification/user`
   with the key in the body), `--requests` requests of each kind, interleaved in a random
   order, one at a time on one keep-alive connection; per request the time from sending to the
   whole answer;
4. a Markdown report to bench/results/keys-<date>-<commit>.md (`-dirty` when src/ had
   uncommitted changes), the raw figures in a .json beside it.

    . .venv/bin/activate && python bench/key_timing.py     # about a minute

It takes run_api_bench's lock, so it never runs beside the other benchmarks. Traffic goes to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import secrets
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402  (bench/ is not a package)

PUSHGATE = str(Path(sys.executable).with_name("pushgate"))
KINDS = ("unknown", "revoked", "near-miss")
NEAR_MISS_FROM = 20  # near misses keep at least the first 20 characters of the live key
CACHE_SECONDS = 2.5  # auth.PartnerCache keeps an answer 2 s
ALPHABET = string.ascii_letters + string.digits + "-_"
Request = Callable[[str], tuple[str, str, bytes, dict[str, str]]]
ENDPOINTS: dict[str, Request] = {
    "GET /api/v1/campaigns": lambda key: ("GET", "/api/v1/campaigns", b"", {"X-API-KEY": key}),
    "POST /api/v2/notification/user": lambda key: (
        "POST",
        "/api/v2/notification/user",
        json.dumps({"api_key": key, "notifications": []}).encode(),
        {"Content-Type": "application/json"},
    ),
}


def near_misses(live: str, count: int, rng: random.Random) -> list[str]:
    found: set[str] = set()
    while len(found) < count:
        at = rng.randrange(NEAR_MISS_FROM, len(live))
        other = rng.choice([c for c in ALPHABET if c != live[at]])
        found.add(live[:at] + other + live[at + 1 :])
    return list(found)


def revoked_keys(data_dir: Path, count: int) -> tuple[str, list[str]]:
    """Create the partner and rotate it `count` times; returns its live key and the old ones."""
    from pushgate.store import partners
    from pushgate.store.backend import connect_sync
    from pushgate.store.db import begin_write

    conn = connect_sync(data_dir)
    try:
        begin_write(conn)
        keys = [partners.create_partner(conn, "keytiming").api_key]
        keys += [partners.rotate_keys(conn, "keytiming").api_key for _ in range(count)]
        conn.execute("COMMIT")
    finally:
        conn.close()
    return keys[-1], keys[:-1]


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PUSHGATE_BAD_KEY_LIMIT": "0", "PUSHGATE_LOG_LEVEL": "warning"}
    env = {k: v for k, v in env.items() if k not in ("PUSHGATE_DATABASE_URL", "PUSHGATE_REDIS_URL")}
    proc = subprocess.Popen(
        [PUSHGATE, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("pushgate did not start")


def measure(port: int, request: Request, order: list[tuple[str, str]]) -> dict[str, list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    answers: set[tuple[int, bytes]] = set()
    for kind, key in order:
        method, path, body, headers = request(key)
        started = time.perf_counter_ns()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        times[kind].append((time.perf_counter_ns() - started) / 1e6)
        answers.add((response.status, answer))
    conn.close()
    if len(answers) != 1:
        raise SystemExit(f"the wrong keys got different answers: {answers}")
    return times


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=10)
    return {
        "n": len(ordered),
        "p10_ms": q[0],
        "p50_ms": statistics.median(ordered),
        "p90_ms": q[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def report(info: dict[str, str], results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "# Refusing wrong keys: time by kind of wrong key",
        "",
        f"{dt.date.today().isoformat()}, bench/key_timing.py. Machine: "
        + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "Latency of one request on one keep-alive connection, the kinds interleaved at random.",
        "",
    ]
    for endpoint, by_kind in results.items():
        base = by_kind["unknown"]["p50_ms"]
        lines += [
            f"## {endpoint}",
            "",
            "| wrong key | n | p10 ms | p50 ms | p90 ms | mean ms | p50 vs unknown |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for kind, s in by_kind.items():
            lines.append(
                f"| {kind} | {s['n']:.0f} | {s['p10_ms']:.3f} | {s['p50_ms']:.3f} |"
                f" {s['p90_ms']:.3f} | {s['mean_ms']:.3f} | {s['p50_ms'] / base - 1:+.1%} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1500, help="per kind and endpoint")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lock-wait", type=float, default=3600.0)
    args = p.parse_args()
    lock = harness.one_run_at_a_time(args.lock_wait)
    rng = random.Random(args.seed)
    info = {k: v for k, v in harness.machine().items() if k != "wrk"}
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        live, old = revoked_keys(data_dir, args.requests * len(ENDPOINTS))
        port = harness.free_port()
        proc = start(data_dir, port)
        try:
            for n, (endpoint, request) in enumerate(ENDPOINTS.items()):
                revoked = old[n * args.requests : (n + 1) * args.requests]
                order = (
                    [("unknown", "pgk_" + secrets.token_urlsafe(32)) for _ in revoked]
                    + [("revoked", key) for key in revoked]
                    + [("near-miss", key) for key in near_misses(live, len(revoked), rng)]
                )
                rng.shuffle(order)
                # The near misses of two endpoints overlap (there are ~1,700 of them): wait out
                # the partner cache (2 s), so that no key is answered from it.
                time.sleep(CACHE_SECONDS)
                measure(port, request, order[:200])  # warm-up (these keys are then cached)
                times = measure(port, request, order[200:])
                results[endpoint] = {kind: summary(times[kind]) for kind in KINDS}
        finally:
            proc.terminate()
            proc.wait(10)
    text = report(info, results)
    print(text)
    name = f"keys-{dt.date.today().isoformat()}-{info['commit']}"
    name += "-dirty" if info["uncommitted changes under src/"] != "none" else ""
    out = BENCH / "results" / name
    out.with_suffix(".md").write_text(text)
    data: dict[str, Any] = {"machine": info, "requests": args.requests, "results": results}
    out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    lock.close()


if __name__ == "__main__":
    main()
