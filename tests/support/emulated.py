"""End-to-end helpers: the `pushgate` command, the emulators' control routes (`Control`), the
standalone emulators (`Standalone`), and reads of what was delivered."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import PUSHGATE, Partner, Server, free_port, process_env

PLATFORMS = ("ios", "android", "huawei")


MAX_NOTIFICATIONS = 20  # per request (targeted-push-api.txt)


FINAL_STATES = ("done", "failed", "expired", "dead")


CONFIG_MISTAKE = 2  # the exit status of every configuration mistake (cli.ConfigMistake)


def pushgate(
    *args: str | Path, env: dict[str, str] | None = None, backend: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PUSHGATE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=process_env(backend or {}, env or {}),
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's only output: one line on stderr, `Error: ...`, and status 2."""
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.stdout == "", output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert done.returncode == CONFIG_MISTAKE, (done.returncode, output)
    return lines[0]


def device_token(platform: str) -> str:
    """A fresh token of the platform's shape (APNs: 64 hex characters)."""
    if platform == "ios":
        return os.urandom(32).hex()
    if platform == "android":
        return f"f{os.urandom(5).hex()}:APA91b{os.urandom(40).hex()}"
    return f"IQAAAACy{os.urandom(30).hex()}"


def notification(uuid: str, camp_id: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "identifiers": {"uuid": uuid},
        "camp_id": camp_id,
        "camp_name": "e2e campaign",
        "title": "A title",
        "message": "A message",
        "image_url": "https://img.example.com/i.jpg",
        **extra,
    }


def push_all(partner: Partner, notifications: list[dict[str, Any]]) -> list[str]:
    """Send the notifications in requests of at most 20; every user must be answered as a
    success. Returns the tokens answered."""
    tokens: list[str] = []
    for start in range(0, len(notifications), MAX_NOTIFICATIONS):
        chunk = notifications[start : start + MAX_NOTIFICATIONS]
        r = partner.push({"notifications": chunk})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["errors"] == {}, body
        tokens += [s["INSIDER.device_token"] for s in body["successes"]]
        assert len(body["successes"]) == len(chunk), body
    return tokens


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; returns its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def received_at(delivery: dict[str, Any]) -> float:
    """A delivery's `received_at` (ISO 8601, UTC) as epoch seconds."""
    stamp = str(delivery["received_at"]).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp()


def children(pid: int) -> set[int]:
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(p) for p in f.read().split())
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed child whose new parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Control:
    """The emulator control routes (contract.md, "Emulators") at `base_url`."""

    base_url: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, timeout=30.0)

    def close(self) -> None:
        self.client.close()

    def info(self) -> dict[str, Any]:
        r = self.client.get("/emulator/v1/info")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def deliveries(self, platform: str | None = None, token: str | None = None) -> list[Any]:
        params = {k: v for k, v in (("platform", platform), ("token", token)) if v}
        r = self.client.get("/emulator/v1/deliveries", params=params)
        assert r.status_code == 200, r.text
        return list(r.json())

    def delivered_tokens(self) -> Counter[str]:
        return Counter(str(d["token"]) for d in self.deliveries())

    def clear_deliveries(self) -> None:
        assert self.client.delete("/emulator/v1/deliveries").status_code == 200

    def token_outcome(self, platform: str, token: str, outcome: str) -> None:
        r = self.client.post(
            "/emulator/v1/tokens", json={"platform": platform, "token": token, "outcome": outcome}
        )
        assert r.status_code == 200, r.text

    def token_environment(self, token: str, environment: str) -> None:
        """APNs: the token was issued for this environment; the other host refuses it."""
        r = self.client.post(
            "/emulator/v1/tokens",
            json={"platform": "ios", "token": token, "environment": environment},
        )
        assert r.status_code == 200, r.text

    def fault(
        self,
        platform: str,
        status: int | None = None,
        rate: float = 0.0,
        retry_after: float | None = None,
        latency_ms: float = 0,
        kind: str | None = None,
    ) -> None:
        """`kind`: None or `status` (answer with `status`), `goaway` or `drop`."""
        body = {
            "platform": platform,
            "status": status,
            "rate": rate,
            "retry_after": retry_after,
            "latency_ms": latency_ms,
        }
        if kind is not None:
            body["kind"] = kind
        r = self.client.post("/emulator/v1/faults", json=body)
        assert r.status_code == 200, r.text

    def faults(self) -> list[dict[str, Any]]:
        """The faults installed, each with `applied`: how many requests it has hit so far."""
        r = self.client.get("/emulator/v1/faults")
        assert r.status_code == 200, r.text
        return list(r.json())

    def clear_faults(self) -> None:
        for platform in PLATFORMS:
            self.fault(platform)

    def wait_delivered(self, tokens: list[str], timeout: float = 10.0) -> Counter[str]:
        """Poll until every token has at least one delivery; returns the counts."""
        wanted = set(tokens)

        def arrived() -> Counter[str] | None:
            counts = self.delivered_tokens()
            return counts if wanted <= set(counts) else None

        counts = wait_for(arrived, timeout, 0.1)
        if counts is None:
            missing = wanted - set(self.delivered_tokens())
            pytest.fail(f"{len(missing)} of {len(wanted)} tokens not delivered in {timeout} s")
        return counts


