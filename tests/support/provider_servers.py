"""Tiny local servers for the provider tests: HTTP/2 on h2 (cleartext prior knowledge or TLS
with ALPN) and HTTP/1.1 for token endpoints. Real sockets, real protocol, no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    DataReceived,
    RequestReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

STREAMS_BEFORE_SETTINGS_ACK = 1000


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: ServerConnection


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    goaway_after: bool = False  # then a graceful GOAWAY naming this stream as the last


Handler = Callable[[Request], Awaitable[Reply]]


class ServerConnection(asyncio.Protocol):
    def __init__(self, server: H2TestServer) -> None:
        self.server = server
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.open_requests = 0  # received and not yet answered
        self.tasks: set[asyncio.Task[None]] = set()
        self.resets: list[int] = []
        self.max_streams = server.initial_max_streams
        # h2 applies a local settings change on the next SETTINGS ACK, even when that ACK
        # answers the preface's SETTINGS: change nothing before the preface is acknowledged.
        self.preface_acked = False
        self.deferred: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.append(self)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.server.alpn.append(ssl_object.selected_alpn_protocol())
            if ssl_object.selected_alpn_protocol() != "h2":
                transport.close()  # this server speaks nothing else
                return
        # The limit binds once the client has it (its ACK of our SETTINGS, RFC 9113 6.5.3): a
        # client may open streams before it has read our SETTINGS, as libcurl does on every
        # connection after a pool's first. h2 applies the update at the first ACK.
        self.h2.local_settings = Settings(
            client=False,
            initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: STREAMS_BEFORE_SETTINGS_ACK},
        )
        self.h2.initiate_connection()
        self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams})
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def set_max_streams(self, value: int) -> None:
        self.max_streams = value
        if not self.preface_acked:
            self.deferred.append(value)
            return
        self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: value})
        self.flush()

    def inject(self, frame_bytes: bytes) -> None:
        """Write raw frames the h2 object does not know about (e.g. a GOAWAY after which
        it must still answer lower streams, which h2 itself cannot do)."""
        self.flush()
        assert self.transport is not None
        self.transport.write(frame_bytes)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:  # e.g. a client opening more streams than allowed
            self.server.violations.append(repr(exc))
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self.streams[event.stream_id] = (
                    {str(k): str(v) for k, v in event.headers},
                    bytearray(),
                )
            elif isinstance(event, DataReceived):
                self.streams[event.stream_id][1].extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                headers, body = self.streams.pop(event.stream_id)
                self.open_requests += 1
                self.server.peak_open = max(self.server.peak_open, self.open_requests)
                task = asyncio.get_running_loop().create_task(
                    self._answer(event.stream_id, headers, bytes(body))
                )
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif isinstance(event, StreamReset):
                self.resets.append(event.stream_id)
                self.server.resets.append(event.stream_id)
            elif isinstance(event, SettingsAcknowledged) and not self.preface_acked:
                self.preface_acked = True
                for value in self.deferred:
                    self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: value})
                self.deferred.clear()
        self.flush()

    async def _answer(self, stream_id: int, headers: dict[str, str], body: bytes) -> None:
        request = Request(headers[":method"], headers[":path"], headers, body, self)
        try:
            reply = await self.server.handler(request)
        finally:
            self.open_requests -= 1
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.h2.send_headers(
                stream_id,
                [(":status", str(reply.status)), *reply.headers],
                end_stream=not reply.body,
            )
            if reply.body:
                self.h2.send_data(stream_id, reply.body, end_stream=True)
        except ProtocolError:
            return  # the stream was reset, or the connection is closing
        self.server.answered += 1
        if reply.goaway_after:
            self.h2.close_connection(last_stream_id=stream_id)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(ValueError):
            self.server.connections.remove(self)


class H2TestServer:
    def __init__(
        self,
        handler: Handler,
        *,
        initial_max_streams: int = 100,
        tls: Tls | None = None,
    ) -> None:
        self.handler = handler
        self.initial_max_streams = initial_max_streams
        self.connections: list[ServerConnection] = []
        self.violations: list[str] = []
        self.resets: list[int] = []
        self.answered = 0
        self.peak_open = 0
        self.accepted = 0
        self.tls = tls
        self.alpn: list[str | None] = []  # the protocol chosen on each TLS connection
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> H2TestServer:
        server_context = None
        if self.tls is not None:
            # Like the emulators: HTTP/2 preferred, HTTP/1.1 offered too.
            server_context = self.tls.server_context(["h2", "http/1.1"])
        loop = asyncio.get_running_loop()

        def factory() -> ServerConnection:
            self.accepted += 1
            return ServerConnection(self)

        self._server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_context)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{port}"

    def set_max_streams(self, value: int) -> None:
        for connection in self.connections:
            connection.set_max_streams(value)


class Tls:
    """A self-signed certificate for 127.0.0.1: server contexts and a client trusting it."""

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushgate test")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def server_context(self, alpn: list[str] | None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "cert.pem").write_bytes(self.cert_pem)
            (Path(tmp) / "key.pem").write_bytes(self.key_pem)
            context.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
        if alpn:
            context.set_alpn_protocols(alpn)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.cert_pem.decode())


# --------------------------------------------------------------------------- HTTP/1.1


@dataclass
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


HttpHandler = Callable[[HttpRequest], Awaitable[tuple[int, bytes]]]


class HttpTestServer:
    """HTTP/1.1 with keep-alive and Content-Length bodies: enough for token endpoints."""

    def __init__(self, handler: HttpHandler, tls: Tls | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.requests: list[HttpRequest] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> HttpTestServer:
        context = self.tls.server_context(["http/1.1"]) if self.tls is not None else None
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = HttpRequest(method, target, headers, body)
                self.requests.append(request)
                status, payload = await self.handler(request)
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Wait for something the other side does asynchronously; fail if it never happens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)
