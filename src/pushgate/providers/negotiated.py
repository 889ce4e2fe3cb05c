"""HTTPS to a provider whose server may or may not speak HTTP/2 (HMS Push Kit).

Huawei documents Push Kit as an HTTPS REST API and its own server demos talk HTTP/1.1
(providers.md, "Corrections and additions"), so HTTP/2 is spoken only where the server
selects `h2` by ALPN:

- `https://`: every new connection offers ALPN `h2, http/1.1`. When the server selects
  `http/1.1` (or nothing), the connection is kept and used as an HTTP/1.1 keep-alive
  connection (h11), one request at a time, pooled up to `http1_connections`. When it
  selects `h2`, that connection is closed and every request from then on goes through an
  `H2Client` (which multiplexes on its own connections); a failure to connect there sends
  the next request through the negotiation again.
- `http://`: HTTP/2 with prior knowledge through `H2Client` (contract.md: local h2c sinks
  for benchmarks).

`NegotiatedClient.request` has `H2Client.request`'s signature, answers and errors, so a
sender can use either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

import h11

from pushgate.providers.h2client import (
    MAX_RESPONSE_BYTES,
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    H2Client,
    HeaderList,
    RequestError,
    RequestTimeout,
    Response,
    ResponseTooLarge,
    copy_trust,
)

__all__ = ["DEFAULT_HTTP1_CONNECTIONS", "NegotiatedClient", "Transport"]

# Huawei's Go demo keeps up to 10 idle connections; a few more keep a busy sender going.
DEFAULT_HTTP1_CONNECTIONS = 16
# An idle connection older than this is closed rather than reused: servers close idle
# keep-alive connections after a while, and a POST sent into one that is closing fails.
IDLE_TIMEOUT_S = 30.0
OFFERED_ALPN = ["h2", "http/1.1"]
_READ_SIZE = 65536


class Transport(Protocol):
    """What a sender needs from an HTTP client (`H2Client` and `NegotiatedClient`)."""

    async def request(
        self,
        method: str,
        path: str,
        headers: HeaderList | Mapping[str, str] = (),
        body: bytes = b"",
        timeout: float | None = 10.0,
    ) -> Response: ...

    async def aclose(self) -> None: ...


class _Http1Connection:
    """One HTTP/1.1 keep-alive connection: one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = asyncio.get_running_loop().time()
        self.written = False  # some of the current request left: the server may act on it

    def reusable(self, now: float) -> bool:
        return (
            self.h11.our_state is h11.IDLE
            and self.h11.their_state is h11.IDLE
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and now - self.idle_since < IDLE_TIMEOUT_S
        )

    async def exchange(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Response:
        try:
            out = self.h11.send(h11.Request(method=method, target=target, headers=headers)) or b""
            if body:
                out += self.h11.send(h11.Data(data=body)) or b""
            out += self.h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise RequestError(f"request refused locally: {exc}", retryable=False) from exc
        self.written = True
        self.writer.write(out)
        await self.writer.drain()
        status = 0
        answer_headers: dict[str, str] = {}
        content = bytearray()
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise ConnectionLostError(f"broken HTTP/1.1 answer: {exc}") from exc
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.reader.read(_READ_SIZE))
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    key, text = name.decode("latin-1"), value.decode("latin-1")
                    known = answer_headers.get(key)
                    answer_headers[key] = text if known is None else f"{known}, {text}"
            elif isinstance(event, h11.Data):
                content += event.data
                if len(content) > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                raise ConnectionLostError("connection closed before the answer was complete")
            # InformationalResponse (1xx): the real answer follows
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.written = False
            self.idle_since = asyncio.get_running_loop().time()
        return Response(status, answer_headers, bytes(content))

    def close(self) -> None:
        # Not a graceful TLS close: that waits for the peer's close_notify, which a server
        # need not send, and nothing is in flight on a connection given up.
        self.writer.transport.abort()


