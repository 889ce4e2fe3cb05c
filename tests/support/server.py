"""The real service as a process for tests: `pushgate serve` on a real database (SQLite, or
PostgreSQL + Redis with a schema and key prefix of its own), its partners, and the CLI."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PUSHGATE = str(Path(sys.executable).with_name("pushgate"))


_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PUSHGATE, *args], capture_output=True, text=True, check=check, timeout=60, env=env
    )


# ---- backends: every server-backed test runs embedded (SQLite, limits in memory) and on
# PostgreSQL + Redis ----

BACKENDS = [b for b in os.environ.get("PUSHGATE_TEST_BACKENDS", "sqlite,postgres").split(",") if b]


POSTGRES_URL = os.environ.get("PUSHGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


REDIS_URL = os.environ.get("PUSHGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


BACKEND_SETTINGS = ("PUSHGATE_DATABASE_URL", "PUSHGATE_REDIS_URL", "PUSHGATE_REDIS_PREFIX")


_schemas: list[str] = []


def new_backend_env(backend: str) -> dict[str, str]:
    """The settings of a fresh backend: nothing for the embedded one (the data dir holds it);
    for PostgreSQL + Redis, a schema and a key prefix of its own, so that tests, and parallel
    test runs, never see each other's rows or keys. Schemas are dropped when the run ends;
    keys expire on their own."""
    if backend == "sqlite":
        return {}
    if not _schemas:
        atexit.register(_drop_schemas)
    name = f"t{os.getpid()}_{len(_schemas)}_{time.time_ns() % 10**6}"
    _schemas.append(name)
    return {
        "PUSHGATE_DATABASE_URL": f"{POSTGRES_URL}?schema={name}",
        "PUSHGATE_REDIS_URL": REDIS_URL,
        "PUSHGATE_REDIS_PREFIX": f"{name}:",
    }


def _drop_schemas() -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(POSTGRES_URL, autocommit=True) as c:
        for schema in _schemas:
            c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]


# The suite sends many bad keys from 127.0.0.1 on purpose (error and fuzz tests), which the
# limit on repeated bad keys per client address (limits/bad_keys.py) would answer 429; it is
# off here, and tests/e2e/test_bad_key_limit.py turns it on with its default. Servers deliver
# in one process whatever the machine's cores (the default follows them); tests/e2e/
# test_worker_processes.py asks for more.
# One process of each kind unless a test asks for more (the defaults follow the core count).
SUITE_SETTINGS = {
    "PUSHGATE_BAD_KEY_LIMIT": "0",
    "PUSHGATE_WORKERS": "1",
    "PUSHGATE_API_PROCESSES": "1",
}


def process_env(backend_env: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without its own backend settings, then the suite's settings,
    then the given ones."""
    env = {k: v for k, v in os.environ.items() if k not in BACKEND_SETTINGS}
    return {**env, **SUITE_SETTINGS, **backend_env, **extra}


@dataclass
class Partner:
    name: str
    api_key: str
    request_token: str
    sdk_key: str
    server: Server

    def push(self, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.server.client.post(
            "/api/v2/notification/user", json={"api_key": self.api_key, **body}, **kw
        )

    def session(
        self,
        identifiers: dict[str, Any] | None,
        platform: str = "ios",
        token: str | None = None,
        **device: Any,
    ) -> str:
        """Register a device the way the mobile SDK does; returns the insider_id."""
        body: dict[str, Any] = {
            "device": {
                "platform": platform,
                "device_token": token or os.urandom(32).hex(),
                "environment": "production",
                **device,
            }
        }
        if identifiers is not None:
            body["identifiers"] = identifiers
        r = self.server.client.post(
            "/api/sdk/v1/session", json=body, headers={"X-SDK-KEY": self.sdk_key}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["insider_id"])

    def user_api(self, action: str, body: Any) -> httpx.Response:
        return self.server.client.post(
            f"/api/user/v1/{action}",
            json=body,
            headers={"X-PARTNER-NAME": self.name, "X-REQUEST-TOKEN": self.request_token},
        )

    def update(self, *args: str) -> dict[str, Any]:
        out = self.server.cli(
            "partners", "update", self.name, "--data-dir", str(self.server.data_dir), *args
        )
        return dict(json.loads(out.stdout))


class PortTaken(RuntimeError):
    pass


@dataclass
class Server:
    data_dir: Path
    emulate: bool = True
    backend_env: dict[str, str] = field(default_factory=dict)  # new_backend_env()
    env: dict[str, str] = field(default_factory=dict)  # more PUSHGATE_* settings
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process_env(self) -> dict[str, str]:
        return process_env(self.backend_env, self.env)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`pushgate ...` on this server's database."""
        return run_cli(*args, check=check, env=self.process_env())

    def start(self) -> Server:
        # `free_port` only names a port that was free a moment ago: the server's own emulators
        # bind ephemeral ports at start and can take it first. Then try another one.
        for _attempt in range(3):
            try:
                return self._start()
            except PortTaken:
                self.client.close()
                self.port = free_port()
        return self._start()

    def _start(self) -> Server:
        args = [PUSHGATE, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.emulate:
            args.append("--emulate")
        self.log_path = self.data_dir.parent / f"serve-{self.port}-{time.time_ns()}.log"
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=self.process_env()
            )
        self.client = httpx.Client(base_url=self.base_url, timeout=30.0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log_text = self.log_path.read_text()
                if f"('127.0.0.1', {self.port}): address already in use" in log_text:
                    raise PortTaken(self.port)
                raise RuntimeError(f"server exited: {log_text}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.proc.kill()  # not left behind to outlive the run (and fail a later test)
        self.proc.wait()
        raise RuntimeError(f"server did not become healthy: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.client.close()

    def create_partner(self, name: str | None = None, *extra: str) -> Partner:
        name = name or f"partner{next(_names)}x{os.getpid()}"
        out = self.cli("partners", "create", name, "--data-dir", str(self.data_dir), *extra)
        secrets = json.loads(out.stdout)
        return Partner(
            secrets["partner"],
            secrets["api_key"],
            secrets["request_token"],
            secrets["sdk_key"],
            self,
        )

    def db(self) -> Any:
        """A read/write connection (autocommit, `?` placeholders) to the server's database."""
        if url := self.backend_env.get("PUSHGATE_DATABASE_URL"):
            from pushgate.store import postgres

            return postgres.connect(postgres.parse_url(url))
        conn = sqlite3.connect(self.data_dir / "pushgate.sqlite3", timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn
