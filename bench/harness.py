"""What the benchmark scripts share (bench/ is not a package: each script imports this module
by name, as Python puts a script's own directory on its path): the machine's facts and its quiet
before a run, CPU accounting from /proc, one run at a time, `pushgate serve` as a process
(`Server`, `serving`), the API bench's set-up (`Bench`: a data dir with a partner and registered
users, request bodies, wrk and loadgen runs), py-spy summaries, and the standalone emulators
(`Emulator`) the delivery-side benches deliver to.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gzip
import hashlib
import json
import os
import platform
import re
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


def _lineage() -> set[int]:
    """This process and its ancestors (their command lines may name anything)."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def processes_matching(pattern: re.Pattern[str], width: int = 120) -> list[str]:
    """Processes whose command line `pattern` finds (what `pgrep -f` would), this script and
    its ancestors aside: test runs and other benchmarks sharing the machine."""
    mine, found = _lineage(), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if pattern.search(cmd):
                found.append(f"{proc.name} {cmd.strip()[:width]}")
    return found


def write_results(out: Path, stem: str, text: str, raw: dict[str, Any]) -> None:
    """A run's report (`stem`.md) and its figures (`stem`.json) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix, content in ((".md", text), (".json", json.dumps(raw, indent=1))):
        (out / (stem + suffix)).write_text(content)


def result_stem(kind: str, info: dict[str, str], rev: str | None, *tags: str) -> str:
    """The name of a run's result files, `<kind>-<date>-<served commit>[-dirty][-<tag>...]`
    (one set per day and version: runs of other commits the same day keep theirs); with
    `rev`, notes in `info` that this commit's src/ was served, whatever the tree holds."""
    if rev:
        info["served commit"] = _git(["rev-parse", "--short", rev])
        info["uncommitted changes under src/"] = "not served (--rev)"
    served = info.get("served commit") or info["commit"] or "unknown"
    dirty = not rev and info["uncommitted changes under src/"] != "none"
    parts = [kind, datetime.date.today().isoformat(), served, *(["dirty"] if dirty else []), *tags]
    return "-".join(p for p in parts if p)


def wait_for_none(
    pattern: re.Pattern[str], limit: float, poll: float, log: Any, what: str
) -> float:
    """Wait (polling every `poll` s, at most `limit` s) until no process matches `pattern`
    (processes_matching); returns the seconds waited."""
    started = time.monotonic()
    told = False
    while (found := processes_matching(pattern)) and time.monotonic() - started < limit:
        if not told:
            log(f"waiting for {len(found)} {what} to finish: {found[0]}")
            told = True
        time.sleep(poll)
    if found:
        log(f"still running after {limit:.0f} s, going on: {found[0]}")
    return round(time.monotonic() - started, 1)


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
    """The API bench's options (bench/run_api_bench.py), which the other benches reuse."""
    p = argparse.ArgumentParser(description="Benchmark of the Targeted Push API (run_api_bench)")
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


STATS_ENV = "PUSHGATE_CAMPAIGN_STATS"


DB_FILE = "pushgate.sqlite3"  # pushgate.store.sqlite.DB_FILENAME


# The seed's "ttl": 1 would expire jobs queued ahead of the worker; a day outlasts any run.
DELIVERY_TTL = 86_400


DRAIN_LIMIT = 600.0  # seconds a worker may take to empty its queue


class Emulator(Server):
    """`pushgate emulate` as its own process; it has no /healthz, so it is ready when its
    control routes answer."""

    info: dict[str, Any]

    def start(self) -> None:
        options: dict[str, Any] = {"env": self.env, "start_new_session": True}  # for --nice
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, **options)
        renice_group(self.proc.pid, self.nice)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while self.proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                self.info = json.loads(self.control("GET", "/info"))
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pushgate emulate did not start: {self.tail()}")

    def control(self, method: str, route: str) -> bytes:
        url = f"http://{HOST}:{self.port}/emulator/v1{route}"
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.read()  # type: ignore[no-any-return]

    def provider_env(self, data_dir: Path) -> dict[str, str]:
        """The environment pointing `pushgate serve` at these emulators (as
        tests/e2e/conftest.py's `serve_against` does)."""
        urls = {
            "APNS_URL": ("apns", "url"),
            "APNS_SANDBOX_URL": ("apns", "sandbox_url"),
            "FCM_URL": ("fcm", "url"),
            "FCM_TOKEN_URL": ("fcm", "token_url"),
            "HMS_URL": ("hms", "url"),
            "HMS_TOKEN_URL": ("hms", "token_url"),
        }
        env = {f"PUSHGATE_{name}": self.info[p][k] for name, (p, k) in urls.items()}
        env["PUSHGATE_PROVIDER_CA_FILE"] = str(data_dir / "emulator-ca" / "emulator-ca.pem")
        return env


def with_ttl(body: bytes, ttl: int) -> bytes:
    doc = json.loads(body)
    for n in doc["notifications"]:
        n["ttl"] = ttl
    return json.dumps(doc, indent=4).encode()


QUEUE_DEPTH = "SELECT count(*) FROM jobs WHERE state IN ('queued', 'leased')"


def api_args(args: argparse.Namespace) -> argparse.Namespace:
    """run_api_bench's options, for its Bench: one run per server start."""
    given = ["--runs", "1", "--duration", str(args.duration), "--warmup", str(args.warmup)]
    given += ["--users", str(args.users), "--nice", str(args.nice)]
    given += ["--quiet-wait", str(args.quiet_wait)]
    given += ["--rev", args.rev] if args.rev else []
    return parse_args(given)


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"
