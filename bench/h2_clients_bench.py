"""HTTP/2 clients side by side: one Python process sending APNs-shaped POSTs into nghttpd (h2c).

Issue 13 item 2: the ways to send HTTP/2 faster from Python, measured the same way, and h2load
(C, nghttp2) into the same sink as the ceiling. Each candidate runs in a process of its own,
`--requests` POSTs with `--concurrency` in flight over one connection, after a warm-up; the
process's CPU (user + system, every thread) over the timed part is reported with the rate.

Candidates (`--candidates`, all by default):

- `h2client`: the transport pushgate used until this change (`providers/h2client.py`, h2 and
  hpack in pure Python), taken from git at `--baseline` (it is no longer in the tree);
- `h2client-tuned`: the same with h2's header validation and normalisation switched off both
  ways (`H2Configuration(validate_outbound_headers=False, normalize_outbound_headers=False,
  validate_inbound_headers=False, normalize_inbound_headers=False)`) and an HPACK encoder that
  reuses header blocks: without the dynamic table every field encodes the same whatever came
  before, so each (name, value) is encoded once and a block is a join of cached pieces;
- `curl`, `curl-asyncio`: pushgate's new transport (`providers/curl_client.py`: pycurl's multi
  interface driven by the event loop), on uvloop (what the service runs) and on asyncio's loop;
- `pycurl-perform`: pycurl without asyncio, one `multi.perform()` loop: what libcurl gives a
  Python process with nothing around it;
- `pyreqwest` (Rust: reqwest/hyper), `pyqwest` (Rust: reqwest), `rnet` (Rust: hyper fork),
  `curl_cffi` (libcurl over cffi, its AsyncSession), `niquests` (urllib3-future, jh2): where
  installed. Only pycurl is a pushgate dependency; put the others on `--extra-path`, e.g.
  `pip install --target /tmp/bench-extra pyreqwest curl-cffi niquests pyqwest rnet`.

The request: `POST /3/device/<64 hex>` (one of `--tokens` files in the sink's docroot, so it
answers 200), headers apns-topic, apns-push-type, apns-priority, apns-expiration and an
`authorization: bearer` of about 200 bytes, a JSON body of about 150 bytes. nghttpd runs with
`-m 1000` (streams per connection) so that 500 in flight fit on one connection.

    .venv/bin/python bench/h2_clients_bench.py --extra-path /tmp/bench-extra
    .venv/bin/python bench/h2_clients_bench.py --quick --candidates curl,h2client

Writes bench/results/h2-clients-<date>-<commit>.md and .json. Traffic goes to 127.0.0.1 only;
it takes the benchmarks' machine-wide lock (one benchmark at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

CANDIDATES = [
    "h2client",
    "h2client-tuned",
    "curl",
    "curl-asyncio",
    "pycurl-perform",
    "pyreqwest",
    "pyqwest",
    "rnet",
    "curl_cffi",
    "niquests",
]
BEARER = "bearer eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQzEyM0RFRkcifQ." + "x" * 120 + ".sig" + "y" * 24
HEADERS = [
    ("apns-topic", "com.example.app"),
    ("apns-push-type", "alert"),
    ("apns-priority", "10"),
    ("apns-expiration", "1767225600"),
    ("authorization", BEARER),
]
BODY = (
    b'{"aps":{"alert":{"title":"Your order has shipped","body":"It should arrive on Thursday,'
    b' track it in the app."},"sound":"default","badge":1},"camp_id":"4711"}'
)


def token(index: int) -> str:
    return f"{index:064x}"


# ============================================================================ children
# Each candidate: async def run(url, tokens, requests, concurrency) -> errors, timed by `measure`.

Send = Callable[[str], Awaitable[int]]  # path -> status


async def drive(send: Send, tokens: int, requests: int, concurrency: int) -> int:
    """`requests` sends with `concurrency` at once; the number that did not answer 200."""
    next_index = 0
    errors = 0

    async def worker() -> None:
        nonlocal next_index, errors
        while next_index < requests:
            index = next_index
            next_index += 1
            try:
                status = await send(f"/3/device/{token(index % tokens)}")
            except Exception:
                status = 0
            if status != 200:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


class Timed:
    """Wall time and the process's CPU (all threads) between `start` and `stop`."""

    def start(self) -> None:
        self.wall = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = usage.ru_utime + usage.ru_stime

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime - self.cpu}


