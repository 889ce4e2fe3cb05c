"""Fixtures every test directory may use: the real service (`pushgate serve` as a process) on
each backend, its partners, and the standalone emulators (`pushgate emulate`). What they are
built from is in tests/support/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.emulated import Standalone
from tests.support.server import (
    BACKENDS,
    Partner,
    Server,
    new_backend_env,
)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Server]:
    """One emulated server per test module and backend; tests isolate themselves with their
    own partner."""
    srv = Server(tmp_path_factory.mktemp("srv") / "data", backend_env=new_backend_env(backend))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def partner(server: Server) -> Partner:
    return server.create_partner()


@pytest.fixture
def start_server(tmp_path: Path, backend: str) -> Iterator[Any]:
    """Start servers with custom options; all are stopped at the end of the test. A server
    started on the data dir of an earlier one uses its database too."""
    started: list[Server] = []
    backends: dict[Path, dict[str, str]] = {}

    def start(emulate: bool = True, data_dir: Path | None = None) -> Server:
        data_dir = data_dir or tmp_path / f"data{len(started)}"
        if data_dir not in backends:
            backends[data_dir] = new_backend_env(backend)
        srv = Server(data_dir, emulate=emulate, backend_env=backends[data_dir]).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def standalone(tmp_path: Path, backend: str) -> Iterator[Standalone]:
    emu = Standalone(tmp_path / "data", new_backend_env(backend)).start()
    yield emu
    emu.stop()
