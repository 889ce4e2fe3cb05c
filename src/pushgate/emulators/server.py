"""A small asyncio HTTP server for the emulators: HTTP/2 on `h2`, HTTP/1.1 on `h11`, TLS optional.

What the providers' real clients need:

- over TLS, `h2` when the client offers it by ALPN, and HTTP/2 with prior knowledge when the client
  offers no ALPN at all (aioapns); in cleartext, HTTP/2 with prior knowledge (h2c);
- HTTP/1.1 on the same port (firebase-admin talks HTTP/1.1 through `requests`): the first bytes
  decide, the HTTP/2 client preface `PRI * HTTP/2.0` or anything else;
- requests that carry a `host` header instead of `:authority`;
- a per-connection `SETTINGS_MAX_CONCURRENT_STREAMS` that a handler can change (APNs does).

Every request becomes one `Request` handed to the handler; its `Response` is sent whole. A small body
goes out in a single DATA frame (aioapns parses each DATA frame as one JSON document).

Connection faults (contract.md, `goaway` and `drop`): a handler sets `Request.connection_fault`.
`goaway`: the answer goes out, then a GOAWAY (NO_ERROR) naming the highest stream answered so far
as the last one; streams above it are left unprocessed (their handlers are cancelled) and the
connection closes once the streams up to it are answered. `drop`: no answer; the connection is
closed with this request, and any other unanswered one, in flight. Over HTTP/1.1, `goaway` answers
with `connection: close` and `drop` closes without answering. A cancelled handler must have done
nothing yet, so handlers act (record a delivery) only after their last `await`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import h11
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

log = logging.getLogger("pushgate.emulators.server")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_MAX_BODY = 1 << 20
MAX_HEADER_LIST_SIZE = 65536
# Until the client acknowledges our first SETTINGS it cannot know our stream limit (aioapns may
# open many streams before it has read them): streams up to this many are accepted meanwhile.
STREAMS_BEFORE_SETTINGS_ACK = 1000
_READ_SIZE = 65536
# After a GOAWAY, how long the client gets to read it and close first: closing with its late
# frames unread would make the kernel answer with a RST, which can destroy what it has not read.
GOAWAY_CLOSE_GRACE = 1.0
_ids = itertools.count(1)

ConnectionFault = Literal["goaway", "drop"]


def _text(value: bytes | str) -> str:
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


class HttpServer:
    """Serves one handler on one port, over TLS or in cleartext, HTTP/2 and HTTP/1.1.

    `http2=False`: HTTP/1.1 only, like a server that has no HTTP/2: a client that starts with
    the HTTP/2 preface gets 505 and the connection closes. The TLS context should then offer
    only `http/1.1` by ALPN (`LocalCA.server_context(alpn=("http/1.1",))`).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        initial_max_concurrent_streams: int = 100,
        max_body: int = DEFAULT_MAX_BODY,
        name: str = "emulator",
        http2: bool = True,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.http2 = http2
        self.initial_max_concurrent_streams = initial_max_concurrent_streams
        self.max_body = max_body
        self.name = name
        self.host = ""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=self.ssl_context, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        self.host = host
        self.port = int(sockname[1])

    async def stop(self) -> None:
        """Stop listening, send GOAWAY on HTTP/2 connections, close every connection."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.shutdown()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        self._stopping = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s: connection failed", self.name)
        finally:
            self._tasks.discard(task)
            await self._close(writer)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        # A TLS close waits for the peer's close_notify, which an idle pooled client (requests)
        # never sends: abort when stopping, or when the peer does not answer soon.
        if not self._stopping:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
                return
        writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        peer = writer.get_extra_info("peername")
        tls = ssl_object is not None
        peer_certificate = ssl_object.getpeercert(binary_form=True) if tls else None
        first = b""
        if alpn != "h2":
            # No ALPN (or http/1.1): sniff for the HTTP/2 client preface.
            while len(first) < len(H2_PREFACE) and H2_PREFACE.startswith(first):
                chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    return
                first += chunk
        session: _Session
        if not self.http2 and (alpn == "h2" or first.startswith(H2_PREFACE)):
            await _refuse_http2(writer)
            return
        if alpn == "h2" or first.startswith(H2_PREFACE):
            connection = Connection("h2", tls, alpn, peer, peer_certificate)
            session = _H2Session(self, reader, writer, connection)
        else:
            connection = Connection("http/1.1", tls, alpn, peer, peer_certificate)
            session = _H11Session(self, reader, writer, connection)
        self._sessions.add(session)
        try:
            await session.run(first)
        finally:
            self._sessions.discard(session)

    async def dispatch(self, request: Request) -> Response:
        if request.body_too_large:
            return Response(413)
        try:
            return await self.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: handler failed on %s %s", self.name, request.method, request.path)
            return Response(500, b'{"error": "internal"}', [("content-type", "application/json")])


async def _refuse_http2(writer: asyncio.StreamWriter) -> None:
    """What an HTTP/1.1-only server answers to the HTTP/2 preface (`PRI * HTTP/2.0`)."""
    body = b"HTTP/2 is not supported here"
    writer.write(
        b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


class _Session:
    def __init__(
        self,
        server: HttpServer,
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


@dataclass(slots=True)
class _Stream:
    headers: list[tuple[str, str]] = field(default_factory=list)
    pseudo: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    too_large: bool = False
    task: asyncio.Task[None] | None = None


class _H2Session(_Session):
    def __init__(
        self,
        server: HttpServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: Connection,
    ) -> None:
        super().__init__(server, reader, writer, connection)
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.streams: dict[int, _Stream] = {}
        self.window_open = asyncio.Event()
        self.closed = False
        self.answered_up_to = 0  # the highest stream whose handler has finished
        self.goaway_last: int | None = None  # the last stream id of the GOAWAY we sent
        self._grace: asyncio.TimerHandle | None = None

    def _advertise_streams(self, value: int) -> None:
        if self.closed:
            return
        self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: value})
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def shutdown(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                # A second GOAWAY must not raise the last stream id of the first.
                self.h2.close_connection(last_stream_id=self.goaway_last)
                self.flush()

    def _goaway(self) -> None:
        if self.closed or self.goaway_last is not None:
            return  # the first GOAWAY's promise stands
        last = self.answered_up_to
        self.goaway_last = last
        self.flush()
        # Written raw: once h2 has sent a GOAWAY it refuses to answer the streams up to it.
        self.writer.write(GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())
        for stream_id, stream in self.streams.items():
            if stream_id > last and stream.task is not None:
                stream.task.cancel()
        self._close_when_answered()

    def _close_when_answered(self) -> None:
        last = self.goaway_last
        if last is None or self._grace is not None or any(i <= last for i in self.streams):
            return
        self._grace = asyncio.get_running_loop().call_later(GOAWAY_CLOSE_GRACE, self._end)

    def _drop(self) -> None:
        if self.closed:
            return
        current = asyncio.current_task()
        for stream in self.streams.values():
            if stream.task is not None and stream.task is not current:
                stream.task.cancel()
        self._end()

    def _end(self) -> None:
        """Close the connection, after writing what was already answered; the read loop then
        ends (feeding the reader an EOF instead would fail on bytes still arriving)."""
        self.closed = True
        self.writer.close()

    async def run(self, first: bytes) -> None:
        initial = self.server.initial_max_concurrent_streams
        self.h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: initial,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            },
        )
        self.h2.initiate_connection()
        # The SETTINGS frame just queued says `initial`; h2 would enforce it at once, before the
        # client can have read it. Keep a generous limit in force until the client acknowledges.
        self.h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: max(initial, STREAMS_BEFORE_SETTINGS_ACK),
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            },
        )
        self.h2.local_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = initial
        self.connection.bind_stream_limit(initial, self._advertise_streams)
        self.flush()
        try:
            data = first
            while True:
                if data:
                    try:
                        events = self.h2.receive_data(data)
                    except ProtocolError:
                        self.flush()
                        return
                    for event in events:
                        self._on_event(event)
                    self.flush()
                if self.closed:
                    return
                data = await self.reader.read(_READ_SIZE)
                if not data:
                    return
        finally:
            self.closed = True
            if self._grace is not None:
                self._grace.cancel()
            for stream in self.streams.values():
                if stream.task is not None:
                    stream.task.cancel()

    def _on_event(self, event: object) -> None:
        if isinstance(event, RequestReceived):
            stream = _Stream()
            for name, value in event.headers:
                key, text = _text(name).lower(), _text(value)
                if key.startswith(":"):
                    stream.pseudo[key] = text
                else:
                    stream.headers.append((key, text))
            self.streams[event.stream_id] = stream
        elif isinstance(event, DataReceived):
            with contextlib.suppress(ProtocolError):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream_or_none = self.streams.get(event.stream_id)
            if stream_or_none is not None and not stream_or_none.too_large:
                stream_or_none.body += event.data
                if len(stream_or_none.body) > self.server.max_body:
                    stream_or_none.too_large = True
                    stream_or_none.body.clear()
        elif isinstance(event, StreamEnded):
            stream_or_none = self.streams.get(event.stream_id)
            if self.closed or (self.goaway_last is not None and event.stream_id > self.goaway_last):
                return  # left unprocessed, as the GOAWAY said
            if stream_or_none is not None and stream_or_none.task is None:
                stream_or_none.task = asyncio.create_task(
                    self._respond(event.stream_id, stream_or_none)
                )
        elif isinstance(event, StreamReset):
            stream_or_none = self.streams.pop(event.stream_id, None)
            if stream_or_none is not None and stream_or_none.task is not None:
                stream_or_none.task.cancel()
            self._close_when_answered()
        elif isinstance(event, WindowUpdated):
            self.window_open.set()
        elif isinstance(event, ConnectionTerminated):
            self.closed = True

    async def _respond(self, stream_id: int, stream: _Stream) -> None:
        path, _, query = stream.pseudo.get(":path", "/").partition("?")
        authority = stream.pseudo.get(":authority")
        if authority is None:
            for key, value in stream.headers:
                if key == "host":
                    authority = value
                    break
        request = Request(
            method=stream.pseudo.get(":method", "GET"),
            path=path,
            query=query,
            headers=stream.headers,
            body=bytes(stream.body),
            connection=self.connection,
            scheme=stream.pseudo.get(":scheme", self.scheme),
            authority=authority,
            body_too_large=stream.too_large,
        )
        try:
            response = await self.server.dispatch(request)
            self.answered_up_to = max(self.answered_up_to, stream_id)
            if request.connection_fault == "drop":
                self._drop()
                return
            await self._send(stream_id, response)
            if request.connection_fault == "goaway":
                self._goaway()
        except (ProtocolError, ConnectionError):
            pass
        finally:
            self.streams.pop(stream_id, None)
            self._close_when_answered()

    async def _send(self, stream_id: int, response: Response) -> None:
        if self.closed:
            return
        headers = [(":status", str(response.status))]
        headers += [(k.lower(), v) for k, v in response.headers]
        if response.body:
            headers.append(("content-length", str(len(response.body))))
        self.h2.send_headers(stream_id, headers, end_stream=not response.body)
        self.flush()
        data = memoryview(response.body)
        while data:
            size = min(
                self.h2.local_flow_control_window(stream_id),
                self.h2.max_outbound_frame_size,
                len(data),
            )
            if size <= 0:
                self.window_open.clear()
                await self.window_open.wait()
                if self.closed:
                    return
                continue
            self.h2.send_data(stream_id, bytes(data[:size]), end_stream=size == len(data))
            data = data[size:]
            self.flush()
        with contextlib.suppress(Exception):
            await self.writer.drain()


class _H11Session(_Session):
    def __init__(
        self,
        server: HttpServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: Connection,
    ) -> None:
        super().__init__(server, reader, writer, connection)
        self.h11 = h11.Connection(h11.SERVER)

    def shutdown(self) -> None:
        pass

    async def run(self, first: bytes) -> None:
        if first:
            self.h11.receive_data(first)
        while True:
            request = await self._read_request()
            if request is None:
                return
            response = await self.server.dispatch(request)
            if request.connection_fault == "drop":
                return  # closed without an answer
            keep_alive = await self._send(response, close=request.connection_fault == "goaway")
            if not keep_alive:
                return
            try:
                self.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _next_event(self) -> h11.Event | None:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                await self._send(
                    Response(400, b"bad request", [("content-type", "text/plain")]),
                    close=True,
                )
                return None
            if event is h11.NEED_DATA:
                data = await self.reader.read(_READ_SIZE)
                self.h11.receive_data(data)
                continue
            if event is h11.PAUSED:
                return None
            assert isinstance(event, h11.Event)
            return event

    async def _read_request(self) -> Request | None:
        event = await self._next_event()
        if not isinstance(event, h11.Request):
            return None
        headers = [(_text(k).lower(), _text(v)) for k, v in event.headers]
        target = _text(event.target)
        path, _, query = target.partition("?")
        body = bytearray()
        too_large = False
        while True:
            part = await self._next_event()
            if isinstance(part, h11.Data):
                if not too_large:
                    body += part.data
                    if len(body) > self.server.max_body:
                        too_large = True
                        body.clear()
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return None
        authority = next((v for k, v in headers if k == "host"), None)
        return Request(
            method=_text(event.method),
            path=path,
            query=query,
            headers=headers,
            body=bytes(body),
            connection=self.connection,
            scheme=self.scheme,
            authority=authority,
            body_too_large=too_large,
        )

    async def _send(self, response: Response, close: bool = False) -> bool:
        headers = [(k.lower(), v) for k, v in response.headers]
        headers.append(("content-length", str(len(response.body))))
        if close:
            headers.append(("connection", "close"))
        try:
            out = self.h11.send(h11.Response(status_code=response.status, headers=headers))
            if response.body:
                out = (out or b"") + (self.h11.send(h11.Data(data=response.body)) or b"")
            out = (out or b"") + (self.h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            return False
        self.writer.write(out)
        await self.writer.drain()
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE
