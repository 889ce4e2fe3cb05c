"""Configuration mistakes as one line each, never a traceback (docs/operations.md,
"Configuration mistakes").

Where a mistake is found it becomes a `ConfigError` (config.py) whose message is the line the
operator sees: a setting that cannot be used (`Settings.load`, `check_port`), a data dir that
cannot be used (`config.usable_data_dir`), a database URL that is not PostgreSQL's or a database
that cannot be reached (`store.postgres.parse_url`, `reach`), a secret key that does not open
the credentials stored sealed (`store.credentials.sealing_box`, `crypto.decode_key`). Two kinds
show up only as other exceptions, wherever they happen: an optional dependency that is not
installed (ModuleNotFoundError) and a key that fails on a credential (InvalidTag); `explained`
turns them into the same kind of line.

The `pushgate` command prints the line as `Error: ...` and exits with status 2 (cli.py); a
service's startup hooks log it as one line (api/app.py). `check_serve` finds what `pushgate
serve` would otherwise find inside uvicorn's startup, before anything starts.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from pathlib import Path

from cryptography.exceptions import InvalidTag

from pushgate import names
from pushgate.config import ENV_PREFIX, ConfigError, Settings, os_reason, usable_data_dir
from pushgate.crypto import wrong_key

# The extras of the optional backends (pyproject.toml): the setting that needs each, and the
# modules it installs. `pip install "pushgate[all]"` installs the three.
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "postgres": (f"{ENV_PREFIX}DATABASE_URL", ("psycopg", "psycopg_pool")),
    "redis": (f"{ENV_PREFIX}REDIS_URL", ("redis",)),
    "nats": (f"{ENV_PREFIX}QUEUE_URL", ("nats",)),
}


def missing_extra(extra: str, module: str) -> ConfigError:
    setting = EXTRAS[extra][0]
    return ConfigError(
        f"{setting} needs the {extra} extra, which is not installed (no module named"
        f' {module!r}): pip install "pushgate[{extra}]"'
    )


def require(extra: str) -> None:
    """Import the extra's modules; one that is not installed is a ConfigError."""
    for module in EXTRAS[extra][1]:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise missing_extra(extra, error.name or module) from None


def explained(error: BaseException) -> ConfigError | None:
    """`error` as the one line of a configuration mistake; None for anything else (a bug, a
    refusal, an interruption), which keeps its own handling."""
    if isinstance(error, ConfigError):
        return error
    if isinstance(error, ModuleNotFoundError) and error.name:
        top = error.name.partition(".")[0]
        for extra, (_, modules) in EXTRAS.items():
            if top in modules:
                return missing_extra(extra, error.name)
    if isinstance(error, InvalidTag):
        return wrong_key()
    return None


def check_serve(settings: Settings) -> None:
    """What `serve` needs, checked before anything starts: the extras of the URLs set, the data
    dir, the TLS files, the provider CA file, the database (reached, its schema in place) and the
    secret key opening what it holds sealed, the Redis URL, NATS with JetStream answering."""
    for extra, url in (
        ("postgres", settings.database_url),
        ("redis", settings.redis_url),
        ("nats", settings.queue_url),
    ):
        if url:
            require(extra)
    usable_data_dir(settings.data_dir)
    _check_tls(settings)
    if not settings.emulate and settings.provider_ca_file is not None:
        _check_readable(str(settings.provider_ca_file), f"{ENV_PREFIX}PROVIDER_CA_FILE")
    check_store(settings.data_dir, settings.database_url)
    if settings.redis_url:  # a Redis away is not a mistake: /readyz says so until it is back
        from pushgate.limits.redis import check_url

        check_url(settings.redis_url)
    if settings.queue_url:
        from pushgate.queue import jetstream

        asyncio.run(
            jetstream.check_reachable(
                settings.queue_url,
                stream=names.jobs_stream(settings.queue_prefix),
                installation=installation(settings.data_dir, settings.database_url),
            )
        )


def check_store(data_dir: Path, database_url: str | None) -> None:
    """The database reached, its schema in place, and the secret key opening what it holds
    sealed (store/credentials.sealing_box)."""
    from pushgate.store.backend import connect_sync
    from pushgate.store.credentials import sealing_box

    conn = connect_sync(data_dir, database_url)
    try:
        sealing_box(conn, data_dir)
    finally:
        conn.close()


def installation(data_dir: Path, database_url: str | None) -> str:
    """This installation's id (queue/table.installation_id)."""
    from pushgate.queue.table import installation_id
    from pushgate.store.backend import connect_sync

    conn = connect_sync(data_dir, database_url)
    try:
        return installation_id(conn)  # autocommit: a new id is kept at once
    finally:
        conn.close()


def _check_readable(path: str, setting: str) -> None:
    try:
        Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{setting} {path!r} cannot be read: {os_reason(error)}") from None


def _check_tls(settings: Settings) -> None:
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        return
    names = f"--tls-cert and --tls-key ({ENV_PREFIX}TLS_CERT, {ENV_PREFIX}TLS_KEY)"
    if cert is None:
        raise ConfigError(f"--tls-key needs --tls-cert: {names}")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError:
        reason = "not a PEM certificate and its private key"
    except OSError as error:
        reason = os_reason(error)
    else:
        return
    files = ", ".join(str(p) for p in (cert, key) if p is not None)
    raise ConfigError(f"{names} cannot be used ({files}): {reason}")
