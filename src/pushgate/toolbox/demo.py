"""`pushgate demo`: a new user's first minute, end to end, on a throwaway data dir.

It starts `pushgate serve --emulate` as a child process (the real server, workers and
emulators, nothing mocked), creates a partner, registers three devices the way the mobile
SDK does, sends a push through the Targeted Push API, waits for the emulators to receive
it, reports the app's receipt and one open, and prints the campaign's funnel. The child is
stopped and the data dir removed at the end, whatever happens.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from rich.console import Console

from pushgate.client import NO_RETRY, ConnectionFailed, PushgateClient
from pushgate.config import usable_data_dir
from pushgate.toolbox import admin, render
from pushgate.toolbox.send import Content, send_each
from pushgate.wire.sdk import Device, PushEvent
from pushgate.wire.stats import CampaignReport

T = TypeVar("T")
CAMP_ID = 1
# The demo is the embedded default whatever this shell points at: a throwaway data dir must
# not leave rows in a shared PostgreSQL, Redis or NATS.
BACKEND_SETTINGS = (
    "PUSHGATE_DATABASE_URL",
    "PUSHGATE_REDIS_URL",
    "PUSHGATE_QUEUE_URL",
    "PUSHGATE_DATA_DIR",
    "PUSHGATE_PORT",
    "PUSHGATE_HOST",
    "PUSHGATE_ROLE",
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    email: str
    name: str
    platform: str

    def token(self) -> str:
        # The providers' token shapes: APNs 64 hex digits, FCM and HMS opaque strings.
        if self.platform == "ios":
            return secrets.token_hex(32)
        if self.platform == "android":
            return f"f{secrets.token_hex(5)}:APA91b{secrets.token_hex(40)}"
        return f"IQAAAACy{secrets.token_hex(30)}"


USERS = (
    DemoUser("ada@example.com", "Ada", "ios"),
    DemoUser("grace@example.com", "Grace", "android"),
    DemoUser("hedy@example.com", "Hedy", "huawei"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


@contextmanager
def _server(data_dir: Path, port: int, log: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if k not in BACKEND_SETTINGS}
    args = [sys.executable, "-m", "pushgate.cli", "serve", "--emulate"]
    args += ["--data-dir", str(data_dir), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with PushgateClient(base, retry=NO_RETRY, timeout=5) as probe:

            def healthy() -> bool | None:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited:\n{log.read_text()}")
                try:
                    return True if probe.health().status == "ok" else None
                except ConnectionFailed:
                    return None

            _wait("the server's /healthz", healthy, 30)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_demo(console: Console, data_dir: Path | None, keep: bool) -> CampaignReport:
    started = time.monotonic()
    throwaway = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="pushgate-demo-")) if throwaway else None
    directory = (root / "data") if root else data_dir
    assert directory is not None
    if not throwaway:
        usable_data_dir(directory)  # a mistaken --data-dir is one line, before anything starts
    log = (root or directory.parent) / "pushgate-demo-serve.log"

    def step(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:5.1f}s[/] [bold]{text}[/]")

    try:
        step(f"1. pushgate serve --emulate --data-dir {directory}")
        with _server(directory, _free_port(), log) as base:
            step(f"   listening on {base} (APNs, FCM and HMS emulators inside)")
            report = _walk(console, step, directory, base)
        gone = " and the throwaway data dir goes" if root is not None and not keep else ""
        step(f"done: the server stopped{gone}")
        return report
    finally:
        if root is not None and not keep:
            shutil.rmtree(root, ignore_errors=True)
        elif root is not None:
            console.print(f"kept {root} (server log: {log})")


def _walk(
    console: Console, step: Callable[[str], None], directory: Path, base: str
) -> CampaignReport:
    name = f"demo-{secrets.token_hex(3)}"
    step(f"2. pushgate partners create {name}")
    keys = admin.create_partner(directory, None, name, emulator_credentials=True)
    console.print(f"   api_key {render.mask(keys.api_key)}, sdk_key {render.mask(keys.sdk_key)}")
    with (
        PushgateClient(base, sdk_key=keys.sdk_key) as app,
        PushgateClient(base, api_key=keys.api_key) as business,
        # The emulators' control routes are not the partner's API: plain httpx.
        httpx.Client(base_url=base) as emulator,
    ):
        step("3. three devices register, as the mobile SDK does (POST /api/sdk/v1/session)")
        insider_ids: dict[str, str] = {}
        tokens: set[str] = set()
        for user in USERS:
            token = user.token()
            tokens.add(token)
            device = Device(platform=user.platform, device_token=token, push_optin=True)
            found = app.session(
                device, identifiers={"email": user.email}, attributes={"name": user.name}
            )
            insider_ids[user.email] = found.insider_id
            console.print(f"   {user.email:<20} {user.platform:<8} {render.mask(token)}")
        step("4. pushgate send (POST /api/v2/notification/user)")
        content = Content(CAMP_ID, "Welcome", "Hello", "Your first push through pushgate")
        lines = send_each(business, [f"email:{u.email}" for u in USERS], content)
        render.send_table(console, CAMP_ID, lines)
        step("5. the workers deliver: waiting for the emulators to accept every push")

        def delivered() -> int | None:
            got = {d["token"] for d in emulator.get("/emulator/v1/deliveries").json()}
            return len(got) if tokens <= got else None

        _wait("delivery to the emulators", delivered, 20)

        def settled() -> CampaignReport | None:
            report = business.campaign_report(CAMP_ID)
            f = report.funnel
            return report if f.queued and f.accepted + f.failed + f.expired == f.queued else None

        _wait("the workers' records", settled, 20)
        step("6. the apps confirm receipt, and Ada opens it (POST /api/sdk/v1/events)")
        for user in USERS:
            events = [PushEvent(event_name="push_delivered", camp_id=CAMP_ID)]
            if user.platform == "ios":
                events.append(PushEvent(event_name="push_session", camp_id=CAMP_ID))
            app.events(insider_ids[user.email], events)
        step(f"7. pushgate campaigns show {CAMP_ID} (GET /api/v1/campaigns/{CAMP_ID}/report)")
        report = business.campaign_report(CAMP_ID)
        render.campaign_report(console, report)
    return report
