"""What the emulators' HTTP server hands a handler and takes back: `Request` (with its
`Connection`), `Response`; and the base of the HTTP/2 and HTTP/1.1 sessions that turn a
connection's bytes into requests (h2_session.py, h11_session.py; server.py accepts the
connections and picks one).

Connection faults (contract.md, `goaway` and `drop`): a handler sets `Request.connection_fault`;
each session carries it out in its protocol's way. A cancelled handler must have done nothing
yet, so handlers act (record a delivery) only after their last `await`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

READ_SIZE = 65536
_ids = itertools.count(1)

ConnectionFault = Literal["goaway", "drop"]


def as_text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class Connection:
    """One client connection, as handlers see it."""

    def __init__(
        self,
        protocol: str,
        tls: bool,
        alpn: str | None,
        peer: object,
        peer_certificate: bytes | None = None,
    ) -> None:
        self.id = next(_ids)
        self.protocol = protocol  # "h2" or "http/1.1"
        self.tls = tls
        self.alpn = alpn
        self.peer = peer
        self.peer_certificate = peer_certificate
        """The client's TLS certificate (DER) when it sent one and the server verified it."""
        self.context: dict[str, object] = {}
        self._max_streams = 0
        self._set_max_streams: Callable[[int], None] | None = None

    @property
    def max_concurrent_streams(self) -> int:
        """The SETTINGS_MAX_CONCURRENT_STREAMS last advertised (0 on HTTP/1.1)."""
        return self._max_streams

    def bind_stream_limit(self, initial: int, advertise: Callable[[int], None]) -> None:
        """Called by the HTTP/2 session: the limit in force and how to advertise a new one."""
        self._max_streams = initial
        self._set_max_streams = advertise

    def set_max_concurrent_streams(self, value: int) -> None:
        """Advertise a new stream limit on an HTTP/2 connection (no-op on HTTP/1.1 or same value)."""
        if self._set_max_streams is not None and value != self._max_streams:
            self._max_streams = value
            self._set_max_streams(value)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    """Lower-case names, in the order received; no HTTP/2 pseudo-headers."""
    body: bytes
    connection: Connection
    scheme: str = "https"
    authority: str | None = None
    body_too_large: bool = False
    connection_fault: ConnectionFault | None = None
    """Set by the handler: `goaway` after this request's answer, or `drop` instead of it."""

    @property
    def http_version(self) -> str:
        return "2" if self.connection.protocol == "h2" else "1.1"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_count(self, name: str) -> int:
        return sum(1 for key, _ in self.headers if key == name)


Handler = Callable[[Request], Awaitable[Response]]


class Endpoint(Protocol):
    """What a session needs of the server it serves (server.HttpServer)."""

    max_body: int
    initial_max_concurrent_streams: int

    async def dispatch(self, request: Request) -> Response: ...


class Session:
    def __init__(
        self,
        server: Endpoint,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: Connection,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.connection = connection
        self.scheme = "https" if connection.tls else "http"

    async def run(self, first: bytes) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError
