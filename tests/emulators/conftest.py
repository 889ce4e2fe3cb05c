"""Fixtures: the three emulators running on free ports (TLS with their own CA), and a clock the
tests can move."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pushgate.emulators import Emulators
from pushgate.emulators.credentials import rsa_private_key_pem
from tests.support.emulator_clock import (
    Clock,
    ServiceAccount,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def emulators(tmp_path: Path, clock: Clock) -> AsyncIterator[Emulators]:
    running = Emulators(ca_dir=tmp_path / "ca", clock=clock)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="session")
def rsa_keys() -> tuple[str, str]:
    """Two RSA keys made once: generating one per service account would dominate the run time."""
    return rsa_private_key_pem(), rsa_private_key_pem()


@pytest.fixture
def service_account(emulators: Emulators, rsa_keys: tuple[str, str]) -> ServiceAccount:
    """Registers a fresh emulator service account (fresh ids; key number `key` of `rsa_keys`)."""

    def make(project_id: str | None = None, key: int = 0) -> dict[str, str]:
        return emulators.generate_fcm_service_account(project_id, rsa_keys[key])

    return make
