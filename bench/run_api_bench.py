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

import argparse
import contextlib
import copy
import datetime as dt
import gzip
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402  (bench/ is not a package)

HOST = loadgen.LOOPBACK
PUSH_PATH = "/api/v2/notification/user"
SESSION_PATH = "/api/sdk/v1/session"
SEED_FILE = BENCH / "seed_body.json"  # the first sample of shared/spec/targeted-push-api.txt
LUA = BENCH / "wrk_bodies.lua"
PARTNER = "bench"
BATCH = 20  # notifications in the batch body (the API's maximum)
SERVER_START_TIMEOUT = 60.0
GOAL_RPS = 5000
GOAL_CEILING_SHARE = 1 / 3
GOAL_P99_MS = 20.0


# ---------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": _version(["wrk", "-v"]),
        "uvicorn/uvloop/httptools/msgspec": "/".join(
            _dist_version(d) for d in ("uvicorn", "uvloop", "httptools", "msgspec")
        ),
        "commit": _git(["rev-parse", "--short", "HEAD"]),
        "uncommitted changes under src/": ", ".join(
            _git(["diff", "--name-only", "HEAD", "--", "src"]).split()
            + _git(["ls-files", "--others", "--exclude-standard", "--", "src"]).split()
        )
        or "none",
    }


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return (out.stdout + out.stderr).splitlines()[0].split(" Copyright")[0].strip()


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _git(args: list[str]) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


# ---------------------------------------------------------------- bodies


def seed_text() -> str:
    return SEED_FILE.read_text().strip()


def user_identifiers(i: int) -> dict[str, str]:
    return {
        "email": f"user{i}@bench.example",
        "phone_number": f"+6590{i:07d}",
        "uuid": f"bench-{i}",
    }


SEED_IDENTIFIERS = {
    "email": "sample@mail.com",
    "phone_number": "+65123456789",
    "uuid": "1234567890",
}


def session_body(identifiers: dict[str, str], i: int) -> bytes:
    digest = hashlib.sha256(f"device-{i}".encode()).hexdigest()
    ios = i % 2 == 0
    device = {
        "platform": "ios" if ios else "android",
        "device_token": digest if ios else f"fcm{i:08d}:APA91b{digest}{digest[:40]}",
        "environment": "production",
        "udid": f"BENCH-{i:08d}",
        "push_optin": True,
        "location_optin": False,
        "app_version": "4.0",
        "os_version": "17.1" if ios else "14",
        "model": "iPhone 11" if ios else "Pixel 8",
        "carrier": "bench",
        "sdk_version": "1.0",
        "timezone": "Europe/Helsinki",
        "device_language": "en",
        "package_name": "com.example.app",
        "screen_width": 1170,
        "screen_height": 2532,
        "idfa": f"IDFA-{i:08d}",
    }
    attributes = {"name": f"User{i}", "surname": "Bench", "gender": "f", "age": 20 + i % 50}
    return json.dumps(
        {"identifiers": identifiers, "device": device, "attributes": attributes}
    ).encode()


@dataclass
class Bodies:
    seed: list[bytes]  # exactly the spec's first sample, with the partner's api_key
    varied: list[bytes]  # the same body, one per registered user
    batch: list[bytes]  # BATCH notifications, each for a different user


def make_bodies(api_key: str, users: int) -> Bodies:
    text = seed_text()
    template = json.loads(text)
    # json.dumps(indent=4) reproduces the spec's formatting byte for byte; keep it.
    assert json.dumps(template, indent=4) == text, "seed_body.json is not in the spec's format"
    seed = json.dumps({**template, "api_key": api_key}, indent=4).encode()
    notification = template["notifications"][0]

    def with_users(indexes: Sequence[int], kinds: Sequence[str]) -> bytes:
        body = copy.deepcopy(template)
        body["api_key"] = api_key
        body["notifications"] = [
            {
                **notification,
                "identifiers": {
                    f"INSIDER.{k}": v for k, v in user_identifiers(i).items() if k in kinds
                },
            }
            for i in indexes
        ]
        return json.dumps(body, indent=4).encode()

    varied = [with_users([i], ("email", "phone_number", "uuid")) for i in range(users)]
    # A request may name at most 50 identifiers: the batch names each user by two.
    batch = [
        with_users([(k * BATCH + j) % users for j in range(BATCH)], ("email", "uuid"))
        for k in range(max(1, users // BATCH))
    ]
    return Bodies([seed], varied, batch)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def renice_group(pid: int | str, nice: int) -> None:
    """Set the niceness of a process's autogroup. With kernel autogroups on, `nice` only
    ranks processes inside one session; between sessions (this script, each server, other
    people's test runs) the CPU is shared by the autogroups' niceness."""
    if nice:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def pinned(cmd: list[str], cpus: str | None, nice: int = 0) -> list[str]:
    """The command pinned to `cpus` (if given) and run at niceness `nice` (if not 0)."""
    cmd = ["taskset", "-c", cpus, *cmd] if cpus else cmd
    return ["nice", "-n", str(nice), *cmd] if nice else cmd


@dataclass
class Server:
    name: str
    cmd: list[str]
    port: int
    log: Path
    nice: int = 0
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )
        renice_group(self.proc.pid, self.nice)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        url = f"http://{HOST}:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:  # not listening yet (the no-op app answers 200 on any path)
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start in {SERVER_START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# pushgate_delivery_sends_total's outcomes, under the job states that older servers' counters
# (`pushgate_delivery_done`, ...) were named after, so that results of any revision compare.
SEND_OUTCOME_STATES = {
    "accepted": "done",
    "retried": "queued",
    "failed": "failed",
    "expired": "expired",
    "dead": "dead",
}


def pushgate_metrics(port: int) -> dict[str, float]:
    """Queue depth, group commits and delivery counts from pushgate's /metrics: unlabelled
    `pushgate_queue*`, `pushgate_sqlite*`, `pushgate_delivery*` samples, and `delivery_<state>`
    summed over pushgate_delivery_sends_total by outcome."""
    found: dict[str, float] = {}
    url = f"http://{HOST}:{port}/metrics"
    with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name.startswith("pushgate_delivery_sends_total{"):
                outcome = name.partition('outcome="')[2].partition('"')[0]
                key = f"delivery_{SEND_OUTCOME_STATES.get(outcome, outcome)}"
                found[key] = found.get(key, 0.0) + float(value)
            elif "{" not in name and name.startswith(
                ("pushgate_queue", "pushgate_sqlite", "pushgate_delivery")
            ):
                found[name.removeprefix("pushgate_")] = float(value)
    return found


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user+system) of a process: its main thread and all its other threads."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                seconds = (int(fields[11]) + int(fields[12])) / tick
                if task.name == str(pid):
                    main += seconds
                else:
                    other += seconds
    return {"main": main, "other": other}


def descendants(pid: int) -> list[int]:
    """Every process started by `pid`, and by those, and so on (Linux /proc)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    kids = [int(k) for k in (task / "children").read_text().split()]
                    found += kids
                    todo += kids
    return found


def server_cpu_seconds(pid: int) -> dict[str, float]:
    """`cpu_seconds` of the server with its child processes (delivery workers, the emulators
    of `serve --emulate`) counted in "other": all of it is the server's work."""
    own = cpu_seconds(pid)
    for child in descendants(pid):
        own["other"] += sum(cpu_seconds(child).values())
    return own


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    """CPU seconds all processes have used since boot (every CPU, not idle or iowait)."""
    with contextlib.suppress(OSError, ValueError):
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _cores_busy(pid: int, seconds: float) -> tuple[float, float]:
    """Cores used over `seconds` by the whole machine, and by process `pid`."""
    m0, p0 = machine_busy(), sum(cpu_seconds(pid).values())
    time.sleep(seconds)
    return (machine_busy() - m0) / seconds, (sum(cpu_seconds(pid).values()) - p0) / seconds


def settle(pid: int, limit: float = 60.0) -> None:
    """Wait (bounded) until the server has worked off what the last run left queued."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if _cores_busy(pid, 0.5)[1] < 0.05:
            return


def wait_quiet(limit: float, pid: int, threshold: float = 0.25) -> float:
    """Wait (at most `limit` s) until other processes leave the CPUs nearly idle, so that
    a run measures the server rather than a neighbour. Returns the cores other
    processes were using when the wait ended."""
    deadline = time.monotonic() + limit
    while True:
        machine_cores, server_cores = _cores_busy(pid, 1.0)
        others = max(0.0, machine_cores - server_cores)
        if others < threshold or time.monotonic() >= deadline:
            return round(others, 2)


# ---------------------------------------------------------------- measuring


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int
    server_cpu: float  # cores used by the server process, all threads, and its child processes
    server_main_cpu: float  # ... by its event-loop thread
    loadgen_cpu: float  # cores used by the load generator
    other_cpu: float  # cores used by every other process on the machine meanwhile
    background_before: float  # cores busy on the machine just before the run
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    key: str
    title: str
    server: str  # "no-op" or "pushgate"
    kind: str  # "closed" (wrk) or "open" (loadgen at a fixed rate)
    body: str  # "seed", "varied" or "batch"
    notifications: int = 1  # per request
    rate: float | None = None  # open loop: requests/s offered
    role: str = "all"  # pushgate's --role: "all" (API and delivery) or "api"
    runs: list[Run] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # pushgate's /metrics at the end

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs) if self.runs else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.python = sys.executable
        self.argv: list[str] = []
        self.registration: dict[str, Any] = {}
        self.env: dict[str, str] = dict(os.environ)
        self.src = REPO / "src"
        self.noop_app = BENCH / "noop_app.py"
        self.server_cpus = "0" if args.pin else None
        self.loadgen_cpus = "1" if args.pin else None

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    # servers
    def noop_server(self) -> Server:
        port = free_port()
        cmd = [self.python, str(self.noop_app), "--port", str(port)]
        return Server(
            "no-op",
            pinned(cmd, self.server_cpus, self.args.nice),
            port,
            self.work / "noop.log",
            self.args.nice,
        )

    def pushgate_server(self, data_dir: Path, role: str = "all") -> Server:
        port = free_port()
        cmd = [
            self.python,
            "-m",
            "pushgate.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--emulate",
            "--role",
            role,
        ]
        return Server(
            "pushgate",
            pinned(cmd, self.server_cpus, self.args.nice),
            port,
            self.work / "pushgate.log",
            self.args.nice,
            self.env,
        )

    def snapshot_src(self) -> None:
        """Serve a copy of src/ taken now: edits made to src/ during the run (someone else
        may be working in this tree) cannot mix two versions into one result."""
        self.src = self.work / "src"
        if self.args.rev:  # exactly a commit's src/, whatever the working tree holds
            archive = subprocess.run(
                ["git", "archive", "--format=tar", self.args.rev, "src", "bench/noop_app.py"],
                cwd=REPO,
                capture_output=True,
                timeout=60,
                check=True,
            )
            subprocess.run(
                ["tar", "-x", "-C", str(self.work)], input=archive.stdout, timeout=60, check=True
            )
            self.noop_app = self.work / "bench" / "noop_app.py"  # served the way REV serves
        else:
            shutil.copytree(
                self.args.src, self.src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        path = os.environ.get("PYTHONPATH")
        self.env = {
            **os.environ,
            "PYTHONPATH": str(self.src) + (os.pathsep + path if path else ""),
            # The processes answering the API, the same in every bench built on this one (a
            # served version without the setting ignores it): one unless --api-processes.
            "PUSHGATE_API_PROCESSES": str(getattr(self.args, "api_processes", 1)),
        }
        check = subprocess.run(
            [self.python, "-c", "import pushgate; print(pushgate.__file__)"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=True,
        )
        if not check.stdout.strip().startswith(str(self.src)):
            raise RuntimeError(f"the snapshot of src/ is not what runs: {check.stdout}")

    def pushgate_cli(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [self.python, "-m", "pushgate.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env=self.env,
        )
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def fresh_copy(self, name: str) -> Path:
        target = self.work / f"data-{name}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self.template, target)
        return target

    # setup
    def setup(self) -> Bodies:
        self.snapshot_src()
        self.template = self.work / "template"
        secrets = self.pushgate_cli(
            "partners",
            "create",
            PARTNER,
            "--data-dir",
            str(self.template),
            "--emulator-credentials",
        )
        self.pushgate_cli(
            "partners",
            "update",
            PARTNER,
            "--data-dir",
            str(self.template),
            "--rate-limit",
            "100000000",
            "--advanced-rate-limit",
            "100000000",
        )
        users = self.args.users
        sessions = [session_body(SEED_IDENTIFIERS, users)] + [
            session_body(user_identifiers(i), i) for i in range(users)
        ]
        bodies = make_bodies(secrets["api_key"], users)
        with serving(self.pushgate_server(self.template)) as server:
            requests = [
                loadgen.build_request(
                    SESSION_PATH, b, server.port, [("X-SDK-KEY", secrets["sdk_key"])]
                )
                for b in sessions
            ]
            started = time.perf_counter()
            result, _ = loadgen.run(loadgen.closed_loop(server.port, requests, 32))
            took = time.perf_counter() - started
            if result["statuses"] != {"200": len(sessions)}:
                raise RuntimeError(f"registration failed: {result['statuses']}")
            self.log(
                f"registered {len(sessions)} users with devices in {took:.1f} s"
                f" ({len(sessions) / took:.0f} sessions/s)"
            )
            self.registration = {"sessions": len(sessions), "seconds": round(took, 1)}
            # Every scenario's body must really send: check one answer of each.
            checks = [
                ("seed", bodies.seed[0], 1),
                ("varied", bodies.varied[-1], 1),
                ("batch", bodies.batch[0], BATCH),
            ]
            for name, body, expected in checks:
                req = loadgen.build_request(PUSH_PATH, body, server.port)
                result, answers = loadgen.run(
                    loadgen.closed_loop(server.port, [req], 1, keep_bodies=True)
                )
                answer = json.loads(answers[0]) if answers else {}
                got = len(answer.get("successes", ()))
                if result["statuses"] != {"200": 1} or got != expected:
                    raise RuntimeError(f"{name} body: {result['statuses']} {answer}")
            self.log("each body's answer lists every notification under successes")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                metrics = pushgate_metrics(server.port)
                if metrics.get("queue_depth", 1) == 0:
                    break
                time.sleep(0.5)
            self.log(f"delivery through the emulators: {metrics}")
            if metrics.get("queue_depth", 1) != 0:
                raise RuntimeError("the check pushes were not delivered in 30 s")
        return bodies

    # one closed-loop (wrk) measurement
    def wrk(self, port: int, path: str, bodies_file: Path, seconds: float) -> dict[str, Any]:
        cmd = [
            "wrk",
            f"-t{self.args.threads}",
            f"-c{self.args.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-s",
            str(LUA),
            f"http://{HOST}:{port}{path}",
            "--",
            str(bodies_file),
        ]
        stdout = self.load_tool(cmd, seconds + 60)
        line = [x for x in stdout.splitlines() if x.startswith("{")][-1]
        return json.loads(line)  # type: ignore[no-any-return]

    def openloop(
        self, port: int, path: str, bodies_file: Path, seconds: float, rate: float
    ) -> dict[str, Any]:
        cmd = [
            self.python,
            str(BENCH / "loadgen.py"),
            "--port",
            str(port),
            "--path",
            path,
            "--bodies",
            str(bodies_file),
            "--rate",
            str(rate),
            "--duration",
            str(seconds),
        ]
        stdout = self.load_tool(cmd, seconds + 60)
        return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def load_tool(self, cmd: list[str], timeout: float) -> str:
        """Run a load generator in its own session (so its autogroup can be reniced)."""
        proc = subprocess.Popen(
            pinned(cmd, self.loadgen_cpus, self.args.nice),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        renice_group(proc.pid, self.args.nice)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {stderr[-2000:]}")
        return stdout

    def measure(self, scenario: Scenario, server: Server, bodies_file: Path) -> None:
        path = "/" if scenario.server == "no-op" else PUSH_PATH

        def tool(seconds: float) -> dict[str, Any]:
            if scenario.kind == "closed":
                return self.wrk(server.port, path, bodies_file, seconds)
            assert scenario.rate is not None
            return self.openloop(server.port, path, bodies_file, seconds, scenario.rate)

        tool(self.args.warmup)
        for n in range(self.args.runs):
            settle(server.pid)
            background = wait_quiet(self.args.quiet_wait, server.pid)
            cpu0, gen0, sys0 = server_cpu_seconds(server.pid), children_cpu(), machine_busy()
            t0 = time.perf_counter()
            raw = tool(self.args.duration)
            wall = time.perf_counter() - t0
            cpu1, gen1, sys1 = server_cpu_seconds(server.pid), children_cpu(), machine_busy()
            busy = (cpu1["main"] - cpu0["main"] + cpu1["other"] - cpu0["other"]) / wall
            main = (cpu1["main"] - cpu0["main"]) / wall
            loadgen_cpu = (gen1 - gen0) / wall
            others = max(0.0, (sys1 - sys0) / wall - busy - loadgen_cpu)
            common = {
                "server_cpu": busy,
                "server_main_cpu": main,
                "loadgen_cpu": loadgen_cpu,
                "other_cpu": others,
                "background_before": background,
                "extra": raw,
            }
            if scenario.kind == "closed":
                failures = ("connect_errors", "read_errors", "write_errors", "status_errors")
                run = Run(
                    rps=raw["requests"] / (raw["duration_us"] / 1e6),
                    p50_ms=raw["p50_us"] / 1000,
                    p99_ms=raw["p99_us"] / 1000,
                    p999_ms=raw["p999_us"] / 1000,
                    max_ms=raw["max_us"] / 1000,
                    errors=sum(raw[k] for k in failures) + raw["timeouts"],
                    **common,
                )
            else:
                run = Run(
                    rps=raw["rps"],
                    p50_ms=raw["p50_ms"],
                    p99_ms=raw["p99_ms"],
                    p999_ms=raw["p999_ms"],
                    max_ms=raw["max_ms"],
                    errors=raw["errors"] + raw["non_2xx"],
                    **common,
                )
            scenario.runs.append(run)
            self.log(
                f"  {scenario.key} run {n + 1}/{self.args.runs}: {run.rps:,.0f} req/s"
                f"  p50 {run.p50_ms:.2f} ms  p99 {run.p99_ms:.2f} ms  errors {run.errors}"
                f"  server CPU {run.server_cpu:.2f} (loop thread {run.server_main_cpu:.2f})"
                f"  load generator {run.loadgen_cpu:.2f}  other processes {run.other_cpu:.2f}"
            )

    def run_scenario(self, scenario: Scenario, bodies_file: Path) -> None:
        self.log(f"{scenario.title}: warm-up {self.args.warmup} s, {self.args.runs} runs")
        if scenario.server == "no-op":
            server = self.noop_server()
        else:
            server = self.pushgate_server(self.fresh_copy(scenario.key), scenario.role)
        with serving(server):
            self.measure(scenario, server, bodies_file)
            if scenario.server == "pushgate":
                settle(server.pid)
                scenario.metrics = pushgate_metrics(server.port)
                self.log(f"  at the end: {scenario.metrics}")

    def profile(self, bodies_file: Path, out_stem: Path) -> dict[str, Any]:
        """py-spy on pushgate (--role all, then --role api) under the closed-loop load of
        `bodies_file` (`profile_server`)."""
        found: dict[str, Any] = {}
        for role in ("all", "api"):
            server = self.pushgate_server(self.fresh_copy(f"profile-{role}"), role)
            with serving(server):
                summary = self.profile_server(server, bodies_file, out_stem, role)
            if summary:
                found[role] = summary
        return found

    def profile_server(
        self, server: Server, bodies_file: Path, out_stem: Path, name: str, native: bool = True
    ) -> dict[str, Any]:
        """py-spy on a started server under wrk's closed loop of `bodies_file`: every thread
        that is not idle, with native frames (`native`), so that time in C code that runs
        without the GIL (SQLite) shows as well as Python's; without them py-spy tells idle
        threads better (threads blocked in C, such as a pool's, count as busy with them).
        py-spy pauses the process for each sample, so the rate while profiled is lower.
        Writes `<out_stem>-<name>.txt.gz`; returns its summary ({} without py-spy)."""
        spy = shutil.which("py-spy") or str(Path(self.python).parent / "py-spy")
        if not Path(spy).exists():
            self.log("py-spy not found (pip install py-spy): no profile")
            return {}
        seconds = int(self.args.duration)
        raw = self.work / f"profile-{name}.txt"
        self.wrk(server.port, PUSH_PATH, bodies_file, self.args.warmup)
        spy_cmd = [spy, "record", "--pid", str(server.pid), "--duration", str(seconds)]
        spy_cmd += ["--rate", "100", "--format", "raw", "--threads"]
        spy_cmd += ["--native"] if native else []
        spy_cmd += ["--subprocesses"]  # the emulators and delivery children too
        spy_cmd += ["--output", str(raw)]
        spy_proc = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        load = self.wrk(server.port, PUSH_PATH, bodies_file, seconds)
        try:
            spy_proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            spy_proc.kill()
            spy_proc.wait()
        if not raw.exists():
            self.log("py-spy wrote no profile (is ptrace permitted?)")
            return {}
        out = out_stem.with_name(f"{out_stem.name}-{name}.txt.gz")
        out.write_bytes(gzip.compress(raw.read_bytes()))
        summary = summarise_profile(raw.read_text().splitlines())
        summary["rps_while_profiled"] = round(load["requests"] / (load["duration_us"] / 1e6))
        summary["file"] = out.name
        summary["native"] = native
        self.log(f"  profile of {name}: {summary['samples']} samples in {out}")
        return summary


# ---------------------------------------------------------------- profile summary


def summarise_profile(lines: Sequence[str], top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function from py-spy's collapsed stacks."""
    total = 0
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    threads: dict[str, int] = {}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        threads[thread] = threads.get(thread, 0) + count
        frames = [f for f in frames if not f.startswith(("thread", "process"))]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for f in set(frames):
            if "pushgate/" in f:  # what this project can change
                inclusive[f] = inclusive.get(f, 0) + count

    def table(d: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return [(name, round(100 * n / total, 1)) for name, n in ranked] if total else []

    return {
        "samples": total,
        "threads": table(threads),
        "self": table(own),
        "inclusive": table(inclusive),
    }


# ---------------------------------------------------------------- report


def profile_lines(title: str, prof: dict[str, Any]) -> list[str]:
    """A profile summary (`summarise_profile`) as a report section."""
    lines = [
        f"## Profile of {title}",
        "",
        f"{prof['samples']:,} samples at 100 Hz of threads not idle"
        + (", native frames included" if prof.get("native", True) else ", Python frames only")
        + f", while serving {fmt_rps(prof['rps_while_profiled'])} requests/s (py-spy"
        " pauses the process to sample); collapsed stacks in"
        f" `{prof['file']}` (gzip; for flamegraph tools). Share of samples by thread:",
        "",
        "| thread | % |",
        "| --- | ---: |",
        *(f"| `{n}` | {p} |" for n, p in prof["threads"]),
        "",
        "| function (self) | % | pushgate function (inclusive) | % |",
        "| --- | ---: | --- | ---: |",
    ]
    for (sn, sp), (iname, ip) in zip(prof["self"], prof["inclusive"], strict=False):
        lines.append(f"| `{sn}` | {sp} | `{iname}` | {ip} |")
    return [*lines, ""]


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}"


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


LOCK_FILE = Path(tempfile.gettempdir()) / "pushgate-api-bench.lock"


def one_run_at_a_time(wait: float) -> Any:
    """Take the machine-wide benchmark lock, waiting (at most `wait` s) for a run of this
    script that holds it: two runs at once would each measure the other's load."""
    import fcntl

    handle = LOCK_FILE.open("a")
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except OSError:
            if time.monotonic() >= deadline:
                sys.exit(f"another benchmark run holds {LOCK_FILE}; gave up after {wait:.0f} s")
            if not told:
                print(f"waiting for another benchmark run to finish ({LOCK_FILE})", flush=True)
                told = True
            time.sleep(5)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before the runs")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--connections", type=int, default=32, help="wrk connections")
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--rate", type=float, default=2000.0, help="open-loop requests/s")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="seconds to wait, at most, before each run for other processes to leave the CPUs idle",
    )
    p.add_argument("--pin", action="store_true", help="server on CPU 0, load generator on CPU 1")
    p.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="pushgate's PUSHGATE_API_PROCESSES (default 1: one process answers)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness (and autogroup niceness) of servers and load generators, e.g. -10 on"
        " a machine shared with other work; needs root",
    )
    p.add_argument("--profile", action="store_true", help="also profile pushgate with py-spy")
    p.add_argument("--quick", action="store_true", help="2 runs of 3 s, 1,000 users: a smoke run")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument(
        "--src",
        type=Path,
        default=REPO / "src",
        help="the source tree to serve pushgate from (a copy is taken at the start), e.g."
        " another checkout's src/ to compare two versions",
    )
    p.add_argument(
        "--rev",
        default=None,
        help="serve pushgate from this commit's src/ (git archive), e.g. HEAD, ignoring"
        " uncommitted changes",
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, logs)")
    p.add_argument(
        "--lock-wait",
        type=float,
        default=1800.0,
        help="seconds to wait for another run of this script to finish before giving up",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup, args.users = 2, 3.0, 1.0, 1000
    if not (1 <= args.runs <= 20 and 1 <= args.duration <= 60 and 0 < args.warmup <= 30):
        p.error("runs must be 1..20, duration 1..60 s, warm-up up to 30 s")
    if not (BATCH <= args.users <= 200_000 and 1 <= args.connections <= 1000):
        p.error(f"users must be {BATCH}..200000 and connections 1..1000")
    if not -20 <= args.nice <= 19:
        p.error("nice must be -20..19")
    return args


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
    if args.rev:
        info["served commit"] = _git(["rev-parse", "--short", args.rev])
        info["uncommitted changes under src/"] = "not served (--rev)"
    bench.log(f"work dir {work}; machine: {info['nproc']} x {info['cpu']}")
    # One set of files per day and version: runs of other commits on the same day keep theirs.
    served = info.get("served commit") or info["commit"] or "unknown"
    dirty = not args.rev and info["uncommitted changes under src/"] != "none"
    stem = (
        f"api-{dt.date.today().isoformat()}-{served}"
        + ("-dirty" if dirty else "")
        + ("-quick" if args.quick else "")
    )
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
