"""The emulators in a process of their own, for `pushgate serve --emulate`.

The emulators answer every push in Python (HTTP/2 framing, TLS, JSON checks): in a profile of
`serve --emulate` under load they took a third of the serving process's CPU (bench/README.md,
issue 14), from the event loop that answers the API. On a machine with more than one core the
serving process starts them as a child instead: what `pushgate emulate` runs, on ports and with
a CA chosen once by the serving process, reading credentials from the same data dir, and it
forwards its own `/emulator/v1/*` routes to the child's control port, so that everything
contract.md says of them holds on the API's port.

The child lives and dies with the serving process (Linux: PR_SET_PDEATHSIG); should it die on
its own, it is started again on the same ports after a pause, and the pushes sent meanwhile fail
as a provider away would (they are retried). Its state (tokens set, faults, pushes accepted)
starts over then, as the in-process emulators' does on a restart of `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from pushgate.api.types import Receive, Scope, Send
from pushgate.emulators.ca import LocalCA
from pushgate.emulators.control import BASE

log = logging.getLogger("pushgate.emulators")

HOST = "127.0.0.1"
START_LIMIT_SECONDS = 30.0  # for the child to answer its control port
START_POLL_SECONDS = 0.05
RESTART_FIRST_SECONDS = 1.0  # then doubling while it keeps failing, up to
RESTART_MAX_SECONDS = 30.0
STOP_SECONDS = 5.0  # after SIGTERM, before SIGKILL
PROXY_TIMEOUT_SECONDS = 30.0
# Headers of a control answer passed on (the rest, like `date` and `server`, are the API's own).
_PASSED_HEADERS = ("content-type",)


FIRST_START_ATTEMPTS = 3


class ChildExited(RuntimeError):
    """The emulators' process exited before it answered."""


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class EmulatorProcess:
    """The emulators as a child of this process, on ports and with a CA fixed at the first
    start, so that a child started again is the same provider to the senders."""

    def __init__(self, data_dir: Path, database_url: str | None, log_format: str) -> None:
        self._data_dir = data_dir
        self._database_url = database_url
        self._log_format = log_format
        self._ca = dataclasses.asdict(LocalCA.generate())
        self.info: dict[str, Any] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.control_port, apns, apns_sandbox, fcm, hms = _free_ports(5)
        self.control_url = f"http://{HOST}:{self.control_port}"
        # On stdin, not argv (which every user of the machine can read): it holds the CA's key.
        self.spec = json.dumps(
            {
                "parent_pid": os.getpid(),
                "data_dir": str(self._data_dir),
                "database_url": self._database_url,
                "port": self.control_port,
                "ports": [apns, fcm, hms],
                "apns_sandbox_port": apns_sandbox,
                # The serving process logs where they listen; the child's own start-up lines
                # (another "Uvicorn running on") would only mislead.
                "log_level": "warning",
                "log_format": self._log_format,
                "ca": self._ca,
            }
        ).encode()
        self.proxy = ControlProxy(self.control_url)

    async def start(self) -> dict[str, Any]:
        """Start the child and return its `/emulator/v1/info` once it answers. A port found
        free can be taken by another process before the child binds it: a first start that
        fails is tried again on other ports (the ports stay fixed from the first start on)."""
        for attempt in range(FIRST_START_ATTEMPTS):
            try:
                await self._spawn()
                break
            except ChildExited:
                if attempt == FIRST_START_ATTEMPTS - 1:
                    raise
                log.warning("the emulators' process could not start; trying other ports")
                await self.proxy.aclose()
                self._choose_ports()
        self._watch = asyncio.create_task(self._watch_child())
        return self.info

    async def _spawn(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, stdin=asyncio.subprocess.PIPE
        )
        assert self._process.stdin is not None
        self._process.stdin.write(self.spec + b"\n")
        await self._process.stdin.drain()
        self._process.stdin.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_LIMIT_SECONDS
        while True:
            if self._process.returncode is not None:
                raise ChildExited(
                    f"the emulators' process exited ({self._process.returncode}) before it"
                    " answered; see the lines above"
                )
            with contextlib.suppress(httpx.HTTPError):
                answer = await self.proxy.http.get(BASE + "/info", timeout=1.0)
                if answer.status_code == 200:
                    self.info = answer.json()
                    return
            if loop.time() > deadline:
                raise RuntimeError(
                    f"the emulators' process did not answer on {self.control_url} within"
                    f" {START_LIMIT_SECONDS:.0f} s"
                )
            await asyncio.sleep(START_POLL_SECONDS)

    async def _watch_child(self) -> None:
        pause = RESTART_FIRST_SECONDS
        while not self._stopping:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            log.error("the emulators' process exited (%s); starting another in %g s", code, pause)
            await asyncio.sleep(pause)
            if self._stopping:
                return
            try:
                await self._spawn()
                pause = RESTART_FIRST_SECONDS
            except RuntimeError:
                log.exception("the emulators' process did not start again")
                pause = min(pause * 2, RESTART_MAX_SECONDS)

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await self.proxy.aclose()


class ControlProxy:
    """The emulators' control routes (`/emulator/v1/...`) forwarded to their process, mounted on
    every API process of `serve --emulate`."""

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url
        self.http = httpx.AsyncClient(base_url=control_url, timeout=PROXY_TIMEOUT_SECONDS)

    async def aclose(self) -> None:
        await self.http.aclose()

    def handles(self, path: str) -> bool:
        return path.startswith(BASE + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name.lower() == b"content-type"
        }
        try:
            answer = await self.http.request(
                scope["method"],
                scope["path"] + (f"?{query}" if query else ""),
                content=bytes(body),
                headers=headers,
            )
            status, content = answer.status_code, answer.content
            passed = [(k, answer.headers[k]) for k in _PASSED_HEADERS if k in answer.headers]
        except httpx.HTTPError as error:
            status = 502
            content = (
                b'{"error": "emulators_unavailable", "message": "'
                + f"the emulators' process did not answer: {type(error).__name__}".encode()
                + b'"}'
            )
            passed = [("content-type", "application/json")]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _encoded([*passed, ("content-length", str(len(content)))]),
            }
        )
        await send({"type": "http.response.body", "body": content})


def _encoded(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def child_main() -> None:
    """`python -m pushgate.emulators.child`, the specification on stdin: the emulators with
    their control routes, in a process that dies with the one that started it."""
    import uvicorn.server

    from pushgate.child_process import die_with_parent
    from pushgate.emulation import StandaloneEmulators, serve_standalone

    spec = json.loads(sys.stdin.readline())
    # Ctrl-C in a terminal reaches the whole process group: the parent alone decides, and stops
    # the child with SIGTERM (uvicorn would otherwise take SIGINT as its own signal to stop).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    uvicorn.server.HANDLED_SIGNALS = (signal.SIGTERM,)  # type: ignore[assignment]
    die_with_parent(spec["parent_pid"])
    ca = spec["ca"]
    app = StandaloneEmulators(
        Path(spec["data_dir"]),
        HOST,
        tuple(spec["ports"]),
        spec["apns_sandbox_port"],
        ca=LocalCA(**{**ca, "hosts": tuple(ca["hosts"])}),
        database_url=spec["database_url"],
    )
    serve_standalone(app, spec["port"], spec["log_level"], spec["log_format"])


if __name__ == "__main__":
    child_main()
