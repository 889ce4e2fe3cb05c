"""HTTP/2 client for the push providers: a sans-IO connection core and an asyncio transport.

`ClientConnection` is the core (no sockets, no clock, no event loop): requests go in with
`submit`, bytes from the server with `receive_data`, and it answers with the bytes to write
(`data_to_send`) and the requests that finished (`take_outcomes`). It owns the stream
budget of one connection:

- it starts a stream only while fewer than the server's SETTINGS_MAX_CONCURRENT_STREAMS are
  open, follows every change of that limit (down to 1 and back up, mid-connection), and
  starts waiting requests as soon as a slot opens: on a SETTINGS frame, on a finished or
  reset stream. Before the server's first SETTINGS only `assumed_max_streams` (1) run;
- it sends request bodies as the flow-control windows allow, and hands back the windows of
  the response data it received;
- on GOAWAY it starts no stream; streams above `last_stream_id` and requests still waiting
  fail as unprocessed (safe to resend elsewhere); streams at or below it complete;
- on RST_STREAM the stream fails (unprocessed for REFUSED_STREAM); on connection loss every
  request fails, retryable.

`H2Client` is the asyncio transport: a small pool of such connections to one origin,
opened lazily (TLS with ALPN "h2" for https://, HTTP/2 with prior knowledge for http://),
kept open, replaced after GOAWAY or loss. We do not use httpx/httpcore here: httpcore 1.0.x
deadlocks when a server lowers MAX_CONCURRENT_STREAMS, which APNs does after every
rejected push.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import NoAvailableStreamIDError, ProtocolError, TooManyStreamsError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import Frame, GoAwayFrame

__all__ = [
    "ClientClosedError",
    "ClientConnection",
    "Completed",
    "ConnectError",
    "ConnectionLostError",
    "Failed",
    "GoAwayError",
    "H2Client",
    "RequestError",
    "RequestTimeout",
    "Response",
    "ResponseTooLarge",
    "StreamResetError",
    "copy_trust",
    "make_ssl_context",
]

HeaderList = Sequence[tuple[str, str]]

DEFAULT_MAX_STREAMS = 1000  # our own cap, whatever the server allows
MAX_RESPONSE_BYTES = 1 << 20  # provider answers are small; refuse to buffer more
_CONNECTION_WINDOW_INCREMENT = 1 << 24


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


class RequestError(Exception):
    """A request that got no HTTP answer.

    `retryable`: trying again later may succeed (true of every transport failure).
    `unprocessed`: the server certainly did not act on it (it never left, was above a
    GOAWAY's last stream id, or was refused), so resending cannot duplicate it.
    """

    def __init__(self, message: str, *, unprocessed: bool = False, retryable: bool = True) -> None:
        super().__init__(message)
        self.unprocessed = unprocessed
        self.retryable = retryable


class StreamResetError(RequestError):
    def __init__(self, message: str, error_code: int, *, unprocessed: bool = False) -> None:
        super().__init__(message, unprocessed=unprocessed)
        self.error_code = error_code


class GoAwayError(RequestError):
    """The server is closing the connection and did not take this request."""


class ConnectionLostError(RequestError):
    """The connection closed (or broke the protocol) before the answer arrived."""


class ConnectError(RequestError):
    """No connection could be made (DNS, refused, TLS, ALPN, timeout)."""


class RequestTimeout(RequestError):
    """No answer within the request's timeout; the stream was cancelled."""


class ClientClosedError(RequestError):
    """The client was closed while the request waited."""


class ResponseTooLarge(RequestError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True, slots=True)
class Completed:
    key: int
    response: Response


@dataclass(frozen=True, slots=True)
class Failed:
    key: int
    error: RequestError


Outcome = Completed | Failed


# --------------------------------------------------------------------------- sans-IO core


class _H2Connection(H2Connection):
    """h2 4.x moves to CLOSED on a received GOAWAY and then refuses every frame, so the
    streams the server promised to finish (id <= last_stream_id) could never complete
    (python-hyper/h2#1199). Stay open for those; `ClientConnection` starts no new stream
    after a GOAWAY. Also keep the frames already queued (h2 drops them on GOAWAY)."""

    _in_goaway = False

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[Event]]:
        state = self.state_machine.state
        self._in_goaway = True
        try:
            frames, events = super()._receive_goaway_frame(frame)
        finally:
            self._in_goaway = False
        if state in (ConnectionState.IDLE, ConnectionState.CLIENT_OPEN):
            self.state_machine.state = ConnectionState.CLIENT_OPEN
        return frames, events

    def clear_outbound_data_buffer(self) -> None:
        if not self._in_goaway:
            super().clear_outbound_data_buffer()


