"""Delivery at line rate: the worker role draining queued jobs into nghttpd, against h2load.

Item 1 of the issue "Delivery at line rate". One script, bounded in time, that:

1. makes a data dir with one partner (`pushgate partners create`, rate limits raised),
   uploads an APNs .p8 key, a Firebase service account and a Huawei app through the
   credential endpoints, and registers `--jobs` users per platform (one device each: iOS,
   Android, Huawei) through `POST /api/sdk/v1/session`, all on `pushgate serve --role api`;
2. per platform, queues one push per user through the API (`POST /api/v2/notification/user`,
   bodies of 20 notifications, `--role api`, no worker) into a copy of that data dir;
3. per run and platform, starts `pushgate serve --role worker` (no emulators) on a fresh copy
   of the queued data dir, pointed at nghttpd over h2c (`PUSHGATE_APNS_URL=http://...`,
   `PUSHGATE_FCM_URL`, `PUSHGATE_HMS_URL`), which answers 200 with a file per APNs device
   token, FCM's `{"name": ...}` and HMS's `{"code": "80000000", ...}`; the FCM and HMS
   access tokens come from a tiny HTTP/1.1 token server in this script. The drain is timed
   from the worker's first claim to the last settled job (sends/s), with the CPU of the
   worker and of nghttpd; every job must end `done`, or the script fails;
4. in the same round, h2load into the same nghttpd with the same request shape (POST, the
   same headers, a body of the same size, one connection, 100 streams): the ceiling;
5. writes bench/results/delivery-<date>-<commit>.md (`-dirty` when src/ had uncommitted
   changes) with the machine, medians and every run, and the raw figures in a .json beside it.

    . .venv/bin/activate && python bench/run_delivery_bench.py           # about 3-5 minutes
    python bench/run_delivery_bench.py --quick                            # under a minute
    python bench/run_delivery_bench.py --platform ios --runs 3 --rev HEAD

`nghttpd` and `h2load` come from Debian's nghttp2 packages (apt-get install -y nghttp2-server
nghttp2-client). It shares run_api_bench's lock (one benchmark at a time). Traffic goes to
127.0.0.1 only; every process it starts is stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import loadgen  # noqa: E402  (bench/ is not a package)

HOST = harness.HOST  # 127.0.0.1: the only address this script sends to
PLATFORMS = ("ios", "android", "huawei")
PARTNER = "bench"
DB_FILE = "pushgate.sqlite3"  # pushgate.store.sqlite.DB_FILENAME
BATCH = harness.BATCH  # notifications per push request (the API's maximum)
DELIVERY_TTL = 86_400  # the seed's "ttl": 1 would expire jobs before the worker starts
# Credentials (made up; only the formats matter to pushgate and nothing checks them here).
BUNDLE_ID = "com.example.bench"
APNS_KEY_ID = "BENCHKEY01"
APNS_TEAM_ID = "BENCHTEAM1"
FCM_PROJECT = "bench-project"
HMS_APP_ID = "104000001"
ACCESS_TOKEN = {"access_token": "x", "expires_in": 3600, "token_type": "Bearer"}
HMS_SUCCESS = {"code": "80000000", "msg": "Success", "requestId": "1"}
SINK_STREAMS = 100  # nghttpd's default SETTINGS_MAX_CONCURRENT_STREAMS; h2load -m the same
# Bounds: no step may hang the machine.
DRAIN_LIMIT = 300.0  # seconds a worker may take to settle its jobs (default; --drain-limit)
H2LOAD_LIMIT = 120.0  # seconds an h2load run may take
STOP_LIMIT = 30.0  # seconds a pushgate process gets to stop on SIGINT before SIGKILL
CLAIM_POLL = 0.002  # seconds between looks for the first claim (an index lookup)
SETTLE_POLL = 0.01  # seconds between looks at the queue depth while the worker drains
QUIET = 0.2  # other processes above this many cores make a run read low (run_api_bench)
# The goals of the issue (item 4), shown for information.
GOAL_SENDS = 10_000
GOAL_RATIO = 0.10
DEPTH = "SELECT count(*) FROM jobs WHERE state IN ('queued', 'leased')"
# Whether any job is left: one step into the partial index, where counting it walks every entry
# (the poller used 0.13-0.15 cores with 60,000 jobs, taken from the worker it measures).
LEFT = "SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('queued', 'leased'))"
# A claim moves a job's due_at to the end of its lease (docs/architecture.md), so the largest
# due_at among unsettled jobs jumps into the future at the first claim: one index lookup.
LEASE_END = "SELECT max(due_at) FROM jobs WHERE state IN ('queued', 'leased')"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- users, tokens, bodies


def email(platform: str, i: int) -> str:
    return f"{platform}{i}@bench.example"


def token_for(platform: str, i: int) -> str:
    digest = hashlib.sha256(f"{platform}-device-{i}".encode()).hexdigest()
    if platform == "ios":
        return digest  # 64 hex digits, as APNs device tokens
    if platform == "android":
        return f"fcm{i:08d}:APA91b{digest}{digest[:40]}"
    return f"IQAAAACy0{i:08d}{digest}{digest[:50]}"  # an HMS token's length (~130)


def session_body(platform: str, i: int) -> bytes:
    device = {
        "platform": platform,
        "device_token": token_for(platform, i),
        "environment": "production",
        "udid": f"BENCH-{platform}-{i:08d}",
        "push_optin": True,
        "app_version": "4.0",
        "os_version": {"ios": "17.1", "android": "14", "huawei": "12"}[platform],
        "model": {"ios": "iPhone 11", "android": "Pixel 8", "huawei": "P60"}[platform],
        "sdk_version": "1.0",
        "package_name": BUNDLE_ID,
    }
    return json.dumps(
        {
            "identifiers": {"email": email(platform, i), "uuid": f"bench-{platform}-{i}"},
            "device": device,
            "attributes": {"name": f"User{i}", "surname": "Bench"},
        }
    ).encode()


def push_bodies(api_key: str, platform: str, users: int) -> list[bytes]:
    """One push per user of `platform`, BATCH notifications per body: the seed notification
    (bench/seed_body.json, the spec's first sample) with its ttl raised to a day."""
    template = json.loads(harness.seed_text())
    notification = {**template["notifications"][0], "ttl": DELIVERY_TTL}
    bodies = []
    for start in range(0, users, BATCH):
        body = {**template, "api_key": api_key}
        body["notifications"] = [
            {
                **notification,
                "identifiers": {
                    "INSIDER.email": email(platform, i),
                    "INSIDER.uuid": f"bench-{platform}-{i}",
                },
            }
            for i in range(start, min(users, start + BATCH))
        ]
        bodies.append(json.dumps(body, indent=4).encode())
    return bodies


# ---------------------------------------------------------------- credentials


def apns_key_pem() -> str:
    """A new .p8 key: EC P-256, PKCS#8 PEM, as Apple hands it out."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def apns_bearer(private_key_pem: str) -> str:
    """A provider token as pushgate signs one (ES256, kid, iss, iat): the h2load requests
    carry an authorization header of the same size."""
    import jwt

    return jwt.encode(
        {"iss": APNS_TEAM_ID, "iat": int(time.time())},
        private_key_pem,
        algorithm="ES256",
        headers={"kid": APNS_KEY_ID, "typ": None},
    )


def fcm_service_account(token_uri: str) -> dict[str, str]:
    """A service-account JSON (RSA-2048) whose token_uri is this script's token server (the
    fields of pushgate.emulators.credentials.generate_fcm_service_account)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": FCM_PROJECT,
        "private_key_id": hashlib.sha1(pem.encode()).hexdigest(),
        "private_key": pem,
        "client_email": f"bench@{FCM_PROJECT}.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


class TokenServer:
    """HTTP/1.1 on 127.0.0.1: every POST gets an access token (FCM's token_uri, HMS's
    token URL). Runs on a thread of this script; it is asked once per credential and run."""

    def __init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = json.dumps(ACCESS_TOKEN).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                server.requests += 1

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.httpd.server_address[1]}/token"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- processes


class Processes:
    """Every process this script starts, each in a session of its own; `kill_all` ends the
    ones still running (by their process group id, which is their own pid)."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def popen(self, cmd: list[str], log_file: Path, env: dict[str, str] | None = None) -> Any:
        with log_file.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.started.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
        if proc.returncode is not None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.returncode is None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)


def group_cpu(pgid: int) -> dict[str, float]:
    """CPU seconds (user+system) of every process in process group `pgid`: the worker and any
    delivery processes it starts (each started here leads a session, and so a group, of its
    own). "main": their main threads (event loops); "other": their other threads; and how
    many processes there were."""
    tick = os.sysconf("SC_CLK_TCK")
    total = main = 0.0
    processes = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            processes += 1
            total += (int(fields[11]) + int(fields[12])) / tick
            thread = (entry / "task" / entry.name / "stat").read_text().rsplit(")", 1)[1].split()
            main += (int(thread[11]) + int(thread[12])) / tick
    return {"main": main, "other": total - main, "processes": processes}


def wait_listening(port: int, proc: Any, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {limit:.0f} s")


def http_json(method: str, port: int, path: str, body: Any, headers: dict[str, str]) -> Any:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


# ---------------------------------------------------------------- measuring


@dataclass
class Drain:
    rate: float  # sends/s: jobs / (last settle - first claim)
    jobs: int
    seconds: float
    worker_cores: float  # all threads of the worker's processes
    worker_main_cores: float  # their main (event-loop) threads
    worker_processes: int  # processes in the worker's group (PUSHGATE_WORKERS, if supported)
    cpu_us: float  # CPU time of the worker's processes per job, µs
    sink_cores: float  # nghttpd
    poller_cores: float  # this script (polling SQLite)
    others: float  # every other process on the machine
    background_before: float  # cores others used just before the run
    loadavg: str
    startup_s: float  # from spawning the worker to its first claim
    end_source: str  # "finished_at" (the jobs' own times) or "poll"
    states: dict[str, int]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Ceiling:
    rate: float  # h2load's req/s
    requests: int
    seconds: float
    h2load_cores: float
    sink_cores: float
    others: float
    background_before: float


@dataclass
class PlatformRuns:
    platform: str
    queued: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)  # the h2load request's shape
    drains: list[Drain] = field(default_factory=list)
    ceilings: list[Ceiling] = field(default_factory=list)

    def median(self, kind: str, attr: str) -> float:
        runs = self.drains if kind == "drain" else self.ceilings
        return statistics.median(getattr(r, attr) for r in runs) if runs else 0.0

    @property
    def ratio(self) -> float:
        ceiling = self.median("ceiling", "rate")
        return self.median("drain", "rate") / ceiling if ceiling else 0.0


class DeliveryBench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.python = sys.executable
        self.procs = Processes()
        self.env: dict[str, str] = {}
        self.secrets: dict[str, Any] = {}
        self.registration: dict[str, Any] = {}
        self.tokens: TokenServer | None = None
        self.apns_key = ""
        self.sink: Any = None
        self.sink_port = 0
        self.docroot = work / "sink"
        self.template = work / "template"
        self.queued: dict[str, Path] = {}
        self.results = {p: PlatformRuns(p) for p in args.platforms}
        self.profiles: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ set-up

    def snapshot_src(self) -> None:
        """Serve a copy of src/ taken now (others edit this tree while the script runs), or
        with --rev exactly that commit's src/ (git archive)."""
        src = self.work / "src"
        if self.args.rev:
            archive = subprocess.run(
                ["git", "archive", "--format=tar", self.args.rev, "src"],
                cwd=REPO,
                capture_output=True,
                timeout=60,
                check=True,
            )
            subprocess.run(
                ["tar", "-x", "-C", str(self.work)], input=archive.stdout, timeout=60, check=True
            )
        else:
            shutil.copytree(
                REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        # No PUSHGATE_* of the caller's shell: each process gets exactly the variables below.
        base = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
        path = base.get("PYTHONPATH")
        self.env = {**base, "PYTHONPATH": str(src) + (os.pathsep + path if path else "")}
        if self.args.webhook:  # the receiver is on loopback
            self.env["PUSHGATE_WEBHOOK_ALLOW_NETWORKS"] = "127.0.0.0/8"
        check = subprocess.run(
            [self.python, "-c", "import pushgate; print(pushgate.__file__)"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=True,
        )
        if not check.stdout.strip().startswith(str(src)):
            raise RuntimeError(f"the snapshot of src/ is not what runs: {check.stdout}")

    def cli(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [self.python, "-m", "pushgate.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
        )
        if out.returncode != 0:
            raise RuntimeError(f"pushgate {' '.join(args[:2])} failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def provider_env(self) -> dict[str, str]:
        assert self.tokens is not None
        sink = f"http://{HOST}:{self.sink_port}"  # http:// is HTTP/2 with prior knowledge
        return {
            "PUSHGATE_APNS_URL": sink,
            "PUSHGATE_APNS_SANDBOX_URL": sink,
            "PUSHGATE_FCM_URL": sink,
            "PUSHGATE_HMS_URL": sink,
            "PUSHGATE_HMS_TOKEN_URL": self.tokens.url,
        }

    @contextlib.contextmanager
    def api_server(self, data_dir: Path) -> Iterator[harness.Server]:
        port = harness.free_port()
        cmd = [self.python, "-m", "pushgate.cli", "serve", "--role", "api"]
        cmd += ["--port", str(port), "--data-dir", str(data_dir)]
        server = harness.Server(
            "pushgate --role api",
            harness.pinned(cmd, None, self.args.nice),
            port,
            self.work / "api.log",
            self.args.nice,
            {**self.env, **self.provider_env()},
        )
        server.start()
        assert server.proc is not None
        self.procs.started.append(server.proc)
        try:
            yield server
        finally:
            server.stop()

    def setup(self) -> None:
        self.snapshot_src()
        self.tokens = TokenServer()
        self.start_sink()
        self.secrets = self.cli(
            "partners", "create", PARTNER, "--data-dir", str(self.template), "--json"
        )
        self.cli(
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
        self.apns_key = apns_key_pem()
        uploads = {
            "apns": {
                "key_id": APNS_KEY_ID,
                "team_id": APNS_TEAM_ID,
                "bundle_id": BUNDLE_ID,
                "private_key": self.apns_key,
            },
            "firebase": fcm_service_account(self.tokens.url),
            "huawei": {"app_id": HMS_APP_ID, "client_id": HMS_APP_ID, "client_secret": "s" * 64},
        }
        users = self.args.jobs
        with self.api_server(self.template) as server:
            for provider, record in uploads.items():
                status, answer = http_json(
                    "POST",
                    server.port,
                    f"/v1/settings/certificate/{provider}",
                    record,
                    {"X-API-KEY": self.secrets["api_key"]},
                )
                if status != 200 or not (answer or {}).get("validated"):
                    raise RuntimeError(f"uploading the {provider} credential: {status} {answer}")
            log(f"credentials uploaded and validated (token server asked {self.tokens.requests}x)")
            if self.args.webhook:
                self.register_webhook(server.port)
            sessions = [session_body(p, i) for p in self.args.platforms for i in range(users)]
            requests = [
                loadgen.build_request(
                    harness.SESSION_PATH, b, server.port, [("X-SDK-KEY", self.secrets["sdk_key"])]
                )
                for b in sessions
            ]
            started = time.perf_counter()
            result, _ = loadgen.run(loadgen.closed_loop(server.port, requests, 32))
            took = time.perf_counter() - started
        if result["statuses"] != {"200": len(sessions)}:
            raise RuntimeError(f"registration failed: {result['statuses']}")
        self.registration = {"sessions": len(sessions), "seconds": round(took, 1)}
        log(
            f"registered {len(sessions):,} users (one device each) in {took:.1f} s"
            f" ({len(sessions) / took:,.0f} sessions/s)"
        )
        for platform in self.args.platforms:
            self.queue(platform)

    def queue(self, platform: str) -> None:
        """A data dir holding one queued job per user of `platform`, sent through the API."""
        data = self.work / f"queued-{platform}"
        shutil.copytree(self.template, data)
        bodies = push_bodies(self.secrets["api_key"], platform, self.args.jobs)
        with self.api_server(data) as server:
            requests = [loadgen.build_request(harness.PUSH_PATH, b, server.port) for b in bodies]
            started = time.perf_counter()
            result, answers = loadgen.run(
                loadgen.closed_loop(server.port, requests, 32, keep_bodies=True)
            )
            took = time.perf_counter() - started
        if result["statuses"] != {"200": len(bodies)}:
            raise RuntimeError(f"queueing {platform}: {result['statuses']}")
        accepted = sum(len(json.loads(a).get("successes", ())) for a in answers)
        with contextlib.closing(sqlite3.connect(data / DB_FILE, timeout=30)) as db:
            states = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
            payload, push_type, priority, expires_at = db.execute(
                "SELECT payload, push_type, priority, expires_at FROM jobs LIMIT 1"
            ).fetchone()
        if accepted != self.args.jobs or states != {"queued": self.args.jobs}:
            raise RuntimeError(
                f"queueing {platform}: {accepted} notifications accepted, jobs {states}"
            )
        runs = self.results[platform]
        runs.queued = {
            "jobs": self.args.jobs,
            "requests": len(bodies),
            "seconds": round(took, 2),
            "notifications_per_s": round(self.args.jobs / took),
        }
        runs.request = self.request_shape(platform, bytes(payload), push_type, priority, expires_at)
        log(
            f"queued {self.args.jobs:,} {platform} jobs through the API in {took:.1f} s"
            f" ({len(bodies)} requests of up to {BATCH}; {self.args.jobs / took:,.0f}"
            " notifications/s)"
        )
        self.queued[platform] = data

    def request_shape(
        self, platform: str, payload: bytes, push_type: str, priority: int, expires_at: float
    ) -> dict[str, Any]:
        """The provider request pushgate sends for a job (headers, body), for h2load: the
        body is built as pushgate builds it (the device token in it, android.ttl set), so
        that its size is that of the worker's requests within a few bytes."""
        token = token_for(platform, 0)
        if platform == "ios":
            path = f"/3/device/{token}"
            headers = [
                ("apns-id", "8c2f3b8e-3d5a-4d1e-9f3a-2b6c1d0e4f5a"),
                ("apns-topic", BUNDLE_ID),
                ("apns-push-type", push_type),
                ("apns-priority", str(priority)),
                ("apns-expiration", str(int(expires_at))),
                ("authorization", f"bearer {apns_bearer(self.apns_key)}"),
            ]
            body = payload
        else:
            doc = json.loads(payload)
            message = dict(doc["message"])
            android = dict(message.get("android") or {})
            android["ttl"] = f"{DELIVERY_TTL}s"
            message["android"] = android
            if platform == "android":
                path = f"/v1/projects/{FCM_PROJECT}/messages:send"
                message["token"] = token
                doc = {"message": message, "validate_only": False}
            else:
                path = f"/v1/{HMS_APP_ID}/messages:send"
                message["token"] = [token]
                doc = {"validate_only": False, "message": message}
            body = json.dumps(doc, separators=(",", ":")).encode()
            headers = [
                ("authorization", f"Bearer {ACCESS_TOKEN['access_token']}"),
                ("content-type", "application/json; charset=UTF-8"),
            ]
        body_file = self.work / f"h2load-{platform}.body"
        body_file.write_bytes(body)
        return {"path": path, "headers": headers, "body_file": str(body_file), "bytes": len(body)}

    # ------------------------------------------------------------ the sink

    def start_sink(self) -> None:
        """nghttpd over h2c; it serves a file for any method (a POST's body is read and
        dropped without --echo-upload), so a file per path makes it answer 200."""
        device = self.docroot / "3" / "device"
        device.mkdir(parents=True, exist_ok=True)
        if "ios" in self.args.platforms:
            for i in range(self.args.jobs):
                (device / token_for("ios", i)).touch()
        fcm = self.docroot / "v1" / "projects" / FCM_PROJECT / "messages:send"
        fcm.parent.mkdir(parents=True, exist_ok=True)
        fcm.write_text(json.dumps({"name": f"projects/{FCM_PROJECT}/messages/1"}))
        hms = self.docroot / "v1" / HMS_APP_ID / "messages:send"
        hms.parent.mkdir(parents=True, exist_ok=True)
        hms.write_text(json.dumps(HMS_SUCCESS))
        self.sink_port = harness.free_port()
        cmd = ["nghttpd", "--no-tls", "-a", HOST, "-n", str(self.args.sink_threads)]
        cmd += [str(self.sink_port), "-d", str(self.docroot)]
        self.sink = self.procs.popen(
            harness.pinned(cmd, None, self.args.nice), self.work / "sink.log"
        )
        harness.renice_group(self.sink.pid, self.args.nice)
        wait_listening(self.sink_port, self.sink)
        log(f"nghttpd on {HOST}:{self.sink_port} ({self.args.sink_threads} thread(s))")

    def register_webhook(self, api_port: int) -> None:
        """A webhook for every event, to bench/noop_app.py (200 to any POST), in its process."""
        port = harness.free_port()
        cmd = [self.python, str(BENCH / "noop_app.py"), "--port", str(port)]
        receiver = self.procs.popen(
            harness.pinned(cmd, None, self.args.nice), self.work / "webhook.log", self.env
        )
        wait_listening(port, receiver)
        status, answer = http_json(
            "PUT",
            api_port,
            "/api/v1/webhook",
            {"url": f"http://{HOST}:{port}/hook"},
            {"X-API-KEY": self.secrets["api_key"]},
        )
        if status != 200:
            raise RuntimeError(f"registering the webhook: {status} {answer}")
        log(f"webhook for every event to {HOST}:{port}")

    def check_sink(self) -> None:
        if self.sink.poll() is not None:
            raise RuntimeError(f"nghttpd exited ({self.sink.returncode}): see sink.log")

    # ------------------------------------------------------------ one drain

    def drain(self, platform: str, profile: Path | None = None) -> Drain:
        """One drain; with `profile`, py-spy samples the worker's processes meanwhile and
        writes its collapsed stacks there (the drain's figures are then slower than bare)."""
        self.check_sink()
        data = self.work / "data-run"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(self.queued[platform], data)
        jobs = self.args.jobs
        background = harness.wait_quiet(self.args.quiet_wait, self.sink.pid)
        loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        port = harness.free_port()
        cmd = [self.python, "-m", "pushgate.cli", "serve", "--role", "worker"]
        cmd += ["--port", str(port), "--data-dir", str(data)]
        db = sqlite3.connect(data / DB_FILE, timeout=30, isolation_level=None)
        log_file = self.work / f"worker-{platform}.log"
        spawned = time.time()
        env = {**self.env, **self.provider_env()}
        if self.args.workers:  # delivery processes, where the served version supports it
            env["PUSHGATE_WORKERS"] = str(self.args.workers)
        if self.args.concurrency:
            env["PUSHGATE_WORKER_CONCURRENCY"] = str(self.args.concurrency)
        worker = self.procs.popen(harness.pinned(cmd, None, self.args.nice), log_file, env)
        harness.renice_group(worker.pid, self.args.nice)
        spy = None if profile is None else self.spy(worker.pid, profile)
        try:
            timed = self.time_drain(db, worker, jobs, log_file)
            metrics = self.worker_metrics(port, worker)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
                try:
                    spy.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()
            Processes.stop(worker)
            db.close()
        with contextlib.closing(sqlite3.connect(data / DB_FILE, timeout=30)) as check:
            states = dict(
                check.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
            )
            last = check.execute("SELECT max(finished_at) FROM jobs").fetchone()[0]
            fails = check.execute(
                "SELECT reason, count(*) FROM fail_records GROUP BY reason"
            ).fetchall()
        if states != {"done": jobs}:
            raise RuntimeError(
                f"{platform}: not every job ended done: {states}; fail records {fails};"
                f" worker log:\n{tail(log_file)}"
            )
        start, end_poll = timed["start"], timed["end"]
        # The jobs' own finished_at (the worker's clock, which is this machine's) is the
        # exact time of the last settle; the poll sees it up to SETTLE_POLL later.
        end, source = (
            (last, "finished_at") if last and start < last <= end_poll else (end_poll, "poll")
        )
        seconds = end - start
        wall = end_poll - start  # the window the CPU figures were read over
        c0, c1 = timed["cpu0"], timed["cpu1"]
        worker_cpu = (c1["worker"]["main"] + c1["worker"]["other"]) - (
            c0["worker"]["main"] + c0["worker"]["other"]
        )
        sink_cpu = c1["sink"] - c0["sink"]
        own_cpu = c1["own"] - c0["own"]
        busy = c1["busy"] - c0["busy"]
        run = Drain(
            rate=jobs / seconds,
            jobs=jobs,
            seconds=round(seconds, 4),
            worker_cores=worker_cpu / wall,
            worker_main_cores=(c1["worker"]["main"] - c0["worker"]["main"]) / wall,
            worker_processes=int(c1["worker"]["processes"]),
            cpu_us=worker_cpu / jobs * 1e6,
            sink_cores=sink_cpu / wall,
            poller_cores=own_cpu / wall,
            others=max(0.0, (busy - worker_cpu - sink_cpu - own_cpu) / wall),
            background_before=background,
            loadavg=loadavg,
            startup_s=round(start - spawned, 2),
            end_source=source,
            states=states,
            metrics=metrics,
        )
        log(
            f"  {platform} drain: {jobs:,} jobs in {seconds:.2f} s = {run.rate:,.0f} sends/s;"
            f" worker {run.worker_cores:.2f} cores (main threads {run.worker_main_cores:.2f},"
            f" {run.worker_processes} process(es)),"
            f" nghttpd {run.sink_cores:.2f}, poller {run.poller_cores:.2f},"
            f" others {run.others:.2f}; first claim {run.startup_s} s after spawn"
        )
        return run

    def time_drain(
        self, db: sqlite3.Connection, worker: Any, jobs: int, log_file: Path
    ) -> dict[str, Any]:
        """Poll the queue: the first claim (the largest lease end jumps into the future, or,
        should claims not move due_at, the first settled job), then until nothing is left."""
        deadline = time.monotonic() + self.args.drain_limit

        def sample() -> dict[str, Any]:
            return {
                "worker": group_cpu(worker.pid),
                "sink": sum(harness.cpu_seconds(self.sink.pid).values()),
                "own": time.process_time(),
                "busy": harness.machine_busy(),
            }

        start: float | None = None
        cpu0: dict[str, Any] = {}
        polls = 0
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited ({worker.returncode}):\n{tail(log_file)}")
            now = time.time()
            if start is None:
                polls += 1
                lease_end = db.execute(LEASE_END).fetchone()[0]
                claimed = lease_end is not None and lease_end > now + 1.0
                if not claimed and polls % 10 == 0:
                    claimed = int(db.execute(DEPTH).fetchone()[0]) < jobs
                if claimed:
                    start, cpu0 = time.time(), sample()
                    continue
                time.sleep(CLAIM_POLL)
                continue
            if not db.execute(LEFT).fetchone()[0]:
                return {"start": start, "end": time.time(), "cpu0": cpu0, "cpu1": sample()}
            time.sleep(SETTLE_POLL)
        raise RuntimeError(
            f"the worker did not settle {jobs:,} jobs in {self.args.drain_limit:.0f} s"
            f" (first claim {'seen' if start else 'never seen'}); see {self.work}"
        )

    def worker_metrics(self, port: int, worker: Any) -> dict[str, float]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and worker.poll() is None:
            found = harness.pushgate_metrics(port)
            if found:
                return found
            time.sleep(0.2)
        return {}

    # ------------------------------------------------------------ one h2load run

    def ceiling(self, platform: str) -> Ceiling:
        self.check_sink()
        shape = self.results[platform].request
        background = harness.wait_quiet(self.args.quiet_wait, self.sink.pid)
        cmd = ["h2load", "-n", str(self.args.h2load_requests), "-c", "1", "-t", "1"]
        cmd += ["-m", str(SINK_STREAMS), "-d", shape["body_file"]]
        for name, value in shape["headers"]:
            cmd += ["-H", f"{name}: {value}"]
        cmd.append(f"http://{HOST}:{self.sink_port}{shape['path']}")
        out_file = self.work / f"h2load-{platform}.out"
        out_file.unlink(missing_ok=True)
        sink0, own0, busy0 = (
            sum(harness.cpu_seconds(self.sink.pid).values()),
            time.process_time(),
            harness.machine_busy(),
        )
        t0 = time.perf_counter()
        proc = self.procs.popen(harness.pinned(cmd, None, self.args.nice), out_file)
        harness.renice_group(proc.pid, self.args.nice)
        timer = threading.Timer(H2LOAD_LIMIT, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # its own CPU time, from the kernel
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        sink_cpu = sum(harness.cpu_seconds(self.sink.pid).values()) - sink0
        own_cpu = time.process_time() - own0
        busy = harness.machine_busy() - busy0
        text = out_file.read_text(errors="replace")
        rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
        done = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", text)
        ok = re.search(r"status codes: (\d+) 2xx", text)
        n = self.args.h2load_requests
        if proc.returncode != 0 or not (rate and done and ok) or int(ok.group(1)) != n:
            raise RuntimeError(f"h2load ({proc.returncode}) did not get {n} 2xx answers:\n{text}")
        h2load_cpu = usage.ru_utime + usage.ru_stime
        run = Ceiling(
            rate=float(rate.group(1)),
            requests=n,
            seconds=round(n / float(rate.group(1)), 4),
            h2load_cores=h2load_cpu / wall,
            sink_cores=sink_cpu / wall,
            others=max(0.0, (busy - h2load_cpu - sink_cpu - own_cpu) / wall),
            background_before=background,
        )
        log(
            f"  {platform} h2load: {run.rate:,.0f} req/s; h2load {run.h2load_cores:.2f} cores,"
            f" nghttpd {run.sink_cores:.2f}, others {run.others:.2f}"
        )
        return run

    # ------------------------------------------------------------ all

    def spy(self, pid: int, out: Path) -> subprocess.Popen[bytes]:
        """py-spy on the worker and its delivery processes, native frames included (libcurl
        and SQLite run in C)."""
        exe = shutil.which("py-spy") or str(Path(self.python).parent / "py-spy")
        cmd = [exe, "record", "--pid", str(pid), "--subprocesses", "--native", "--rate", "250"]
        cmd += ["--format", "raw", "--output", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # attached before the first claim (the worker starts in ~0.5 s)
        return proc

    def profile(self, platform: str, stem: Path) -> dict[str, Any]:
        """An extra drain under py-spy: where the worker's CPU goes."""
        raw = self.work / f"profile-{platform}.txt"
        self.drain(platform, raw)
        if not raw.exists():
            log("py-spy wrote no profile (pip install py-spy; is ptrace permitted?)")
            return {}
        out = stem.with_name(f"{stem.name}-profile-{platform}.txt.gz")
        out.write_bytes(gzip.compress(raw.read_bytes()))
        summary = harness.summarise_profile(raw.read_text().splitlines(), top=40)
        summary["file"] = out.name
        return summary

    def run(self) -> None:
        self.setup()
        for r in range(self.args.runs):
            for platform in self.args.platforms:
                log(f"round {r + 1}/{self.args.runs}, {platform}")
                runs = self.results[platform]
                # Alternate which goes first from round to round, so a drift of the shared
                # machine does not favour one of the two.
                if r % 2 == 0:
                    runs.drains.append(self.drain(platform))
                    runs.ceilings.append(self.ceiling(platform))
                else:
                    runs.ceilings.append(self.ceiling(platform))
                    runs.drains.append(self.drain(platform))
        if self.args.profile:
            self.args.out.mkdir(parents=True, exist_ok=True)
            for platform in self.args.platforms:
                log(f"profile, {platform}")
                self.profiles[platform] = self.profile(platform, self.args.out / self.args.stem)

    def close(self) -> None:
        self.procs.kill_all()
        if self.tokens is not None:
            self.tokens.close()


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# ---------------------------------------------------------------- report


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def spread(values: Sequence[float]) -> str:
    return f"{fmt(min(values))}–{fmt(max(values))}" if values else ""


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    bench: DeliveryBench,
    took: float,
) -> str:
    results = list(bench.results.values())
    worst = max((d.others for p in results for d in p.drains), default=0.0)
    lines = [
        f"# Delivery at line rate, {dt.date.today().isoformat()}",
        "",
        "Written by `python bench/run_delivery_bench.py"
        + "".join(f" {x}" for x in args.given)
        + f"` in {took / 60:.1f} min. Medians of {args.runs} runs per platform; in each round"
        " the drain and h2load ran back to back into the same nghttpd, the first of the two"
        " alternating from round to round"
        + (f", at niceness {args.nice}" if args.nice else "")
        + ".",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        f"- users registered: {bench.registration['sessions']:,} (one device each) through"
        f" the SDK session endpoint in {bench.registration['seconds']} s",
        "- pushgate served from: "
        + (
            f"src/ of commit {info.get('served commit')} (git archive)"
            if args.rev
            else "src/ of this checkout, copied at the start of the run"
        ),
        "",
        "The machine is shared with other sessions, whose test suites may run at any time"
        f" (during this run: load average above; *others* up to {worst:.2f} cores during a"
        " drain and a median of"
        f" {statistics.median(d.others for p in results for d in p.drains):.2f}: the cores"
        " used by every process that is neither the worker, nghttpd, h2load nor this script)."
        f" Runs with others above {QUIET:g} cores read low. These are this machine's figures"
        " on this day, to compare versions measured the same way, not a capacity statement.",
        "",
        "## Result",
        "",
        "| platform | pushgate sends/s (median) | runs | h2load req/s (median) | runs"
        " | pushgate / h2load | worker cores (main threads) | worker CPU µs/send"
        " | nghttpd cores, drain | nghttpd cores, h2load | h2load cores |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in results:
        lines.append(
            f"| {p.platform} | **{fmt(p.median('drain', 'rate'))}**"
            f" | {spread([d.rate for d in p.drains])}"
            f" | {fmt(p.median('ceiling', 'rate'))} | {spread([c.rate for c in p.ceilings])}"
            f" | {p.ratio:.4f}"
            f" | {p.median('drain', 'worker_cores'):.2f}"
            f" ({p.median('drain', 'worker_main_cores'):.2f})"
            f" | {p.median('drain', 'cpu_us'):.0f}"
            f" | {p.median('drain', 'sink_cores'):.2f}"
            f" | {p.median('ceiling', 'sink_cores'):.2f}"
            f" | {p.median('ceiling', 'h2load_cores'):.2f} |"
        )
    lines += [
        "",
        f"Goals of the issue (item 4), for information: at least {GOAL_SENDS:,} sends/s end to"
        f" end, and at least {GOAL_RATIO:.2f} of h2load's rate in the same run.",
        "",
    ]
    for p in results:
        rate, ratio = p.median("drain", "rate"), p.ratio
        lines.append(
            f"- {p.platform}: {fmt(rate)} sends/s"
            f" ({'met' if rate >= GOAL_SENDS else '**not met**'}); ratio {ratio:.4f}"
            f" ({'met' if ratio >= GOAL_RATIO else '**not met**'})"
        )
    lines += [
        "",
        "## Method",
        "",
        f"- Set-up, once: `pushgate partners create`, rate limits raised; an APNs .p8 key"
        " (EC P-256, made by the script), a Firebase service account (RSA-2048) and a Huawei app"
        " uploaded through `POST /v1/settings/certificate/{apns,firebase,huawei}` (all validated;"
        " FCM's `token_uri` and `PUSHGATE_HMS_TOKEN_URL` point at an HTTP/1.1 token server in the"
        f" script answering `{json.dumps(ACCESS_TOKEN)}`); {args.jobs:,} users per platform"
        " registered through `POST /api/sdk/v1/session`, each with one device of the platform"
        " (environment production), on `pushgate serve --role api`.",
        f"- Queueing, once per platform, on a copy of that data dir: one push per user through"
        f" `POST /api/v2/notification/user` on `--role api` (bodies of {BATCH} notifications,"
        f" the seed notification with `ttl` {DELIVERY_TTL:,} s, 32 connections), every one"
        " answered under `successes`, then `SELECT state, count(*) FROM jobs` = all `queued`.",
        "- Each drain: a fresh copy of the queued data dir, `pushgate serve --role worker` (no"
        " emulators) with `PUSHGATE_APNS_URL`, `PUSHGATE_APNS_SANDBOX_URL`, `PUSHGATE_FCM_URL`,"
        " `PUSHGATE_HMS_URL` = `http://127.0.0.1:<nghttpd>` (h2c, prior knowledge) and"
        " `PUSHGATE_HMS_TOKEN_URL` = the token server. The script polls the SQLite file: the"
        f" first claim is the first look (every {CLAIM_POLL * 1000:.0f} ms, an index lookup)"
        " at which the largest `due_at` of the unsettled jobs lies in the future (a claim sets"
        " it to the lease's end); the end is the largest `finished_at` of the jobs once the"
        f" queue holds no queued or leased job (an EXISTS on the partial index, looked at every {SETTLE_POLL * 1000:.0f} ms). sends/s = jobs /"
        " (end - first claim). Every job must end `done` (the script stops with the states and"
        " fail records otherwise). CPU: utime+stime from /proc of the worker's process group"
        " (the worker and any delivery processes it starts), nghttpd and this script, over the"
        " window from the first claim to the poll that found the queue empty, as cores."
        + (
            f" `PUSHGATE_WORKERS={args.workers}`."
            if args.workers
            else " `PUSHGATE_WORKERS` not set (the served version's default)."
        ),
        (f" `PUSHGATE_WORKER_CONCURRENCY={args.concurrency}`." if args.concurrency else ""),
        (
            " A webhook for every event (`PUT /api/v1/webhook`) to bench/noop_app.py in a process"
            " of its own: each settled job also writes its push.accepted event, which the worker's"
            " serving process sends meanwhile."
            if args.webhook
            else ""
        ),
        f"- The sink: `nghttpd --no-tls -a 127.0.0.1 -n {args.sink_threads} <port> -d <docroot>`"
        " (nghttp2 " + info.get("nghttpd", "?").split("/")[-1] + "). nghttpd serves a file for"
        " any method and, without `--echo-upload`, reads a POST's body and drops it; the"
        " docroot has an empty file per iOS device token under `3/device/` (200, empty body, as"
        f" APNs), `v1/projects/{FCM_PROJECT}/messages:send` holding"
        f' `{{"name": "projects/{FCM_PROJECT}/messages/1"}}` and'
        f" `v1/{HMS_APP_ID}/messages:send` holding `{json.dumps(HMS_SUCCESS)}`. Its"
        f" SETTINGS_MAX_CONCURRENT_STREAMS is {SINK_STREAMS} (the default).",
        f"- The ceiling: `h2load -n {args.h2load_requests:,} -c 1 -t 1 -m {SINK_STREAMS} -d"
        " <body> -H ...` against one token's URL in the same nghttpd, with the headers pushgate"
        " sends for that platform and a body of the worker's size (below); its own req/s. One"
        " connection, as the worker opens one per credential and host. h2load repeats one"
        " request (HPACK indexes every header after the first), where pushgate's path and"
        " `apns-id` change per send: a ceiling, not a twin.",
        "",
        "| platform | h2load path | headers | body bytes | jobs queued via the API | queueing s"
        " | notifications/s queued |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for p in results:
        names = ", ".join(f"`{n}`" for n, _ in p.request["headers"])
        path = p.request["path"]
        path = path[:22] + "…" if len(path) > 40 else path
        lines.append(
            f"| {p.platform} | `{path}` | {names} | {p.request['bytes']}"
            f" | {p.queued['jobs']:,} | {p.queued['seconds']}"
            f" | {fmt(p.queued['notifications_per_s'])} |"
        )
    lines += [
        "",
        "## Every run",
        "",
        "| platform | round | pushgate sends/s | s | worker cores | (main threads)"
        " | nghttpd cores | worker processes | poller cores | others | others before | load avg"
        " | first claim after spawn s"
        " | end from | h2load req/s | h2load cores | nghttpd cores (h2load) | others (h2load) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
        " --- |"
        " ---: | ---: | ---: | ---: |",
    ]
    for p in results:
        for r, (d, c) in enumerate(zip(p.drains, p.ceilings, strict=False), 1):
            lines.append(
                f"| {p.platform} | {r} | {fmt(d.rate)} | {d.seconds:.2f} | {d.worker_cores:.2f}"
                f" | {d.worker_main_cores:.2f} | {d.sink_cores:.2f} | {d.worker_processes}"
                f" | {d.poller_cores:.2f}"
                f" | {d.others:.2f} | {d.background_before:.2f} | {d.loadavg} | {d.startup_s}"
                f" | {d.end_source} | {fmt(c.rate)} | {c.h2load_cores:.2f} | {c.sink_cores:.2f}"
                f" | {c.others:.2f} |"
            )
    lines += [
        "",
        "## The worker's /metrics after each platform's last drain",
        "",
        "Sends by outcome (`pushgate_delivery_sends_total`, as run_api_bench names them:"
        " `done` = accepted) and the worker's other unlabelled delivery figures.",
        "",
        "| platform | figures |",
        "| --- | --- |",
    ]
    for p in results:
        m = p.drains[-1].metrics if p.drains else {}
        shown = ", ".join(f"`{k}` {v:,.6g}" for k, v in sorted(m.items()) if "delivery" in k)
        lines.append(f"| {p.platform} | {shown or 'n/a'} |")
    for platform, prof in bench.profiles.items():
        if not prof:
            continue
        lines += [
            "",
            f"## Profile of the worker, {platform} (py-spy, one more drain)",
            "",
            f"{prof['samples']:,} samples of every process in the worker's group, native frames"
            f" included; stacks in `{prof['file']}`. Self: where the CPU is spent; inclusive:"
            " pushgate's functions with what they call.",
            "",
            "| self % | function | | inclusive % | pushgate function |",
            "| ---: | --- | --- | ---: | --- |",
        ]
        for (own, own_pct), (inc, inc_pct) in zip(prof["self"], prof["inclusive"], strict=False):
            lines.append(f"| {own_pct} | `{own}` | | {inc_pct} | `{inc}` |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20_000, help="jobs per drain (one per user)")
    p.add_argument("--runs", type=int, default=5, help="runs per platform (at least 3)")
    p.add_argument("--platform", choices=[*PLATFORMS, "all"], default="all")
    p.add_argument("--h2load-requests", type=int, default=200_000, help="per h2load run")
    p.add_argument("--sink-threads", type=int, default=1, help="nghttpd -n")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="PUSHGATE_WORKERS for the worker role (delivery processes; 0: the service's"
        " default; versions without it ignore it)",
    )
    p.add_argument("--drain-limit", type=float, default=DRAIN_LIMIT, help="seconds per drain")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="seconds to wait, at most, before each run for other processes to leave the CPUs",
    )
    p.add_argument("--nice", type=int, default=0, help="niceness of every process (root: -10)")
    p.add_argument("--quick", action="store_true", help="2,000 jobs, 3 runs: a smoke run")
    p.add_argument("--rev", default=None, help="serve this commit's src/ (git archive)")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, logs)")
    p.add_argument(
        "--webhook",
        action="store_true",
        help="register a webhook for every event, to a no-op receiver (bench/noop_app.py)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="PUSHGATE_WORKER_CONCURRENCY (jobs a worker holds; 0: the service's default)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="one more drain per platform under py-spy (pip install py-spy); its stacks are"
        " written beside the results and summarised in them",
    )
    p.add_argument("--lock-wait", type=float, default=1800.0)
    args = p.parse_args(argv)
    if args.quick:
        args.jobs, args.runs, args.h2load_requests = 2_000, 3, 20_000
    if not 3 <= args.runs <= 20:
        p.error("runs must be 3..20 (medians of at least 3)")
    if not 100 <= args.jobs <= 200_000:
        p.error("jobs must be 100..200000")
    if not 1_000 <= args.h2load_requests <= 2_000_000:
        p.error("h2load-requests must be 1000..2000000")
    if not 1 <= args.sink_threads <= 16 or not 10 <= args.drain_limit <= 1800:
        p.error("sink-threads must be 1..16, drain-limit 10..1800 s")
    if not 0 <= args.workers <= 256:
        p.error("workers must be 0..256")
    if not -20 <= args.nice <= 19:
        p.error("nice must be -20..19")
    args.platforms = list(PLATFORMS) if args.platform == "all" else [args.platform]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.given = list(sys.argv[1:] if argv is None else argv)
    for tool in ("nghttpd", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y nghttp2-server nghttp2-client")
    lock = harness.one_run_at_a_time(args.lock_wait)  # one benchmark at a time on this machine
    started = time.monotonic()
    info = harness.machine()
    info.pop("wrk", None)
    info["nghttpd"] = harness._version(["nghttpd", "--version"])
    info["h2load"] = harness._version(["h2load", "--version"])
    info["load average at start (1, 5, 15 min)"] = " ".join(
        Path("/proc/loadavg").read_text().split()[:3]
    )
    pytest_runs = subprocess.run(["pgrep", "-c", "-f", "pytest"], capture_output=True, text=True)
    info["pytest processes running at start"] = pytest_runs.stdout.strip() or "0"
    stem = harness.result_stem(
        "delivery",
        info,
        args.rev,
        "quick" if args.quick else "",
        "" if args.platform == "all" else args.platform,
    )
    args.stem = stem
    work = Path(tempfile.mkdtemp(prefix="pushgate-delivery-bench-"))
    bench = DeliveryBench(args, work)
    log(
        f"work dir {work}; {info['nproc']} x {info['cpu']};"
        f" load {info['load average at start (1, 5, 15 min)']}"
    )

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)
    failed = True
    try:
        bench.run()
        failed = False
    finally:
        bench.close()
        if failed:  # keep the logs (pushgate, nghttpd, h2load) to look at; drop the data
            for path in work.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
            log(f"failed: the logs are kept in {work}")
        elif not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    took = time.monotonic() - started
    text = report(args, info, bench, took)
    raw = {
        "machine": info,
        "args": {k: str(v) for k, v in vars(args).items()},
        "registration": bench.registration,
        "platforms": {
            p.platform: {
                "median_sends_per_s": p.median("drain", "rate"),
                "median_h2load_per_s": p.median("ceiling", "rate"),
                "ratio": p.ratio,
                "queued": p.queued,
                "h2load_request": {k: v for k, v in p.request.items() if k != "body_file"},
                "drains": [vars(d) for d in p.drains],
                "ceilings": [vars(c) for c in p.ceilings],
            }
            for p in bench.results.values()
        },
    }
    harness.write_results(args.out, stem, text, raw)
    print(f"\n{text}")
    log(f"wrote {args.out / stem}.md and .json")
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