def rows(server: Server, sql: str, *params: Any) -> list[dict[str, Any]]:
    with contextlib.closing(server.db()) as conn:
        cursor = conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def partner_id(partner: Partner) -> int:
    (row,) = rows(partner.server, "SELECT id FROM partners WHERE name = ?", partner.name)
    return int(row["id"])


def _token_filter(tokens: Collection[str] | None) -> tuple[str, list[str]]:
    if tokens is None:
        return "", []
    return f" AND token IN ({','.join('?' * len(tokens))})", list(tokens)


def jobs(partner: Partner, tokens: Collection[str] | None = None) -> list[dict[str, Any]]:
    """The partner's delivery jobs (for these tokens), oldest first."""
    where, params = _token_filter(tokens)
    return rows(
        partner.server,
        "SELECT id, platform, token, state, attempts, created_at, expires_at, finished_at,"
        f" last_error FROM jobs WHERE partner_id = ?{where} ORDER BY id",
        partner_id(partner),
        *params,
    )


def fail_records(partner: Partner, tokens: Collection[str] | None = None) -> list[dict[str, Any]]:
    where, params = _token_filter(tokens)
    return rows(
        partner.server,
        "SELECT job_id, platform, token, reason, detail FROM fail_records"
        f" WHERE partner_id = ?{where} ORDER BY id",
        partner_id(partner),
        *params,
    )


def wait_jobs_final(
    partner: Partner, count: int, timeout: float, tokens: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Poll until `count` jobs of the partner (for these tokens) exist and all are final."""

    def settled() -> list[dict[str, Any]] | None:
        found = jobs(partner, tokens)
        if len(found) >= count and all(j["state"] in FINAL_STATES for j in found):
            return found
        return None

    found = wait_for(settled, timeout, 0.1)
    if found is None:
        states = Counter(j["state"] for j in jobs(partner, tokens))
        log = partner.server.log_path
        pytest.fail(f"jobs not settled in {timeout} s: {dict(states)}; server log: {log}")
    return list(found)


@dataclass
class Standalone:
    """`pushgate emulate --port P --data-dir D` as its own process."""

    data_dir: Path
    backend_env: dict[str, str] = field(default_factory=dict)  # where its credentials are
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    control: Control | None = None

    def start(self) -> Standalone:
        self.log_path = self.data_dir.parent / f"emulate-{self.port}.log"
        args = [PUSHGATE, "emulate", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        env = process_env(self.backend_env, {})
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.control = Control(f"http://127.0.0.1:{self.port}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulate exited: {self.log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if self.control.client.get("/emulator/v1/info").status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("pushgate emulate did not answer")

    def provider_env(self) -> dict[str, str]:
        """The environment that points `pushgate serve` at these emulators."""
        assert self.control is not None
        info = self.control.info()
        return {
            "PUSHGATE_APNS_URL": info["apns"]["url"],
            "PUSHGATE_APNS_SANDBOX_URL": info["apns"]["sandbox_url"],
            "PUSHGATE_FCM_URL": info["fcm"]["url"],
            "PUSHGATE_FCM_TOKEN_URL": info["fcm"]["token_url"],
            "PUSHGATE_HMS_URL": info["hms"]["url"],
            "PUSHGATE_HMS_TOKEN_URL": info["hms"]["token_url"],
            "PUSHGATE_PROVIDER_CA_FILE": str(self.data_dir / "emulator-ca" / "emulator-ca.pem"),
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.control is not None:
            self.control.close()


# `pushgate serve` with extra environment variables: Server's `env` field.
EnvServer = Server


def create_emulator_partner(data_dir: Path, srv: Server) -> Partner:
    out = srv.cli(
        "partners",
        "create",
        f"killtest{os.getpid()}x{time.time_ns()}",
        "--data-dir",
        str(data_dir),
        "--emulator-credentials",
    )
    secrets = json.loads(out.stdout)
    return Partner(
        secrets["partner"], secrets["api_key"], secrets["request_token"], secrets["sdk_key"], srv
    )
