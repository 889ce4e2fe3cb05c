"""End-to-end delivery: the real `pushgate serve` process delivering to the provider emulators.

Fixtures: `server` (one `serve --emulate` per module), `partner` and `standalone` (`pushgate
emulate` as its own process) come from tests/conftest.py; `serve_against` starts `pushgate
serve` (without --emulate) pointed at the standalone emulators.

Sources of truth: /work/shared/spec/providers.md, contract.md ("Emulators"),
targeted-push-api.txt ("Fail Records Messages").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.emulated import (
    Control,
    EnvServer,
    Standalone,
)
from tests.support.server import Partner, Server


@pytest.fixture(scope="module")
def control(server: Server) -> Iterator[Control]:
    """The control routes of the module's `serve --emulate`; faults are cleared after each use."""
    ctl = Control(server.base_url)
    yield ctl
    ctl.close()


@pytest.fixture
def emulator(control: Control) -> Iterator[Control]:
    control.clear_faults()
    yield control
    control.clear_faults()


@pytest.fixture(scope="module")
def shared_partner(server: Server) -> Partner:
    """One partner for a whole module (creating one costs a CLI run); tests tell their users
    apart by token."""
    return server.create_partner()


@pytest.fixture
def serve_against(standalone: Standalone) -> Iterator[Callable[[], EnvServer]]:
    """Start `pushgate serve` (no --emulate) on the standalone emulators' data dir, pointed at
    them; every server started is stopped at the end."""
    started: list[EnvServer] = []

    def start() -> EnvServer:
        srv = Server(
            standalone.data_dir,
            emulate=False,
            backend_env=standalone.backend_env,
            env=standalone.provider_env(),
        )
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()
