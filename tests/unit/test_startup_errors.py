"""Configuration mistakes as one line (startup_errors.py): which errors are mistakes and what
their line says, the data dir and port checks, and a service startup hook's mistake logged as
that line without a traceback. tests/e2e/test_config_mistakes.py runs the real command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from pushgate.api.app import App
from pushgate.config import ConfigError, check_port, usable_data_dir
from pushgate.startup_errors import explained


@pytest.mark.parametrize(
    ("module", "extra", "setting"),
    [
        ("psycopg", "postgres", "PUSHGATE_DATABASE_URL"),
        ("psycopg_pool", "postgres", "PUSHGATE_DATABASE_URL"),
        ("psycopg.pq", "postgres", "PUSHGATE_DATABASE_URL"),
        ("redis", "redis", "PUSHGATE_REDIS_URL"),
        ("redis.asyncio", "redis", "PUSHGATE_REDIS_URL"),
        ("nats", "nats", "PUSHGATE_QUEUE_URL"),
    ],
)
def test_a_missing_optional_module_names_its_extra(module: str, extra: str, setting: str) -> None:
    mistake = explained(ModuleNotFoundError(f"No module named {module!r}", name=module))
    assert mistake is not None
    assert str(mistake) == (
        f"{setting} needs the {extra} extra, which is not installed (no module named"
        f' {module!r}): pip install "pushgate[{extra}]"'
    )


def test_a_key_that_fails_on_a_credential_names_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUSHGATE_SECRET_KEY", "x")
    mistake = explained(InvalidTag())
    assert mistake is not None and str(mistake).startswith(
        "PUSHGATE_SECRET_KEY does not open the provider credentials stored in the database"
    )


@pytest.mark.parametrize(
    "error",
    [
        ModuleNotFoundError("No module named 'httpx'", name="httpx"),  # a required one: a bug
        ModuleNotFoundError("No module named 'redisx'", name="redisx"),
        ValueError("a bug"),
        KeyboardInterrupt(),
    ],
)
def test_anything_else_is_not_a_mistake(error: BaseException) -> None:
    assert explained(error) is None


def test_a_config_error_is_its_own_line() -> None:
    error = ConfigError("PUSHGATE_PORT must be a whole number, not 'x'")
    assert explained(error) is error


@pytest.mark.parametrize("port", [-1, 65536, 70000])
def test_a_port_out_of_range_is_a_mistake(port: int) -> None:
    with pytest.raises(ConfigError, match=f"^--port must be from 0 to 65535, not {port}$"):
        check_port("--port", port)


def test_a_data_dir_is_made_when_it_can_be(tmp_path: Path) -> None:
    assert usable_data_dir(tmp_path / "a" / "b").is_dir()


def test_a_data_dir_under_a_file_or_that_is_one_is_a_mistake(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="cannot be used: not a directory"):
        usable_data_dir(tmp_path / "f" / "data")
    with pytest.raises(ConfigError, match="cannot be used: it is a file, not a directory"):
        usable_data_dir(tmp_path / "f")


async def start_failing(caplog: pytest.LogCaptureFixture, error: Exception) -> list[dict[str, Any]]:
    """An App whose startup hook raises `error`, started as uvicorn's lifespan does; the
    messages it sent back."""
    app = App()

    async def hook() -> None:
        raise error

    app.on_startup.append(hook)
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    with caplog.at_level(logging.ERROR, logger="pushgate.api"):
        await app({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    return sent


async def test_a_mistake_in_a_startup_hook_is_logged_as_its_line_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = await start_failing(caplog, ModuleNotFoundError("No module named 'nats'", name="nats"))
    # uvicorn logs a message given with the failure: none, so the line is logged once.
    assert sent == [{"type": "lifespan.startup.failed", "message": ""}]
    records = [r for r in caplog.records if r.name == "pushgate.api"]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in records] == [
        (
            "ERROR",
            "PUSHGATE_QUEUE_URL needs the nats extra, which is not installed (no module named"
            " 'nats'): pip install \"pushgate[nats]\"",
            None,
        )
    ]


async def test_any_other_startup_failure_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = await start_failing(caplog, RuntimeError("a bug"))
    assert sent == [{"type": "lifespan.startup.failed", "message": "a bug"}]
    assert [r.exc_info is not None for r in caplog.records if r.name == "pushgate.api"] == [True]
