"""Options and plumbing shared by the `pushgate` commands: where the data is, which server,
which key."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pushgate.config import Settings

if TYPE_CHECKING:
    from pushgate.client import PushgateClient

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_URL = "http://127.0.0.1:8080"


def data_dir_option(f: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path),  # checked on use: config.usable_data_dir
        default=None,
        help="Where the embedded database lives (default ./pushgate-data, or PUSHGATE_DATA_DIR).",
    )(f)


def resolve_data_dir(value: Path | None) -> Path:
    return value or Settings.load().data_dir


def database_url() -> str | None:
    return Settings.load().database_url


def url_option(f: F) -> F:
    return click.option(
        "--url",
        envvar="PUSHGATE_URL",
        default=None,
        help=f"The server's base URL (default {DEFAULT_URL}, or PUSHGATE_URL).",
    )(f)


def import_url_option(f: F) -> F:
    # No PUSHGATE_URL here: a shell that exported it for `send` must not turn an import on
    # the database into one over HTTP.
    return click.option(
        "--url",
        default=None,
        help="Import through the server at this base URL instead of on the database.",
    )(f)


def api_key_option(f: F) -> F:
    return click.option(
        "--api-key",
        envvar="PUSHGATE_API_KEY",
        default=None,
        help="The partner's API key (or PUSHGATE_API_KEY); `partners create` printed it.",
    )(f)


def need_api_key(api_key: str | None, partner: str | None = None) -> str:
    if api_key:
        return api_key
    whose = f"{partner!r}'s" if partner else "the partner's"
    raise click.UsageError(
        f"this command needs {whose} API key: --api-key or PUSHGATE_API_KEY. Keys are stored"
        " only as hashes, so they cannot be read from the data dir; `pushgate partners"
        " create` printed it once, and `pushgate partners rotate-keys` issues new ones."
    )


def client(
    url: str | None,
    *,
    api_key: str | None = None,
    sdk_key: str | None = None,
    partner_name: str | None = None,
    request_token: str | None = None,
) -> PushgateClient:
    """`pushgate.client`: its retries of 429/503 after Retry-After serve the CLI too."""
    from pushgate.client import PushgateClient

    return PushgateClient(
        url or DEFAULT_URL,
        api_key=api_key,
        sdk_key=sdk_key,
        partner_name=partner_name,
        request_token=request_token,
    )


@contextlib.contextmanager
def http_errors(url: str | None) -> Iterator[None]:
    """The client's errors as one-line messages (exit status 1)."""
    from pushgate.client import ConnectionFailed, PushgateError

    try:
        yield
    except ConnectionFailed:
        raise click.ClickException(
            f"no answer from {url or DEFAULT_URL}: is `pushgate serve` running there? (--url)"
        ) from None
    except PushgateError as error:
        raise click.ClickException(str(error)) from None