@dataclass(slots=True, eq=False)
class _Request:
    key: int
    headers: list[tuple[str, str]]
    body: bytes
    stream_id: int = 0
    sent: int = 0  # body bytes handed to h2
    local_closed: bool = False  # END_STREAM sent
    cancelled: bool = False
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    received: int = 0


def _check_header(name: str, value: str) -> str:
    name = name.lower()
    if not name or name.startswith(":"):
        raise ValueError(f"header name {name!r} must not be empty or a pseudo-header")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"header {name!r} has a forbidden character")
    return name


class ClientConnection:
    """The state of one client HTTP/2 connection: streams, their budget and their windows.

    Pure: the caller writes `data_to_send()` to the socket after every call and feeds
    what it reads to `receive_data()`; finished requests come out of `take_outcomes()`
    (also returned by `receive_data`, `connection_lost` and `close`).
    """

    def __init__(
        self,
        authority: str,
        scheme: str = "https",
        *,
        assumed_max_streams: int = 1,
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.authority = authority
        self.scheme = scheme
        self.assumed_max_streams = assumed_max_streams
        self.max_streams = max_streams
        self.max_response_bytes = max_response_bytes
        self._h2 = _H2Connection(config=H2Configuration(client_side=True, header_encoding="utf-8"))
        self._h2.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        # Not in RFC 7540; some servers balk at unknown settings in the first frame.
        del self._h2.local_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL]
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_CONNECTION_WINDOW_INCREMENT)
        self._out = bytearray(self._h2.data_to_send())
        self._keys = itertools.count(1)
        self._pending: deque[_Request] = deque()
        self._pending_count = 0
        self._active: dict[int, _Request] = {}  # stream id -> request, open streams only
        self._by_key: dict[int, _Request] = {}
        self._sending: dict[int, _Request] = {}  # streams with body left to send
        self._outcomes: list[Outcome] = []
        self._settings_received = False
        self._goaway_last_stream_id: int | None = None
        self._exhausted = False  # stream ids used up
        self._closed = False  # connection lost, broken or closed locally

    # ---- state

    @property
    def max_concurrent_streams(self) -> int:
        """The number of streams that may be open now."""
        if not self._settings_received:
            return min(self.assumed_max_streams, self.max_streams)
        return min(self._h2.remote_settings.max_concurrent_streams, self.max_streams)

    @property
    def settings_received(self) -> bool:
        return self._settings_received

    @property
    def active_streams(self) -> int:
        return len(self._active)

    @property
    def pending_requests(self) -> int:
        """Requests waiting for a stream slot."""
        return self._pending_count

    @property
    def goaway_received(self) -> bool:
        return self._goaway_last_stream_id is not None

    @property
    def accepting(self) -> bool:
        """Whether new requests may be submitted."""
        return not (self._closed or self._exhausted or self.goaway_received)

    @property
    def finished(self) -> bool:
        """Nothing more will happen on this connection: the socket may be closed."""
        if self._closed:
            return True
        return not self.accepting and not self._active and not self._pending_count

    @property
    def spare_capacity(self) -> int:
        """Requests this connection could start now (negative: that many would wait)."""
        return self.max_concurrent_streams - len(self._active) - self._pending_count

    def stream_id(self, key: int) -> int | None:
        """The stream of a request, None while it waits (or after it finished)."""
        request = self._by_key.get(key)
        if request is None or not request.stream_id:
            return None
        return request.stream_id

    # ---- input from the caller

    def submit(
        self, method: str, path: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> int:
        """Queue a request; it starts as soon as the stream budget allows. Returns its key."""
        if not self.accepting:
            raise RuntimeError("connection is not accepting requests")
        pseudo = [
            (":method", method),
            (":scheme", self.scheme),
            (":authority", self.authority),
            (":path", path),
        ]
        regular = []
        for raw_name, value in headers:
            name = _check_header(raw_name, value)
            if name not in ("content-length", "host"):
                regular.append((name, value))
        if body or method in ("POST", "PUT", "PATCH"):
            regular.append(("content-length", str(len(body))))
        request = _Request(key=next(self._keys), headers=pseudo + regular, body=body)
        self._by_key[request.key] = request
        self._pending.append(request)
        self._pending_count += 1
        self._pump()
        return request.key

    def cancel(self, key: int) -> None:
        """Give up on a request (timeout, caller cancelled): no outcome will follow."""
        request = self._by_key.pop(key, None)
        if request is None:
            return
        if not request.stream_id:
            request.cancelled = True
            self._pending_count -= 1
            return
        self._forget(request)
        if not self._closed:
            with contextlib.suppress(ProtocolError):
                self._h2.reset_stream(request.stream_id, ErrorCodes.CANCEL)
            self._pump()

    def receive_data(self, data: bytes) -> list[Outcome]:
        """Bytes read from the socket."""
        if self._closed:
            return self.take_outcomes()
        self._drain_h2()
        try:
            events = self._h2.receive_data(data)
        except ProtocolError as exc:
            self._drain_h2()  # h2 queued a GOAWAY for the server
            message = f"HTTP/2 protocol error from the server: {exc}"
            self._fail_all(
                lambda unprocessed: ConnectionLostError(message, unprocessed=unprocessed)
            )
            return self.take_outcomes()
        for event in events:
            self._handle(event)
        self._pump()
        return self.take_outcomes()

    def connection_lost(
        self, message: str = "connection lost", *, connecting: bool = False
    ) -> list[Outcome]:
        """The socket closed or failed (`connecting`: it was never opened). Every request
        fails retryable; those that never started are marked unprocessed."""
        if not self._closed:
            if connecting:
                self._fail_all(lambda _unprocessed: ConnectError(message, unprocessed=True))
            else:
                self._fail_all(
                    lambda unprocessed: ConnectionLostError(message, unprocessed=unprocessed)
                )
        return self.take_outcomes()

    def close(self, message: str = "client closed") -> list[Outcome]:
        """Close locally: queue a GOAWAY and fail every request."""
        if not self._closed:
            with contextlib.suppress(ProtocolError):
                self._h2.close_connection()
            self._drain_h2()
            self._fail_all(lambda unprocessed: ClientClosedError(message, unprocessed=unprocessed))
        return self.take_outcomes()

    # ---- output to the caller

    def data_to_send(self) -> bytes:
        self._drain_h2()
        data = bytes(self._out)
        self._out.clear()
        return data

    def take_outcomes(self) -> list[Outcome]:
        outcomes, self._outcomes = self._outcomes, []
        return outcomes

    # ---- internals

    def _drain_h2(self) -> None:
        self._out += self._h2.data_to_send()

    def _finish(self, request: _Request, outcome: Outcome) -> None:
        self._forget(request)
        if self._by_key.pop(request.key, None) is not None:
            self._outcomes.append(outcome)

    def _forget(self, request: _Request) -> None:
        self._active.pop(request.stream_id, None)
        self._sending.pop(request.stream_id, None)

    def _fail(self, request: _Request, error: RequestError) -> None:
        self._finish(request, Failed(request.key, error))

    def _fail_all(self, make: Callable[[bool], RequestError]) -> None:
        self._closed = True
        for request in list(self._active.values()):
            self._fail(request, make(False))
        self._fail_pending(make)

    def _fail_pending(self, make: Callable[[bool], RequestError]) -> None:
        while self._pending:
            request = self._pending.popleft()
            if not request.cancelled:
                self._pending_count -= 1
                self._fail(request, make(True))

    def _handle(self, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            request = self._active.get(event.stream_id)
            if request is not None:
                request.status = 0
                for name, value in event.headers:
                    name_s = name if isinstance(name, str) else name.decode()
                    value_s = value if isinstance(value, str) else value.decode()
                    if name_s == ":status":
                        request.status = int(value_s)
                    elif name_s in request.response_headers:
                        request.response_headers[name_s] += ", " + value_s
                    else:
                        request.response_headers[name_s] = value_s
        elif isinstance(event, DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            request = self._active.get(event.stream_id)
            if request is not None and event.data:
                request.received += len(event.data)
                if request.received > self.max_response_bytes:
                    self._h2.reset_stream(event.stream_id, ErrorCodes.CANCEL)
                    self._fail(
                        request,
                        ResponseTooLarge(f"response over {self.max_response_bytes} bytes"),
                    )
                else:
                    request.chunks.append(event.data)
        elif isinstance(event, StreamEnded):
            request = self._active.get(event.stream_id)
            if request is not None:
                self._stream_ended(request)
        elif isinstance(event, StreamReset):
            request = self._active.get(event.stream_id)
            if request is not None:
                code = int(event.error_code)
                refused = code == ErrorCodes.REFUSED_STREAM
                self._fail(
                    request,
                    StreamResetError(
                        f"stream reset by the server ({_error_name(code)})",
                        code,
                        unprocessed=refused,
                    ),
                )
        elif isinstance(event, RemoteSettingsChanged):
            self._settings_received = True
        elif isinstance(event, ConnectionTerminated):
            self._goaway(event)
        # Nothing to do for the others: `_pump` reads the windows after WindowUpdated, h2
        # answers pings and acknowledges settings itself, trailers are not used.

    def _stream_ended(self, request: _Request) -> None:
        if not request.local_closed:
            # The server answered before taking the whole body: stop sending it.
            with contextlib.suppress(ProtocolError):
                self._h2.reset_stream(request.stream_id, ErrorCodes.NO_ERROR)
        if not request.status:
            self._fail(request, ConnectionLostError("stream ended without a response"))
            return
        self._finish(
            request,
            Completed(
                request.key,
                Response(request.status, request.response_headers, b"".join(request.chunks)),
            ),
        )

    def _goaway(self, event: ConnectionTerminated) -> None:
        last = event.last_stream_id if event.last_stream_id is not None else 0
        previous = self._goaway_last_stream_id
        self._goaway_last_stream_id = last if previous is None else min(previous, last)
        reason = _error_name(int(event.error_code or 0))
        for stream_id, request in list(self._active.items()):
            if stream_id > self._goaway_last_stream_id:
                with contextlib.suppress(ProtocolError):
                    self._h2.reset_stream(stream_id, ErrorCodes.CANCEL)
                self._fail(
                    request,
                    GoAwayError(
                        f"server sent GOAWAY ({reason}) before taking stream {stream_id}",
                        unprocessed=True,
                    ),
                )
        self._fail_pending(
            lambda _unprocessed: GoAwayError(
                f"server sent GOAWAY ({reason}); request not started", unprocessed=True
            )
        )

    def _pump(self) -> None:
        """Start waiting requests while the budget allows, then send bodies as windows allow."""
        if self._closed:
            return
        while self._pending and self.accepting and len(self._active) < self.max_concurrent_streams:
            request = self._pending.popleft()
            if request.cancelled:
                continue
            try:
                stream_id = self._h2.get_next_available_stream_id()
            except NoAvailableStreamIDError:
                self._pending.appendleft(request)
                self._exhausted = True
                self._fail_pending(
                    lambda _u: ConnectionLostError("stream ids used up", unprocessed=True)
                )
                break
            try:
                self._h2.send_headers(stream_id, request.headers, end_stream=not request.body)
            except TooManyStreamsError:
                # Our count and h2's disagree: wait for the next slot.
                self._pending.appendleft(request)
                break
            except ProtocolError as exc:
                self._pending_count -= 1
                self._fail(
                    request, RequestError(f"request refused locally: {exc}", retryable=False)
                )
                continue
            self._pending_count -= 1
            request.stream_id = stream_id
            request.local_closed = not request.body
            self._active[stream_id] = request
            if request.body:
                self._sending[stream_id] = request
        self._send_bodies()

    def _send_bodies(self) -> None:
        for stream_id, request in list(self._sending.items()):
            connection_window = self._h2.outbound_flow_control_window
            if connection_window <= 0:
                break
            window = self._h2.local_flow_control_window(stream_id)
            frame_size = self._h2.max_outbound_frame_size
            while window > 0 and request.sent < len(request.body):
                size = min(window, frame_size, len(request.body) - request.sent)
                last = request.sent + size == len(request.body)
                self._h2.send_data(
                    stream_id, request.body[request.sent : request.sent + size], end_stream=last
                )
                request.sent += size
                window -= size
            if request.sent == len(request.body):
                request.local_closed = True
                del self._sending[stream_id]


def make_ssl_context(ca_pem: str | None = None) -> ssl.SSLContext:
    """A client TLS context offering ALPN "h2", trusting `ca_pem` (e.g. the emulators'
    local CA) or else the system store.

    Give each H2Client a context of its own, not one shared with httpx: httpx sets the
    context's ALPN to "http/1.1" whenever it connects.
    """
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    return context


def copy_trust(context: ssl.SSLContext) -> ssl.SSLContext:
    """A new client context trusting what `context` trusts (its loaded CA certificates
    plus the system store), with the same verification settings: for a second client
    (httpx) that must not share, and mutate, the first one's context."""
    copy = ssl.create_default_context()
    cas = context.get_ca_certs(binary_form=True)
    if cas:
        copy.load_verify_locations(cadata=b"".join(cas))
    copy.check_hostname = context.check_hostname
    copy.verify_mode = context.verify_mode
    return copy


def _error_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error {code}"


# --------------------------------------------------------------------------- asyncio transport


class _Connection(asyncio.Protocol):
    """One socket driving one `ClientConnection`."""

    def __init__(self, client: H2Client, core: ClientConnection) -> None:
        self.client = client
        self.core = core
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.waiters: dict[int, asyncio.Future[Response]] = {}
        self.closed: asyncio.Future[None] = loop.create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        self.last_received = loop.time()
        self.connect_task: asyncio.Task[None] | None = None

    # ---- used by H2Client

    def submit(
        self, method: str, path: str, headers: HeaderList, body: bytes
    ) -> tuple[int, asyncio.Future[Response]]:
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        key = self.core.submit(method, path, headers, body)
        self.waiters[key] = future
        self._after()
        return key, future

    def cancel(self, key: int) -> None:
        self.waiters.pop(key, None)
        self.core.cancel(key)
        self._after()

    def shutdown(self, message: str) -> None:
        if self.connect_task is not None and not self.connect_task.done():
            self.connect_task.cancel()
        self._after(self.core.close(message))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def drop(self, message: str) -> None:
        """Treat the connection as dead (it stopped answering)."""
        self._after(self.core.connection_lost(message))
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self, timeout: float) -> None:
        if self.connect_task is not None:
            await asyncio.wait([self.connect_task])
        if self.transport is None:
            if not self.closed.done():
                self.closed.set_result(None)
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.transport.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), 1.0)

    async def connect(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        if ssl_context is not None:
            # Again at every connection: another user of a shared context (httpx sets
            # "http/1.1" on it) may have changed it since.
            ssl_context.set_alpn_protocols(["h2"])
        try:
            async with asyncio.timeout(self.client.connect_timeout):
                await loop.create_connection(
                    lambda: self,
                    host,
                    port,
                    ssl=ssl_context,
                    server_hostname=host if ssl_context is not None else None,
                )
        except asyncio.CancelledError:
            self._connect_failed("connection attempt cancelled")
            raise
        except Exception as exc:
            self._connect_failed(f"cannot connect to {self.client.origin}: {exc!r}")

    def _connect_failed(self, message: str) -> None:
        if self.transport is not None:
            return  # connected; connection_lost does the rest
        self._after(self.core.connection_lost(message, connecting=True))
        self.client._forget(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def _after(self, outcomes: Sequence[Outcome] = ()) -> None:
        """Hand finished requests to their waiters, write what the core has to send."""
        for outcome in [*outcomes, *self.core.take_outcomes()]:
            future = self.waiters.pop(outcome.key, None)
            if future is None or future.done():
                continue
            if isinstance(outcome, Completed):
                future.set_result(outcome.response)
            else:
                future.set_exception(outcome.error)
        transport = self.transport
        if transport is None:
            return
        data = self.core.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if self.core.finished:
            self.client._forget(self)
            if not transport.is_closing():
                transport.close()

    # ---- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            protocol = ssl_object.selected_alpn_protocol()
            if protocol not in (None, "h2"):
                message = f"{self.client.origin} does not speak HTTP/2 (ALPN chose {protocol})"
                self._after(self.core.connection_lost(message, connecting=True))
                return
        self._after()

    def data_received(self, data: bytes) -> None:
        self.last_received = asyncio.get_running_loop().time()
        self._after(self.core.receive_data(data))

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        message = f"connection to {self.client.origin} lost"
        if exc is not None:
            message += f": {exc!r}"
        self.writable.set()
        self._after(self.core.connection_lost(message))
        self.client._forget(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class H2Client:
    """HTTP/2 requests to one origin over a lazily opened pool of connections.

    `origin`: `https://host[:port]` (TLS, ALPN "h2"; `ssl_context` defaults to the system
    trust store; a given one gets its ALPN set to "h2" before every connection) or
    `http://host[:port]` (cleartext, prior knowledge). A path in the origin is a prefix
    for every request path.

    A request goes to a connection with a free stream slot, else to a new connection (up
    to `max_connections`), else waits on the least loaded one. Requests that the server
    certainly did not process (GOAWAY, REFUSED_STREAM, a connection lost before they
    started) are resent up to `resend_attempts` times within their timeout.
    """

    def __init__(
        self,
        origin: str,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 1,
        *,
        connect_timeout: float = 10.0,
        max_streams_per_connection: int = DEFAULT_MAX_STREAMS,
        resend_attempts: int = 2,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"origin {origin!r} must be an https:// or http:// URL")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.origin = origin.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default_port else f"{host}:{self.port}"
        self.prefix = parts.path.rstrip("/")
        self.ssl_context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl_context = ssl_context or make_ssl_context()
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.max_streams_per_connection = max_streams_per_connection
        self.resend_attempts = resend_attempts
        self._connections: list[_Connection] = []
        self._closed = False

    @property
    def connections(self) -> int:
        """Open (or opening) connections, including those draining after a GOAWAY."""
        return len(self._connections)

    def _forget(self, connection: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self._connections.remove(connection)

    def _open(self) -> _Connection:
        core = ClientConnection(
            self.authority, self.scheme, max_streams=self.max_streams_per_connection
        )
        connection = _Connection(self, core)
        self._connections.append(connection)
        connection.connect_task = asyncio.get_running_loop().create_task(
            connection.connect(self.host, self.port, self.ssl_context)
        )
        return connection

    def _pick(self) -> _Connection:
        accepting = [c for c in self._connections if c.core.accepting]
        best: _Connection | None = None
        best_spare = 0
        for connection in accepting:
            spare = connection.core.spare_capacity
            if spare > best_spare:
                best, best_spare = connection, spare
        if best is not None:
            return best
        if len(accepting) < self.max_connections:
            return self._open()
        return min(accepting, key=lambda c: c.core.pending_requests)

    async def request(
        self,
        method: str,
        path: str,
        headers: HeaderList | Mapping[str, str] = (),
        body: bytes = b"",
        timeout: float | None = 10.0,
    ) -> Response:
        """Send one request and return the answer, whatever its status.

        Raises a `RequestError` (all retryable, except a refused header or an oversized
        answer) when there is no answer: `RequestTimeout`, `ConnectError`,
        `ConnectionLostError`, `StreamResetError`, `GoAwayError`, `ClientClosedError`.
        """
        header_list = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        attempt = 0
        while True:
            if self._closed:
                raise ClientClosedError("client closed", unprocessed=True)
            connection = self._pick()
            if not connection.writable.is_set():
                try:
                    async with asyncio.timeout_at(deadline):
                        await connection.writable.wait()
                except TimeoutError:
                    raise RequestTimeout(
                        f"no answer within {timeout}s (connection write buffer full)",
                        unprocessed=True,
                    ) from None
                if not connection.core.accepting:
                    continue
            submitted_at = loop.time()
            key, future = connection.submit(method, self.prefix + path, header_list, body)
            try:
                async with asyncio.timeout_at(deadline):
                    return await future
            except TimeoutError:
                if future.done() and not future.cancelled():  # answer and deadline together
                    with contextlib.suppress(RequestError):
                        return future.result()
                started = connection.core.stream_id(key) is not None
                connection.cancel(key)
                if started and connection.last_received < submitted_at:
                    # Nothing at all came back since: the connection is likely dead.
                    connection.drop("connection stopped answering")
                raise RequestTimeout(
                    f"no answer within {timeout}s", unprocessed=not started
                ) from None
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: no "never retrieved" log
                connection.cancel(key)
                raise
            except RequestError as error:
                resend = (
                    error.unprocessed
                    and not isinstance(error, ConnectError | ClientClosedError)
                    and attempt < self.resend_attempts
                    and (deadline is None or loop.time() < deadline)
                )
                if not resend:
                    raise
                attempt += 1

    async def aclose(self) -> None:
        """Close every connection (GOAWAY, then the socket); waiting requests fail."""
        if self._closed:
            return
        self._closed = True
        connections = list(self._connections)
        for connection in connections:
            connection.shutdown("client closed")
        for connection in connections:
            await connection.wait_closed(timeout=2.0)
        self._connections.clear()

    async def __aenter__(self) -> H2Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
