"""A configuration mistake is one line and exit status 2, never a traceback (issue 15; docs/
operations.md, "Configuration mistakes"): the real `pushgate` command, for each mistake an
operator can make (a missing extra, a URL that is not the backend's, a backend that does not
answer, a data dir that cannot be used, a secret key that does not open the stored credentials,
a port that cannot be), and nothing stored changed by it."""

from __future__ import annotations

import base64
import os
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.emulated import one_line, pushgate
from tests.support.server import (
    BACKENDS,
    POSTGRES_URL,
    PUSHGATE,
    REDIS_URL,
    free_port,
    new_backend_env,
    process_env,
)

NATS_URL = os.environ.get("PUSHGATE_TEST_NATS", "nats://127.0.0.1:4222")


def closed_port() -> int:
    """A port nothing listens on (free a moment ago)."""
    return free_port()


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


SERVE = ("serve", "--port", "0")


# ---- a missing optional dependency names its extra ----


def missing(tmp_path: Path, *modules: str) -> dict[str, str]:
    """An environment where importing `modules` fails as if they were not installed: a package
    of each name, first on the path, raising what a missing module raises."""
    fake = tmp_path / "not-installed"
    for module in modules:
        (fake / module).mkdir(parents=True)
        message = f"No module named {module!r}"
        (fake / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError({message!r}, name={module!r})\n"
        )
    path = [str(fake), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


@pytest.mark.parametrize(
    ("extra", "setting", "url", "modules", "command"),
    [
        ("postgres", "PUSHGATE_DATABASE_URL", POSTGRES_URL, ["psycopg"], SERVE),
        ("postgres", "PUSHGATE_DATABASE_URL", POSTGRES_URL, ["psycopg"], ("migrate",)),
        (
            "postgres",
            "PUSHGATE_DATABASE_URL",
            POSTGRES_URL,
            ["psycopg"],
            ("partners", "create", "acme"),
        ),
        ("postgres", "PUSHGATE_DATABASE_URL", POSTGRES_URL, ["psycopg_pool"], SERVE),
        ("redis", "PUSHGATE_REDIS_URL", REDIS_URL, ["redis"], SERVE),
        ("nats", "PUSHGATE_QUEUE_URL", NATS_URL, ["nats"], SERVE),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    tmp_path: Path,
    extra: str,
    setting: str,
    url: str,
    modules: list[str],
    command: tuple[str, ...],
) -> None:
    data = tmp_path / "data"
    env = {setting: url, **missing(tmp_path, *modules)}
    line = one_line(pushgate(*command, "--data-dir", data, env=env))
    assert line == (
        f"Error: {setting} needs the {extra} extra, which is not installed (no module named"
        f' {modules[0]!r}): pip install "pushgate[{extra}]"'
    )
    assert not data.exists()  # found before anything started


# ---- URLs that are not the backend's, backends that do not answer ----


# {port}: a port nothing listens on, chosen when the test runs.
URL_MISTAKES = {
    "not-postgresql": (
        "PUSHGATE_DATABASE_URL",
        "mysql://root@127.0.0.1/pushgate",
        "Error: PUSHGATE_DATABASE_URL must be a PostgreSQL URL:"
        " postgresql://user@host:5432/db[?schema=name]",
    ),
    "postgresql-bad-port": (
        "PUSHGATE_DATABASE_URL",
        "postgresql://postgres@127.0.0.1:fivefourthreetwo/test",
        "Error: PUSHGATE_DATABASE_URL: connection is bad: invalid integer value"
        ' "fivefourthreetwo" for connection option "port"',
    ),
    "postgresql-bad-schema": (
        "PUSHGATE_DATABASE_URL",
        "postgresql://postgres@127.0.0.1:5432/test?schema=Not-A-Name",
        "Error: PUSHGATE_DATABASE_URL: schema name 'Not-A-Name': lower-case letters, digits"
        " and _ only",
    ),
    "postgresql-unreachable": (
        "PUSHGATE_DATABASE_URL",
        "postgresql://postgres@127.0.0.1:{port}/test",
        'Error: PUSHGATE_DATABASE_URL: connection failed: connection to server at "127.0.0.1",'
        " port {port} failed: Connection refused",
    ),
    "not-redis": (
        "PUSHGATE_REDIS_URL",
        "http://127.0.0.1:6379/0",
        "Error: PUSHGATE_REDIS_URL is not a Redis URL: Redis URL must specify one of the"
        " following schemes (redis://, rediss://, unix://)",
    ),
    "redis-bad-port": (
        "PUSHGATE_REDIS_URL",
        "redis://127.0.0.1:notaport/0",
        "Error: PUSHGATE_REDIS_URL is not a Redis URL: Port could not be cast to integer value",
    ),
    # A Redis that does not answer is not a mistake: the server starts unready
    # (tests/integration/test_health.py), as when Redis goes away later.
    "not-nats": (
        "PUSHGATE_QUEUE_URL",
        "http://127.0.0.1:4222",
        "Error: PUSHGATE_QUEUE_URL must be a NATS URL: nats://host:4222",
    ),
    "nats-unreachable": (
        "PUSHGATE_QUEUE_URL",
        "nats://127.0.0.1:{port}",
        "Error: PUSHGATE_QUEUE_URL: no answer from NATS: [Errno 111] Connect call failed"
        " ('127.0.0.1', {port})",
    ),
}


@pytest.mark.parametrize("mistake", URL_MISTAKES)
def test_serve_with_a_backend_it_cannot_use_is_one_line(tmp_path: Path, mistake: str) -> None:
    port = closed_port()
    setting, url, says = (text.replace("{port}", str(port)) for text in URL_MISTAKES[mistake])
    data = tmp_path / "data"
    line = one_line(pushgate(*SERVE, "--data-dir", data, env={setting: url}))
    assert line.startswith(says), line


@pytest.mark.parametrize(
    "command",
    [
        ("migrate",),
        ("partners", "create", "acme"),
        ("partners", "rotate-keys", "acme"),
        ("partners", "update", "acme", "--rate-limit", "5"),
        ("certs", "list"),
        ("campaigns", "list", "--partner", "acme"),
        ("emulate", "--port", "0"),
    ],
)
def test_every_command_on_an_unreachable_database_is_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    port = closed_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/test"
    line = one_line(
        pushgate(*command, "--data-dir", tmp_path / "data", env={"PUSHGATE_DATABASE_URL": url})
    )
    assert line.startswith(
        f'Error: PUSHGATE_DATABASE_URL: connection failed: connection to server at "127.0.0.1",'
        f" port {port} failed: Connection refused"
    ), line


# ---- a data dir that cannot be used ----


def under_a_file(tmp_path: Path) -> Path:
    """A data dir whose parent is a regular file: neither root nor anyone can create it."""
    (tmp_path / "a-file").write_text("not a directory\n")
    return tmp_path / "a-file" / "data"


@pytest.mark.parametrize(
    "command",
    [
        SERVE,
        ("migrate",),
        ("partners", "create", "acme"),
        ("partners", "rotate-keys", "acme"),
        ("partners", "update", "acme", "--rate-limit", "5"),
        ("users", "import", "users.csv", "--partner", "acme"),
        ("campaigns", "list", "--partner", "acme"),
        ("campaigns", "show", "1", "--partner", "acme"),
        ("certs", "list"),
        ("emulate", "--port", "0"),
        ("demo",),
    ],
)
def test_a_data_dir_that_cannot_be_used_is_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    data = under_a_file(tmp_path)
    (tmp_path / "users.csv").write_text("email,name\nada@example.com,Ada\n")
    done = subprocess.run(
        [PUSHGATE, *command, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        env=process_env({}, {}),
        cwd=tmp_path,
    )
    assert one_line(done) == (
        f"Error: the data dir {str(data)!r} cannot be used: not a directory"
        " (--data-dir or PUSHGATE_DATA_DIR)"
    )


@pytest.mark.parametrize("command", [SERVE, ("migrate",), ("partners", "create", "acme")])
def test_a_data_dir_from_the_environment_that_is_a_file_is_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    line = one_line(pushgate(*command, env={"PUSHGATE_DATA_DIR": str(tmp_path / "a-file")}))
    assert line == (
        f"Error: the data dir {str(tmp_path / 'a-file')!r} cannot be used: it is a file, not a"
        " directory (--data-dir or PUSHGATE_DATA_DIR)"
    )


def test_a_data_dir_holding_something_else_than_a_database_is_one_line_and_kept(
    tmp_path: Path,
) -> None:
    database = tmp_path / "data" / "pushgate.sqlite3"
    database.parent.mkdir()
    database.write_text("not a database\n")
    for command in (SERVE, ("migrate",), ("partners", "create", "acme")):
        line = one_line(pushgate(*command, "--data-dir", tmp_path / "data"))
        assert line == (
            f"Error: the database {str(database)!r} cannot be used: file is not a database"
            " (--data-dir or PUSHGATE_DATA_DIR)"
        )
    assert database.read_text() == "not a database\n"


# ---- ports, TLS files ----


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--port", "70000"], {}, "Error: --port must be from 0 to 65535, not 70000"),
        ([], {"PUSHGATE_PORT": "70000"}, "Error: PUSHGATE_PORT must be from 0 to 65535, not 70000"),
        ([], {"PUSHGATE_PORT": "-1"}, "Error: PUSHGATE_PORT must be from 0 to 65535, not -1"),
        ([], {"PUSHGATE_PORT": "http"}, "Error: PUSHGATE_PORT must be a whole number, not 'http'"),
    ],
)
def test_a_port_that_cannot_be_is_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    data = tmp_path / "data"
    assert one_line(pushgate("serve", "--data-dir", data, *args, env=env)) == says
    assert not data.exists()


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    """tests/e2e/test_port_taken.py checks each role; here: the line and the status."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(pushgate("serve", "--port", str(port), "--data-dir", tmp_path / "data"))
    assert line == (
        f"Error: error while attempting to bind on address ('127.0.0.1', {port}):"
        " address already in use"
    )


def test_the_emulators_port_that_cannot_be_is_one_line() -> None:
    line = one_line(pushgate("emulate", "--fcm-port", "65536"))
    assert line == "Error: --fcm-port must be from 0 to 65535, not 65536"


def test_tls_files_that_cannot_be_used_are_one_line(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"

    def serve_tls() -> str:
        data = tmp_path / "data"
        return one_line(pushgate(*SERVE, "--data-dir", data, "--tls-cert", cert, "--tls-key", key))

    line = serve_tls()
    assert line.startswith("Error: --tls-cert and --tls-key (PUSHGATE_TLS_CERT, PUSHGATE_TLS_KEY)")
    assert line.endswith("no such file or directory"), line
    for path in (cert, key):
        path.write_text("not PEM\n")
    line = serve_tls()
    assert line.endswith("not a PEM certificate and its private key"), line


def test_a_provider_ca_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    line = one_line(
        pushgate(
            *SERVE, "--data-dir", tmp_path / "data", env={"PUSHGATE_PROVIDER_CA_FILE": str(ca)}
        )
    )
    assert (
        line
        == f"Error: PUSHGATE_PROVIDER_CA_FILE {str(ca)!r} cannot be read: no such file or directory"
    )


# ---- a secret key that does not open the stored credentials ----


def snapshot(data: Path, backend: dict[str, str]) -> Callable[[], object]:
    """What the database holds and which files the data dir has, to compare after."""

    def files() -> list[str]:
        names = (p.name for p in data.iterdir()) if data.exists() else iter(())
        return sorted(n for n in names if not n.endswith(("-wal", "-shm", "-writer")))

    if not backend:

        def rows() -> object:
            conn = sqlite3.connect(data / "pushgate.sqlite3")
            try:
                return files(), list(conn.iterdump())
            finally:
                conn.close()

        return rows
    import psycopg

    schema = backend["PUSHGATE_DATABASE_URL"].rpartition("schema=")[2]

    def pg_rows() -> object:
        with psycopg.connect(POSTGRES_URL) as conn:
            tables = ("partners", "credentials", "meta", "profiles")
            return files(), {
                t: conn.execute(f"SELECT * FROM {schema}.{t} ORDER BY 1").fetchall()  # type: ignore[arg-type]
                for t in tables
            }

    return pg_rows


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_key_that_does_not_open_the_credentials_is_one_line_and_changes_nothing(
    tmp_path: Path, backend: str
) -> None:
    """Two processes sharing a database with different secret keys (issue 15): the second one's
    commands stop with one line naming PUSHGATE_SECRET_KEY, before changing anything."""
    backend_env = new_backend_env(backend)
    backend_env.pop("PUSHGATE_REDIS_URL", None)
    backend_env.pop("PUSHGATE_REDIS_PREFIX", None)
    data = tmp_path / "data"
    first, other = new_key(), new_key()

    def run(*args: str, key: str | None) -> subprocess.CompletedProcess[str]:
        env = {"PUSHGATE_SECRET_KEY": key} if key else {}
        return subprocess.run(
            [PUSHGATE, *args, "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                k: v
                for k, v in process_env(backend_env, env).items()
                if key or k != "PUSHGATE_SECRET_KEY"
            },
        )

    made = run("partners", "create", "first", "--emulator-credentials", key=first)
    assert made.returncode == 0, made.stderr
    rows = snapshot(data, backend_env if backend != "sqlite" else {})
    before = rows()

    wrong = (
        "Error: PUSHGATE_SECRET_KEY does not open the provider credentials stored in the"
        " database: set PUSHGATE_SECRET_KEY to the key that sealed them (every process sharing"
        " a database needs the same one)"
    )
    for command in (
        ("partners", "create", "second", "--emulator-credentials"),
        ("serve", "--port", "0"),
        ("serve", "--port", "0", "--emulate"),
        ("emulate", "--port", "0"),
    ):
        assert one_line(run(*command, key=other)) == wrong, command
    # No key at all: the data dir's own key file would be new, so it is not made.
    none = one_line(run("partners", "create", "second", "--emulator-credentials", key=None))
    assert none == (
        f"Error: PUSHGATE_SECRET_KEY is not set and there is no {data / 'secret.key'}, but the"
        " database holds provider credentials sealed with a key: set PUSHGATE_SECRET_KEY to that"
        " key (every process sharing a database needs the same one)"
    )
    assert rows() == before
    assert not (data / "secret.key").exists()

    # The key that sealed them still does.
    again = run("partners", "create", "second", "--emulator-credentials", key=first)
    assert again.returncode == 0, again.stderr
    assert rows() != before


@pytest.mark.parametrize("key", ["short", "!" * 44, base64.urlsafe_b64encode(b"x" * 31).decode()])
def test_a_secret_key_that_is_not_one_is_one_line(tmp_path: Path, key: str) -> None:
    for command in (SERVE, ("partners", "create", "acme", "--emulator-credentials")):
        line = one_line(
            pushgate(*command, "--data-dir", tmp_path / "data", env={"PUSHGATE_SECRET_KEY": key})
        )
        assert (
            line == "Error: PUSHGATE_SECRET_KEY must be 32 bytes in URL-safe base64 (44 characters)"
        )


@pytest.mark.parametrize("word", ["yes", "On", "1"])
def test_emulate_from_the_environment_means_the_same_to_every_command(
    tmp_path: Path, word: str
) -> None:
    """`PUSHGATE_EMULATE=yes` once meant emulators for `serve` and nothing for `partners
    create` (issue 16): settings are now read once, by one rule for every switch."""
    data = tmp_path / "data"
    made = pushgate(
        "partners", "create", "acme", "--data-dir", data, env={"PUSHGATE_EMULATE": word}
    )
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(data / "pushgate.sqlite3") as conn:
        platforms = {row[0] for row in conn.execute("SELECT platform FROM credentials")}
    assert platforms == {"ios", "android", "huawei"}


@pytest.mark.parametrize(
    ("name", "value", "choices"),
    [
        ("EMULATE", "perhaps", None),
        ("ROLE", "everything", "all, api, worker"),
        ("LOG_FORMAT", "xml", "auto, json, text"),
        ("SQLITE_SYNCHRONOUS", "sometimes", "NORMAL, FULL, EXTRA"),
    ],
)
def test_a_setting_outside_its_words_is_one_line(
    tmp_path: Path, name: str, value: str, choices: str | None
) -> None:
    line = one_line(
        pushgate(*SERVE, "--data-dir", tmp_path / "data", env={f"PUSHGATE_{name}": value})
    )
    allowed = "on or off" if choices is None else f"one of {choices}"
    assert line == f"Error: PUSHGATE_{name} must be {allowed}, not {value!r}"


# ---- what is not a configuration mistake keeps its status ----


def test_a_refusal_keeps_status_1(tmp_path: Path) -> None:
    done = pushgate("partners", "rotate-keys", "nobody", "--data-dir", tmp_path / "data")
    assert done.returncode == 1 and "no partner named 'nobody'" in done.stderr
    assert "Traceback" not in done.stderr
