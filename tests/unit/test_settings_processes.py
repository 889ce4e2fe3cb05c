"""How `serve` sizes itself: API and delivery processes by core count and role, and the
PostgreSQL pool; a mistaken value is a ConfigError (one line for the operator)."""

from __future__ import annotations

import pytest

from pushgate import config
from pushgate.config import ConfigError, Settings


@pytest.fixture
def cores(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("API_PROCESSES", "WORKERS", "DATABASE_POOL", "ROLE"):
        monkeypatch.delenv(config.ENV_PREFIX + name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("count", "role", "api", "workers"),
    [
        (1, "all", 1, 1),
        (2, "all", 1, 1),  # one of each: API and delivery in the serving process
        (8, "all", 4, 4),
        (2, "api", 2, 1),
        (8, "api", 8, 1),
        (8, "worker", 1, 7),  # a core left to the database or an API on the machine
    ],
)
def test_processes_follow_the_cores_and_the_role(
    cores: pytest.MonkeyPatch, count: int, role: str, api: int, workers: int
) -> None:
    cores.setattr(config.os, "cpu_count", lambda: count)
    settings = Settings.load(role=role)
    assert (settings.api_processes, settings.workers) == (api, workers)


def test_flags_win_over_the_environment(cores: pytest.MonkeyPatch) -> None:
    cores.setenv("PUSHGATE_API_PROCESSES", "3")
    assert Settings.load().api_processes == 3
    assert Settings.load(api_processes=2).api_processes == 2


@pytest.mark.parametrize("value", ["0", "65", "eight"])
def test_a_mistaken_database_pool_is_a_config_error(cores: pytest.MonkeyPatch, value: str) -> None:
    cores.setenv("PUSHGATE_DATABASE_POOL", value)
    with pytest.raises(ConfigError, match="PUSHGATE_DATABASE_POOL must be"):
        Settings.load()


def test_the_database_pool_is_read_once(cores: pytest.MonkeyPatch) -> None:
    assert Settings.load().database_pool == 8
    cores.setenv("PUSHGATE_DATABASE_POOL", "2")
    assert Settings.load().database_pool == 2
