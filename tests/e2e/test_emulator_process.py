"""`pushgate serve --emulate` with the emulators in a process of their own
(`PUSHGATE_EMULATOR_PROCESS`, on by default where there is more than one core).

- pushes are delivered to the child's emulators, and the control routes answer on the serving
  port as contract.md has them (errors in their documented shape included);
- the child is a child: SIGKILL of the server leaves none running; a child killed alone is
  started again on the same ports, and delivery goes on;
- `off` keeps the emulators in the serving process; a mistaken value is one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.emulated import (
    Control,
    children,
    device_token,
    notification,
    push_all,
    running,
    wait_for,
)
from tests.support.server import PUSHGATE, Server, new_backend_env, process_env

CHILD_MODULE = "pushgate.emulators.child"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def emulator_children(server: Server) -> list[int]:
    assert server.proc is not None
    return [p for p in children(server.proc.pid) if CHILD_MODULE in command_line(p)]


@pytest.fixture
def serve(tmp_path: Path, backend: str):  # type: ignore[no-untyped-def]
    started: list[Server] = []

    def start(setting: str) -> Server:
        srv = Server(
            tmp_path / f"data{len(started)}",
            backend_env=new_backend_env(backend),
            env={"PUSHGATE_EMULATOR_PROCESS": setting},
        )
        started.append(srv.start())
        return srv

    yield start
    for srv in started:
        srv.stop()


def push_one(server: Server, platform: str) -> str:
    partner = server.create_partner()
    token = device_token(platform)
    uuid = f"u-{os.urandom(4).hex()}"
    partner.session({"uuid": uuid}, platform=platform, token=token)
    assert push_all(partner, [notification(uuid)]) == [token]
    return token


def test_pushes_reach_the_emulators_process_and_its_routes_answer_on_the_serving_port(
    serve,  # type: ignore[no-untyped-def]
) -> None:
    server = serve("on")
    children = emulator_children(server)
    assert len(children) == 1, [command_line(p) for p in children(server.proc.pid)]
    control = Control(server.base_url)
    try:
        info = control.info()
        assert set(info) >= {"apns", "fcm", "hms", "ca_pem"}
        tokens = [push_one(server, platform) for platform in ("ios", "android", "huawei")]
        control.wait_delivered(tokens, timeout=20)
        delivered = control.deliveries(platform="android", token=tokens[1])
        assert [d["token"] for d in delivered] == [tokens[1]]
        # The control routes' own errors pass through as they are.
        bad = control.client.post("/emulator/v1/tokens", json={"platform": "pager"})
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/json")
        assert bad.json()["error"] == "invalid_request"
        assert control.client.delete("/emulator/v1/deliveries").json()["deleted"] >= 3
        assert control.deliveries() == []
    finally:
        control.close()


def test_a_killed_server_leaves_no_emulators_process(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("on")
    (child,) = emulator_children(server)
    server.kill()
    assert wait_for(lambda: not running(child), 10), command_line(child)


def test_an_emulators_process_killed_alone_is_started_again_on_the_same_ports(
    serve,  # type: ignore[no-untyped-def]
) -> None:
    server = serve("on")
    control = Control(server.base_url)
    try:
        before = control.info()
        (child,) = emulator_children(server)
        os.kill(child, signal.SIGKILL)
        assert wait_for(lambda: emulator_children(server) not in ([], [child]), 20)
        assert wait_for(lambda: control.client.get("/emulator/v1/info").status_code == 200, 20)
        assert control.info() == before
        token = push_one(server, "ios")
        control.wait_delivered([token], timeout=20)
    finally:
        control.close()


def test_off_keeps_the_emulators_in_the_serving_process(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("off")
    assert emulator_children(server) == []
    control = Control(server.base_url)
    try:
        token = push_one(server, "huawei")
        control.wait_delivered([token], timeout=20)
    finally:
        control.close()


def test_a_mistaken_setting_is_one_line(tmp_path: Path) -> None:
    env = process_env({}, {"PUSHGATE_EMULATOR_PROCESS": "maybe"})
    out = subprocess.run(
        [PUSHGATE, "serve", "--emulate", "--data-dir", str(tmp_path / "d"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert lines == ["Error: PUSHGATE_EMULATOR_PROCESS must be on or off, not 'maybe'"], out.stderr


async def test_a_first_start_whose_ports_were_taken_meanwhile_tries_other_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process takes the control port between its choice and the child's bind: the
    child exits at once, and the first start is tried again on other ports."""
    import socket

    from pushgate.emulators import child

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    chosen = iter([[taken.getsockname()[1], *child._free_ports(4)]])
    free_ports = child._free_ports
    monkeypatch.setattr(child, "_free_ports", lambda n: next(chosen, None) or free_ports(n))
    process = child.EmulatorProcess(tmp_path, None, "auto")
    try:
        info = await process.start()
        assert process.control_port != taken.getsockname()[1]
        assert info["apns"]["url"]
    finally:
        await process.stop()
        taken.close()
