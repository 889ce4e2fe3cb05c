"""Fixtures that run the real service: `pushgate serve` as a process on a real SQLite file."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

PUSHGATE = str(Path(sys.executable).with_name("pushgate"))
_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PUSHGATE, *args], capture_output=True, text=True, check=check, timeout=60
    )


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
        out = run_cli(
            "partners", "update", self.name, "--data-dir", str(self.server.data_dir), *args
        )
        return dict(json.loads(out.stdout))


@dataclass
class Server:
    data_dir: Path
    emulate: bool = True
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        args = [PUSHGATE, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.emulate:
            args.append("--emulate")
        self.log_path = self.data_dir.parent / f"serve-{self.port}-{time.time_ns()}.log"
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.base_url, timeout=30.0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

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
        out = run_cli("partners", "create", name, "--data-dir", str(self.data_dir), *extra)
        secrets = json.loads(out.stdout)
        return Partner(
            secrets["partner"],
            secrets["api_key"],
            secrets["request_token"],
            secrets["sdk_key"],
            self,
        )

    def db(self) -> sqlite3.Connection:
        """A read/write connection to the server's own database file."""
        conn = sqlite3.connect(self.data_dir / "pushgate.sqlite3", timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One emulated server per test module; tests isolate themselves with their own partner."""
    srv = Server(tmp_path_factory.mktemp("srv") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture
def partner(server: Server) -> Partner:
    return server.create_partner()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Start servers with custom options; all are stopped at the end of the test."""
    started: list[Server] = []

    def start(emulate: bool = True, data_dir: Path | None = None) -> Server:
        srv = Server(data_dir or tmp_path / f"data{len(started)}", emulate=emulate).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
