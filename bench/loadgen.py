"""A small HTTP/1.1 load generator on uvloop + httptools, for 127.0.0.1 only.

Two modes:

- open loop (`open_loop`, the command line): requests are *scheduled* at a constant
  rate, whether or not earlier ones have been answered, and each latency is measured
  from the moment the request was due, not from when a connection was free to send
  it. A server that stalls is charged for every request that waited behind the stall
  (no coordinated omission), which is what wrk's closed loop cannot show.
- closed loop (`closed_loop`): a fixed number of requests over N keep-alive
  connections, as fast as they are answered; used to register users before a run.

Every run is bounded: by a request count, and by a deadline after which requests
still outstanding are counted as timeouts.

    python bench/loadgen.py --port 8080 --path /api/v2/notification/user \\
        --bodies bodies.bin --rate 2000 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows
    uvloop = None  # type: ignore[assignment]

LOOPBACK = "127.0.0.1"  # the only address this tool sends to
BODY_SEPARATOR = b"\0"  # bodies files hold JSON bodies separated by NUL bytes


def read_bodies(path: Path) -> list[bytes]:
    return [b for b in path.read_bytes().split(BODY_SEPARATOR) if b.strip()]


def write_bodies(path: Path, bodies: Sequence[bytes]) -> None:
    path.write_bytes(BODY_SEPARATOR.join(bodies))


def build_request(
    path: str, body: bytes, port: int, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {LOOPBACK}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    # Requests still unanswered at the deadline: how long each had waited by then. They
    # enter the percentiles as these lower bounds, so a server that falls behind cannot
    # look fast by answering only the early requests.
    unanswered: list[float] = field(default_factory=list)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    bodies: list[bytes] = field(default_factory=list)  # kept only when asked for
    connect_errors: int = 0
    dropped: int = 0  # connection closed with the request in flight

    def summary(self, elapsed: float, timeouts: int = 0, offered: float | None = None) -> dict:
        lat = sorted(self.latencies + self.unanswered)
        ms = 1000.0
        answered = len(self.latencies)
        out = {
            "answered": answered,
            "elapsed_s": round(elapsed, 3),
            "rps": round(answered / elapsed, 1) if elapsed > 0 else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "non_2xx": sum(v for k, v in self.statuses.items() if not 200 <= k < 300),
            "errors": self.connect_errors + self.dropped + timeouts,
            "timeouts": timeouts,
            "p50_ms": round(percentile(lat, 50) * ms, 3),
            "p90_ms": round(percentile(lat, 90) * ms, 3),
            "p99_ms": round(percentile(lat, 99) * ms, 3),
            "p999_ms": round(percentile(lat, 99.9) * ms, 3),
            "max_ms": round(lat[-1] * ms, 3) if lat else 0.0,
            "mean_ms": round(statistics.fmean(lat) * ms, 3) if lat else 0.0,
        }
        if offered is not None:
            out["offered_rps"] = offered
        return out


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, owner: _Pool) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.due = 0.0  # when the request in flight was due (perf_counter seconds)
        self.busy = False
        self.chunks: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:  # `lost` counts the request as dropped
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.owner.lost(self)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if self.owner.keep_bodies:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        done = time.perf_counter()
        stats = self.owner.stats
        stats.latencies.append(done - self.due)
        stats.statuses[self.parser.get_status_code()] += 1
        if self.owner.keep_bodies:
            stats.bodies.append(b"".join(self.chunks))
            self.chunks = []
        self.busy = False
        self.owner.finished(self)

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.busy = True
        self.due = due
        self.transport.write(request)


class _Pool:
    def __init__(self, port: int, max_connections: int, keep_bodies: bool = False) -> None:
        self.port = port
        self.max_connections = max_connections
        self.keep_bodies = keep_bodies
        self.stats = Stats()
        self.free: collections.deque[Connection] = collections.deque()
        self.backlog: collections.deque[tuple[bytes, float]] = collections.deque()
        self.open = 0  # connections open or opening
        self.conns: set[Connection] = set()
        self.peak = 0
        self.outstanding = 0  # requests sent or waiting, not yet answered
        self.all_answered = asyncio.Event()
        self.all_answered.set()
        self.scheduling_done = False

    def spawn(self) -> asyncio.Task[None]:
        """Open one more connection (counted at once, so bursts respect the bound)."""
        self.open += 1
        self.peak = max(self.peak, self.open)
        return asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, conn = await asyncio.get_running_loop().create_connection(
                lambda: Connection(self), LOOPBACK, self.port
            )
        except OSError:
            self.open -= 1
            self.stats.connect_errors += 1
            return
        self.conns.add(conn)
        self.idle(conn)

    def submit(self, request: bytes, due: float) -> None:
        self.outstanding += 1
        self.all_answered.clear()
        if self.free:
            self.free.popleft().send(request, due)
            return
        self.backlog.append((request, due))
        if self.open < self.max_connections:
            self.spawn()

    def idle(self, conn: Connection) -> None:
        """A connection is free: give it the oldest waiting request, if any."""
        if self.backlog:
            request, due = self.backlog.popleft()
            conn.send(request, due)
        else:
            self.free.append(conn)

    def finished(self, conn: Connection) -> None:
        self.outstanding -= 1
        self.idle(conn)
        if self.outstanding <= 0 and self.scheduling_done:
            self.all_answered.set()

    def lost(self, conn: Connection) -> None:
        self.open -= 1
        self.conns.discard(conn)
        if conn in self.free:
            self.free.remove(conn)
        if conn.busy:
            conn.busy = False
            self.stats.dropped += 1
            self.outstanding -= 1
            if self.outstanding <= 0 and self.scheduling_done:
                self.all_answered.set()
        if self.backlog and self.open < self.max_connections:
            self.spawn()

    def close(self) -> None:
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()


async def open_loop(
    port: int,
    requests: Sequence[bytes],
    rate: float,
    duration: float,
    connections: int = 32,
    max_connections: int = 512,
    drain_timeout: float = 5.0,
    on_start: Callable[[_Pool, float], object] | None = None,
) -> dict:
    """Send `rate` requests per second for `duration` seconds, cycling through `requests`.

    `on_start(pool, start)`, if given, is called once the connections are open, with the
    perf_counter time the first request is due: e.g. to start a task that reads (or swaps)
    `pool.stats` at intervals, as bench/run_soak.py does for its windows."""
    pool = _Pool(port, max_connections)
    await asyncio.gather(*(pool.spawn() for _ in range(connections)))
    total = int(rate * duration)
    interval = 1.0 / rate
    start = time.perf_counter() + 0.01
    if on_start is not None:
        on_start(pool, start)
    sent = 0
    while sent < total:
        now = time.perf_counter()
        # Everything due by now goes out; nothing goes out early.
        while sent < total and start + sent * interval <= now:
            pool.submit(requests[sent % len(requests)], start + sent * interval)
            sent += 1
        if sent < total:
            # The loop's timers tick in whole milliseconds; a shorter sleep would spin and
            # take a CPU from the server. A request may so go out up to ~1 ms after it was
            # due, and that delay counts in its latency.
            await asyncio.sleep(max(0.001, start + sent * interval - time.perf_counter()))
    pool.scheduling_done = True
    if pool.outstanding > 0:
        pool.all_answered.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.all_answered.wait(), drain_timeout)
    now = time.perf_counter()
    elapsed = now - start
    waiting = [now - c.due for c in pool.conns if c.busy] + [now - d for _, d in pool.backlog]
    pool.stats.unanswered.extend(waiting)
    pool.close()
    result = pool.stats.summary(elapsed, len(waiting), rate)
    result["sent"] = sent
    result["connections_peak"] = pool.peak
    return result


async def closed_loop(
    port: int, requests: Sequence[bytes], concurrency: int = 32, keep_bodies: bool = False
) -> tuple[dict, list[bytes]]:
    """Send every request once over `concurrency` keep-alive connections."""
    pool = _Pool(port, concurrency, keep_bodies)
    await asyncio.gather(*(pool.spawn() for _ in range(concurrency)))
    start = time.perf_counter()
    for request in requests:
        pool.submit(request, time.perf_counter())
    pool.scheduling_done = True
    if pool.outstanding > 0:
        pool.all_answered.clear()
        await asyncio.wait_for(pool.all_answered.wait(), 60 + len(requests) / 100)
    elapsed = time.perf_counter() - start
    pool.close()
    return pool.stats.summary(elapsed), pool.stats.bodies


def run(coro):  # type: ignore[no-untyped-def]
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description="Open-loop constant-rate HTTP POST load.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--bodies", type=Path, required=True, help="NUL-separated JSON bodies")
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds (at most 120)")
    parser.add_argument("--connections", type=int, default=32, help="opened before the start")
    parser.add_argument("--max-connections", type=int, default=512)
    args = parser.parse_args()
    if not 0 < args.duration <= 120 or not 0 < args.rate <= 100_000:
        sys.exit("duration must be in (0, 120] s and rate in (0, 100000] requests/s")
    headers = [tuple(h.split(":", 1)) for h in args.header]
    requests = [
        build_request(args.path, body, args.port, [(k.strip(), v.strip()) for k, v in headers])
        for body in read_bodies(args.bodies)
    ]
    result = run(
        open_loop(
            args.port, requests, args.rate, args.duration, args.connections, args.max_connections
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