class NegotiatedClient:
    """Requests to one origin over HTTP/2 where the server selects it by ALPN, else over
    pooled HTTP/1.1 keep-alive connections (see the module docstring).

    `ssl_context` is only read: the client works on copies of its trust (each protocol
    path sets its own ALPN). `max_connections`: for HTTP/2 (each multiplexes many
    requests); `http1_connections`: concurrent HTTP/1.1 requests, one per connection.
    """

    def __init__(
        self,
        origin: str,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 1,
        *,
        http1_connections: int = DEFAULT_HTTP1_CONNECTIONS,
        connect_timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"origin {origin!r} must be an https:// or http:// URL")
        if http1_connections < 1:
            raise ValueError("http1_connections must be at least 1")
        self.origin = origin.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if parts.port in (None, 443) else f"{host}:{self.port}"
        self.prefix = parts.path.rstrip("/")
        self.max_connections = max_connections
        self.http1_connections = http1_connections
        self.connect_timeout = connect_timeout
        self.protocol: str | None = None  # "h2" or "http/1.1" once a server has chosen
        self._tls: ssl.SSLContext | None = None
        self._h2: H2Client | None = None
        if parts.scheme == "http":
            self._h2 = H2Client(origin, None, max_connections, connect_timeout=connect_timeout)
            self.protocol = "h2"
        else:
            self._tls = copy_trust(ssl_context) if ssl_context else ssl.create_default_context()
            self._tls.set_alpn_protocols(OFFERED_ALPN)
        self._idle: list[_Http1Connection] = []
        self._open: set[_Http1Connection] = set()
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    @property
    def connections(self) -> int:
        """Open connections (HTTP/1.1 ones, or the HTTP/2 client's)."""
        return self._h2.connections if self._h2 is not None else len(self._open)

    async def request(
        self,
        method: str,
        path: str,
        headers: HeaderList | Mapping[str, str] = (),
        body: bytes = b"",
        timeout: float | None = 10.0,
    ) -> Response:
        """Send one request and return the answer, whatever its status; raises the
        `RequestError`s of `H2Client.request`."""
        header_list = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._closed:
                raise ClientClosedError("client closed", unprocessed=True)
            h2 = self._h2
            if h2 is None:
                response = await self._http1(method, path, header_list, body, deadline, timeout)
                if response is not None:
                    return response
                continue  # the server selected h2
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                return await h2.request(method, path, header_list, body, timeout=remaining)
            except ConnectError:
                if self._tls is not None and self._h2 is h2:
                    # The server may no longer offer h2: the next request negotiates again.
                    self._h2, self.protocol = None, None
                    await h2.aclose()
                raise

    async def _http1(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        deadline: float | None,
        timeout: float | None,
    ) -> Response | None:
        """The request over HTTP/1.1; None when the server selected h2 instead."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.http1_connections)
        connection: _Http1Connection | None = None
        try:
            async with asyncio.timeout_at(deadline):
                async with self._slots:
                    if self._h2 is not None:  # switched while this request waited
                        return None
                    connection = self._take_idle()
                    if connection is None:
                        connection = await self._connect()
                        if connection is None:
                            return None
                    response = await connection.exchange(
                        method, self.prefix + path, self._headers(headers, body), body
                    )
        except TimeoutError:
            if connection is not None:
                self._discard(connection)
            unprocessed = connection is None or not connection.written
            raise RequestTimeout(f"no answer within {timeout}s", unprocessed=unprocessed) from None
        except RequestError:
            if connection is not None:
                self._discard(connection)
            if self._closed:
                raise ClientClosedError("client closed") from None
            raise
        except (OSError, ssl.SSLError) as exc:
            assert connection is not None  # _connect turns its own failures into ConnectError
            self._discard(connection)
            if self._closed:
                raise ClientClosedError("client closed") from None
            raise ConnectionLostError(
                f"connection to {self.origin} lost: {exc!r}", unprocessed=not connection.written
            ) from exc
        except BaseException:
            if connection is not None:
                self._discard(connection)
            raise
        if connection.h11.our_state is h11.IDLE and not self._closed:
            self._idle.append(connection)
        else:
            self._discard(connection)
        return response

    def _headers(self, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        names = {name.lower() for name, _ in headers}
        result = [("host", self.authority)] if "host" not in names else []
        result += headers
        if "content-length" not in names:
            result.append(("content-length", str(len(body))))
        return result

    def _take_idle(self) -> _Http1Connection | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            connection = self._idle.pop()  # the most recently used is the likeliest alive
            if connection.reusable(now):
                return connection
            self._open.discard(connection)
            connection.close()
        return None

    async def _connect(self) -> _Http1Connection | None:
        """A new connection offering `h2, http/1.1`; None (and HTTP/2 from now on) when
        the server selects h2."""
        assert self._tls is not None
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._tls, server_hostname=self.host
                )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise ConnectError(
                f"cannot connect to {self.origin}: {exc!r}", unprocessed=True
            ) from exc
        ssl_object = writer.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if chosen == "h2":
            writer.transport.abort()  # H2Client opens (and keeps) its own
            self._use_h2()
            return None
        self.protocol = "http/1.1"
        connection = _Http1Connection(reader, writer)
        self._open.add(connection)
        return connection

    def _use_h2(self) -> None:
        self.protocol = "h2"
        if self._h2 is None:
            assert self._tls is not None
            self._h2 = H2Client(
                self.origin,
                copy_trust(self._tls),
                self.max_connections,
                connect_timeout=self.connect_timeout,
            )
        for connection in self._idle:
            self._open.discard(connection)
            connection.close()
        self._idle.clear()

    def _discard(self, connection: _Http1Connection) -> None:
        self._open.discard(connection)
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        connection.close()

    async def aclose(self) -> None:
        """Close every connection; requests still waiting fail with `ClientClosedError`."""
        if self._closed:
            return
        self._closed = True
        connections = list(self._open)
        self._open.clear()
        self._idle.clear()
        for connection in connections:
            connection.close()
        if self._h2 is not None:
            await self._h2.aclose()

    async def __aenter__(self) -> NegotiatedClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
