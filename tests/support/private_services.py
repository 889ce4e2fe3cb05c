"""PostgreSQL, Redis and NATS servers of a test's own, which it may stop and start again while a
pushgate server uses them (issue 19): the shared services on the usual ports keep running for
every other test. Each is the real server binary the machine has; `missing()` names those it
lacks, for a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

STOP_TIMEOUT = 30.0
START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port} after {timeout} s") from None
            time.sleep(0.05)


def postgres_bin() -> Path | None:
    """Debian keeps PostgreSQL's server programs off PATH, one directory per major version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def missing() -> list[str]:
    """The server programs this machine lacks."""
    absent = [] if postgres_bin() is not None else ["postgresql (pg_ctl)"]
    absent += [name for name in ("redis-server", "nats-server") if shutil.which(name) is None]
    return absent


class PrivatePostgres:
    """A cluster in a directory of its own, on a port of its own; `stop` is a fast shutdown,
    as `pg_ctlcluster ... restart` does. The server refuses to run as root: then it runs as the
    `postgres` user, in a directory of /tmp (a test's own tmp_path is not open to it)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pushgate-postgres-"))
        self.data = self.root / "pgdata"
        self.port = _free_port()
        self.bin = postgres_bin()
        assert self.bin is not None, "PostgreSQL's server programs are not installed"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stderr.strip() or done.stdout}")

    def create(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        _wait_for_port(self.port)
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class _Daemon:
    """A server program run in the foreground as a child of the test."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> _Daemon:
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_port(self.port)
        return self

    def stop(self) -> None:
        """As a service manager's stop: SIGTERM, and the server's own orderly shutdown."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def destroy(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class PrivateRedis(_Daemon):
    """Without persistence, as a cache is often run: it comes back from a restart empty."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]


class PrivateNats(_Daemon):
    """With JetStream on a store directory of its own, kept across restarts."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.store = root / "jetstream"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            "nats-server",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store),
        ]