async def measure(send: Send, args: argparse.Namespace) -> dict[str, Any]:
    warm = await drive(send, args.tokens, min(1000, args.requests), args.concurrency)
    if warm:
        raise RuntimeError(f"{warm} warm-up requests failed")
    timed = Timed()
    timed.start()
    errors = await drive(send, args.tokens, args.requests, args.concurrency)
    return {**timed.stop(), "errors": errors}


def baseline_h2client(commit: str) -> Any:
    """providers/h2client.py as it was at `commit`, imported as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:src/pushgate/providers/h2client.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="h2bench-")) / "baseline_h2client.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_h2client", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_h2client"] = module
    spec.loader.exec_module(module)
    return module


class StatelessEncoder:
    """HPACK without the dynamic table (RFC 7541: static-table indices, literals "without
    indexing"), so that a field's encoding never depends on the fields before it: each
    (name, value) is encoded once and cached, and a header block is a join of cached pieces."""

    def __init__(self) -> None:
        from hpack.table import HeaderTable

        self._full: dict[tuple[bytes, bytes], int] = {}
        self._names: dict[bytes, int] = {}
        for index, (name, value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
            self._full.setdefault((name, value), index)
            self._names.setdefault(name, index)
        self._cache: dict[tuple[Any, Any], bytes] = {}
        self._announce = True  # the first block (and one after a SETTINGS change) says size 0
        self._table_size = 4096

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_size = value
        self._announce = True

    @staticmethod
    def _integer(value: int, prefix: int, first: int) -> bytes:
        limit = (1 << prefix) - 1
        if value < limit:
            return bytes([first | value])
        out = bytearray([first | limit])
        value -= limit
        while value >= 128:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
        return bytes(out)

    def _string(self, data: bytes) -> bytes:
        return self._integer(len(data), 7, 0) + data

    def _field(self, name: bytes, value: bytes) -> bytes:
        index = self._full.get((name, value))
        if index is not None:
            return self._integer(index, 7, 0x80)
        name_index = self._names.get(name)
        if name_index is not None:
            return self._integer(name_index, 4, 0) + self._string(value)
        return b"\x00" + self._string(name) + self._string(value)

    def encode(self, headers: Sequence[tuple[Any, Any]], huffman: bool = True) -> bytes:
        cache = self._cache
        pieces = [b"\x20"] if self._announce else []
        self._announce = False
        for pair in headers:
            piece = cache.get(pair)
            if piece is None:
                name, value = pair
                name_b = name.encode() if isinstance(name, str) else bytes(name)
                value_b = value.encode() if isinstance(value, str) else bytes(value)
                piece = self._field(name_b, value_b)
                if len(cache) > 4096:
                    cache.clear()
                cache[pair] = piece
            pieces.append(piece)
        return b"".join(pieces)


def child_h2client(args: argparse.Namespace, tuned: bool) -> dict[str, Any]:
    module = baseline_h2client(args.baseline)
    if tuned:
        plain = module.H2Configuration

        def configuration(**options: Any) -> Any:
            return plain(
                **options,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
            )

        module.H2Configuration = configuration
        core = module.ClientConnection

        class TunedConnection(core):  # type: ignore[misc, valid-type]
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, **kw)
                self._h2.encoder = StatelessEncoder()

        module.ClientConnection = TunedConnection

    async def main() -> dict[str, Any]:
        client = module.H2Client(args.url, max_streams_per_connection=1000)

        async def send(path: str) -> int:
            response = await client.request("POST", path, HEADERS, BODY, 30.0)
            return int(response.status)

        try:
            return await measure(send, args)
        finally:
            await client.aclose()

    return run_loop(main, uvloop=True)


def child_curl(args: argparse.Namespace, uvloop: bool) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "src"))
    from pushgate.providers.curl_client import CurlClient

    async def main() -> dict[str, Any]:
        client = CurlClient(args.url, max_in_flight=args.concurrency)

        async def send(path: str) -> int:
            return (await client.request("POST", path, HEADERS, BODY, 30.0)).status

        try:
            return await measure(send, args)
        finally:
            await client.aclose()

    return run_loop(main, uvloop=uvloop)


def child_pycurl_perform(args: argparse.Namespace) -> dict[str, Any]:
    import pycurl

    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
    multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, 1)
    multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, 1000)
    lines = [f"{n}: {v}" for n, v in HEADERS] + ["Accept:", "Expect:", "Content-Type:"]
    free = []
    for _ in range(args.concurrency):
        easy = pycurl.Curl()
        chunks: list[bytes] = []
        easy.setopt(pycurl.WRITEFUNCTION, chunks.append)
        easy.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
        easy.setopt(pycurl.PIPEWAIT, 1)
        easy.setopt(pycurl.NOSIGNAL, 1)
        easy.setopt(pycurl.HTTPHEADER, lines)
        free.append(easy)

    def run(requests: int) -> int:
        sent = done = errors = 0
        while done < requests:
            while free and sent < requests:
                easy = free.pop()
                easy.setopt(pycurl.URL, f"{args.url}/3/device/{token(sent % args.tokens)}")
                easy.setopt(pycurl.POSTFIELDS, BODY)
                multi.add_handle(easy)
                sent += 1
            while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                pass
            while True:
                queued, ok, failed = multi.info_read()
                for easy in ok:
                    errors += easy.getinfo(pycurl.RESPONSE_CODE) != 200
                    multi.remove_handle(easy)
                    free.append(easy)
                for easy, _code, _message in failed:
                    errors += 1
                    multi.remove_handle(easy)
                    free.append(easy)
                done += len(ok) + len(failed)
                if not queued:
                    break
            if not free or sent >= requests:
                multi.select(1.0)
        return errors

    if run(min(1000, args.requests)):
        raise RuntimeError("warm-up requests failed")
    timed = Timed()
    timed.start()
    errors = run(args.requests)
    return {**timed.stop(), "errors": errors}


def child_pyreqwest(args: argparse.Namespace) -> dict[str, Any]:
    from pyreqwest.client import ClientBuilder

    async def main() -> dict[str, Any]:
        client = ClientBuilder().http2_prior_knowledge().max_connections(1).build()

        async def send(path: str) -> int:
            request = client.post(args.url + path).headers(dict(HEADERS)).body_bytes(BODY)
            response = await request.build().send()
            await response.bytes()
            return int(response.status)

        try:
            return await measure(send, args)
        finally:
            await client.close()

    return run_loop(main, uvloop=True)


def child_pyqwest(args: argparse.Namespace) -> dict[str, Any]:
    import pyqwest

    async def main() -> dict[str, Any]:
        transport = pyqwest.HTTPTransport(
            http_version=pyqwest.HTTPVersion.HTTP2,
            max_connections_per_address=1,
            enable_otel=False,
        )
        client = pyqwest.Client(transport)

        async def send(path: str) -> int:
            response = await client.post(args.url + path, HEADERS, BODY)
            return int(response.status)

        return await measure(send, args)

    return run_loop(main, uvloop=True)


def child_rnet(args: argparse.Namespace) -> dict[str, Any]:
    import rnet

    async def main() -> dict[str, Any]:
        client = rnet.Client(http2_only=True, pool_max_size=1)

        async def send(path: str) -> int:
            response = await client.post(args.url + path, headers=dict(HEADERS), body=BODY)
            await response.bytes()
            return int(response.status)

        return await measure(send, args)

    return run_loop(main, uvloop=True)


def child_curl_cffi(args: argparse.Namespace) -> dict[str, Any]:
    from curl_cffi import AsyncSession, CurlHttpVersion

    async def main() -> dict[str, Any]:
        session = AsyncSession(
            max_clients=args.concurrency, http_version=CurlHttpVersion.V2_PRIOR_KNOWLEDGE
        )

        async def send(path: str) -> int:
            response = await session.post(args.url + path, headers=dict(HEADERS), data=BODY)
            return int(response.status_code)

        try:
            return await measure(send, args)
        finally:
            await session.close()

    return run_loop(main, uvloop=False)  # curl_cffi drives its own asyncio integration


def child_niquests(args: argparse.Namespace) -> dict[str, Any]:
    import niquests

    async def main() -> dict[str, Any]:
        session = niquests.AsyncSession(
            multiplexed=True, disable_http1=True, pool_connections=1, pool_maxsize=1
        )

        async def send(path: str) -> int:
            response = await session.post(args.url + path, headers=dict(HEADERS), data=BODY)
            if response.lazy:
                await session.gather(response)
            return int(response.status_code or 0)

        try:
            return await measure(send, args)
        finally:
            await session.close()

    return run_loop(main, uvloop=True)


def run_loop(main: Callable[[], Awaitable[dict[str, Any]]], *, uvloop: bool) -> dict[str, Any]:
    if uvloop:
        import uvloop as uv

        return uv.run(main())  # type: ignore[no-any-return]
    return asyncio.run(main())  # type: ignore[arg-type]


def child(args: argparse.Namespace) -> None:
    name = args.child
    if args.extra_path:
        # After the project's own packages: a bench-only h11 or typing_extensions must not
        # shadow the pinned ones; niquests needs its urllib3-future in front of any urllib3.
        sys.path.append(args.extra_path)
        if name == "niquests":
            sys.path.insert(0, args.extra_path)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "h2client": lambda: child_h2client(args, tuned=False),
        "h2client-tuned": lambda: child_h2client(args, tuned=True),
        "curl": lambda: child_curl(args, uvloop=True),
        "curl-asyncio": lambda: child_curl(args, uvloop=False),
        "pycurl-perform": lambda: child_pycurl_perform(args),
        "pyreqwest": lambda: child_pyreqwest(args),
        "pyqwest": lambda: child_pyqwest(args),
        "rnet": lambda: child_rnet(args),
        "curl_cffi": lambda: child_curl_cffi(args),
        "niquests": lambda: child_niquests(args),
    }
    try:
        result = runners[name]()
    except ImportError as exc:
        result = {"skipped": f"not installed: {exc}"}
    print(json.dumps(result), flush=True)


# ============================================================================ parent


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink(docroot: Path, tokens: int) -> tuple[subprocess.Popen[bytes], str]:
    device = docroot / "3" / "device"
    device.mkdir(parents=True)
    for index in range(tokens):
        (device / token(index)).write_bytes(b"")
    port = free_port()
    sink = subprocess.Popen(
        ["nghttpd", "--no-tls", "-m", "1000", "-d", str(docroot), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sink.kill()
                raise
            time.sleep(0.05)
    return sink, f"http://127.0.0.1:{port}"


def run_child(name: str, url: str, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        name,
        "--url",
        url,
        "--requests",
        str(args.requests),
        "--concurrency",
        str(concurrency),
        "--tokens",
        str(args.tokens),
        "--baseline",
        args.baseline,
    ]
    if args.extra_path:
        command += ["--extra-path", args.extra_path]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.child_timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"failed": " | ".join(tail) or f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_h2load(url: str, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as body:
        body.write(BODY)
    command = ["h2load", "-n", str(args.requests), "-c", "1", "-t", "1", "-m", str(concurrency)]
    for name, value in HEADERS:
        command += ["-H", f"{name}: {value}"]
    command += ["-d", body.name, f"{url}/3/device/{token(0)}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.child_timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(body.name)
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", done.stdout)
    succeeded = re.search(r"(\d+) succeeded, (\d+) failed", done.stdout)
    if not finished or not succeeded:
        return {"failed": done.stdout[-300:] + done.stderr[-300:]}
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "errors": args.requests - int(succeeded.group(1)),
    }


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import pycurl

    nghttpd = subprocess.run(["nghttpd", "--version"], capture_output=True, text=True).stdout
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "pycurl": pycurl.version,
        "nghttpd": nghttpd.strip(),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in rows if "seconds" in r]
    if not good:
        return {"note": (rows[0].get("skipped") or rows[0].get("failed")) if rows else "no run"}
    rates = [r["requests"] / r["seconds"] for r in good]
    cpus = [r["cpu_seconds"] / r["seconds"] for r in good]
    sinks = [r["sink_cpu"] / r["seconds"] for r in good if "sink_cpu" in r]
    return {
        "median_rps": statistics.median(rates),
        "rps": [round(x) for x in rates],
        "median_cpu": statistics.median(cpus),
        "cpu_per_request_us": statistics.median(
            r["cpu_seconds"] / r["requests"] * 1e6 for r in good
        ),
        "median_sink_cpu": statistics.median(sinks) if sinks else None,
        "errors": sum(r["errors"] for r in good),
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"# HTTP/2 clients into nghttpd (h2c), {result['date']}, commit {result['commit']}",
        "",
        f"Machine: {result['machine']['cpus']} CPUs ({result['machine']['cpu_model']}), Python "
        f"{result['machine']['python']}, {result['machine']['pycurl']}, "
        f"{result['machine']['nghttpd']}. Load average before/after: "
        f"{result['loadavg_before']} / {result['loadavg_after']}.",
        f"{result['requests']} POSTs per run, median of {result['runs']} runs; CPU = the "
        "client process's user+system seconds per wall second (1.00 = one core busy).",
        "",
    ]
    for concurrency, table in result["results"].items():
        lines += [
            f"## {concurrency} in flight",
            "",
            "| candidate | requests/s (median) | runs | client CPU | CPU µs/request "
            "| nghttpd CPU | errors |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        for name, row in table.items():
            if "median_rps" not in row:
                lines.append(f"| {name} | - | {row.get('note', '')} | | | | |")
                continue
            sink = f"{row['median_sink_cpu']:.2f}" if row["median_sink_cpu"] is not None else ""
            lines.append(
                f"| {name} | {row['median_rps']:,.0f} | {', '.join(f'{x:,}' for x in row['rps'])}"
                f" | {row['median_cpu']:.2f} | {row['cpu_per_request_us']:.0f} | {sink}"
                f" | {row['errors']} |"
            )
        lines.append("")
    return "\n".join(lines)


def parent(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(BENCH))  # bench/ is not a package
    import harness  # here, not at the top: the candidates' processes run this file too

    lock = harness.one_run_at_a_time(args.lock_wait)  # one benchmark at a time
    candidates = [c for c in args.candidates.split(",") if c]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "commit": commit + ("+changes" if dirty else ""),
        "machine": machine(),
        "requests": args.requests,
        "runs": args.runs,
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "results": {},
    }
    docroot = Path(tempfile.mkdtemp(prefix="h2bench-sink-"))
    sink, url = start_sink(docroot, args.tokens)
    try:
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            rows: dict[str, list[dict[str, Any]]] = {name: [] for name in [*candidates, "h2load"]}
            for run in range(args.runs):
                # Rotate the order so that no candidate always runs first or last.
                order = [*candidates, "h2load"]
                order = order[run % len(order) :] + order[: run % len(order)]
                for name in order:
                    sink_before = process_cpu(sink.pid)
                    if name == "h2load":
                        row = run_h2load(url, concurrency, args)
                    else:
                        row = run_child(name, url, concurrency, args)
                    row["sink_cpu"] = process_cpu(sink.pid) - sink_before
                    row["requests"] = args.requests
                    rows[name].append(row)
                    shown = (
                        f"{args.requests / row['seconds']:,.0f} req/s, cpu "
                        f"{row['cpu_seconds'] / row['seconds']:.2f}"
                        if "seconds" in row
                        else row.get("skipped") or row.get("failed")
                    )
                    print(f"c={concurrency} run {run + 1} {name}: {shown}", flush=True)
            result["results"][str(concurrency)] = {name: summarize(r) for name, r in rows.items()}
    finally:
        sink.terminate()
        sink.wait(5)
        shutil.rmtree(docroot, ignore_errors=True)
    result["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    out = BENCH / "results" / f"h2-clients-{result['date']}-{commit}"
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = report(result)
    out.with_suffix(".md").write_text(text)
    print(text)
    lock.close()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=30_000)
    p.add_argument("--concurrency", default="100,500", help="in flight; comma-separated")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tokens", type=int, default=1000, help="distinct device paths")
    p.add_argument("--candidates", default=",".join(CANDIDATES))
    p.add_argument("--baseline", default="1667a7a", help="commit to take h2client.py from")
    p.add_argument("--extra-path", default="", help="where the non-dependency clients are")
    p.add_argument("--quick", action="store_true", help="5,000 requests, 1 run, 200 in flight")
    p.add_argument("--child-timeout", type=float, default=300.0)
    p.add_argument("--lock-wait", type=float, default=1800.0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.runs, args.concurrency = 5000, 1, "200"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        args.concurrency = int(args.concurrency)
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
