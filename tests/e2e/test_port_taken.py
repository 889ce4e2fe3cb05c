"""`pushgate serve` on a port another process holds: uvicorn cannot bind, and the service stops
at once with the port named and a non-zero status, every background loop ended (it used to hang
for good with API and delivery in one process: Python 3.11's wait_for lost the cancellation
of the backlog reader when its first read ended as the shutdown began)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.server import PUSHGATE, process_env


@pytest.mark.parametrize("role", ["all", "api", "worker"])
def test_serve_on_a_taken_port_stops_and_names_the_port(tmp_path: Path, role: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [PUSHGATE, "serve", "--emulate", "--role", role, "--port", str(port)]
        out = subprocess.run(
            [*command, "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            env=process_env({}, {}),
        )
    assert out.returncode != 0
    assert f"('127.0.0.1', {port}): address already in use" in out.stdout + out.stderr
