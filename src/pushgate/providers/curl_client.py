"""HTTP requests to the push providers over libcurl: pycurl's multi interface driven by the
asyncio event loop.

Why libcurl: the pure-Python HTTP/2 stack (h2, hpack) took about 60% of a delivery worker's CPU
(issue 13). libcurl with nghttp2 does framing, HPACK, flow control and the connection pool in C;
Python is left with one easy handle per request and one callback per readable socket.

What libcurl does for us (what pushgate relies on is proven against real servers in
tests/providers):

- HTTP/2 with prior knowledge for `http://` origins (h2c sinks); for `https://`, ALPN offering
  `h2, http/1.1` and HTTP/1.1 keep-alive where the server selects it (HMS, which Huawei documents
  as a plain HTTPS API);
- the server's SETTINGS_MAX_CONCURRENT_STREAMS, followed as it changes, down to one stream and
  back (APNs lowers it after every rejected push): requests beyond it wait in libcurl;
- a stream above a GOAWAY's last stream id, or refused with REFUSED_STREAM, never reached the
  server: libcurl sends it again on a new connection (at most 5 times);
- a request that failed with a receive error on a reused connection before any byte of its
  answer (typically an HTTP/1.1 keep-alive connection the server closed meanwhile) is sent again
  on a new connection too. The server may have acted on it, so such a push can arrive twice, as
  after a retry by the worker. Over HTTP/2 a connection closed under open streams fails them
  (`ConnectionLostError`, retryable, not resent: tests/providers/test_curl_client_faults.py);
- the per-request timeout (`TIMEOUT_MS`, which also bounds waiting for a connection or a stream).

What this module adds: an asyncio future per request, a bound on requests in flight, errors as
`RequestError`s, one request on a client's first connection until the server has answered
(libcurl would open up to its own stream cap before the server's SETTINGS arrive; later
connections, after a GOAWAY, are not held back: RFC 9113 lets a client use streams before it
has the server's SETTINGS, and the APNs emulator takes them), and a new connection
pool when a request times out with nothing at all read from the server since it was sent (a
silently dead connection otherwise holds every later request until the kernel gives up on it,
many minutes later).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
import ssl
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pycurl

from pushgate.providers import cork
from pushgate.providers.tls import CurlTls, system_ca_locations

__all__ = [
    "DEFAULT_HTTP1_CONNECTIONS",
    "DEFAULT_MAX_IN_FLIGHT",
    "ClientClosedError",
    "ConnectError",
    "ConnectionLostError",
    "CurlClient",
    "GoAwayError",
    "HeaderList",
    "RequestError",
    "RequestTimeout",
    "Response",
    "ResponseTooLarge",
    "StreamResetError",
]

HeaderList = Sequence[tuple[str, str]]

MAX_RESPONSE_BYTES = 1 << 20  # provider answers are small; refuse to buffer more
MAX_STREAMS = 1000  # our own cap per connection, whatever the server allows
DEFAULT_MAX_IN_FLIGHT = 1000
# HTTP/1.1 carries one request per connection; Huawei's Go demo keeps up to 10 idle ones.
DEFAULT_HTTP1_CONNECTIONS = 16

# Headers libcurl (and pycurl) would add on their own: an `Accept`, an `Expect: 100-continue`
# before large HTTP/1.1 bodies (a round trip for nothing), a form content type for POST bodies,
# pycurl's version string as `User-Agent`. An empty value removes a header in libcurl's syntax.
_SUPPRESSED = ("accept", "expect", "content-type", "user-agent")
_OWN_HEADERS = frozenset({"host", "content-length"})  # libcurl writes these from the request


# --------------------------------------------------------------------------- results


class Headers(Mapping[str, str]):
    """An answer's headers, lower-case names, repeated headers joined with ", "; parsed from
    libcurl's header lines when first read: a provider's success is told by its status (and
    body), and most answers are successes."""

    __slots__ = ("_lines", "_parsed")

    def __init__(self, lines: Sequence[bytes]) -> None:
        self._lines = lines
        self._parsed: dict[str, str] | None = None

    def _dict(self) -> dict[str, str]:
        if self._parsed is None:
            self._parsed = _parse_head(self._lines)
        return self._parsed

    def __getitem__(self, name: str) -> str:
        return self._dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RequestError(Exception):
    """A request that got no HTTP answer.

    `retryable`: trying again later may succeed (true of every transport failure).
    `unprocessed`: the request certainly did not reach the server (it never left), so sending
    it again cannot duplicate it. libcurl itself resends what a GOAWAY or REFUSED_STREAM left
    unprocessed, so such a request only fails after it was refused 5 times.
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
    """The server closed the connection (GOAWAY) before taking this request, more often than
    libcurl resends."""


class ConnectionLostError(RequestError):
    """The connection closed (or broke the protocol) before the answer arrived."""


class ConnectError(RequestError):
    """No connection could be made (DNS, refused, TLS, timeout)."""


class RequestTimeout(RequestError):
    """No answer within the request's timeout; the stream was cancelled."""


class ClientClosedError(RequestError):
    """The client was closed while the request waited."""


class ResponseTooLarge(RequestError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


# libcurl's codes for "no connection came about": nothing was sent.
_CONNECT_ERRORS = frozenset(
    {
        pycurl.E_COULDNT_RESOLVE_HOST,
        pycurl.E_COULDNT_RESOLVE_PROXY,
        pycurl.E_COULDNT_CONNECT,
        pycurl.E_SSL_CONNECT_ERROR,
        pycurl.E_PEER_FAILED_VERIFICATION,
        pycurl.E_SSL_CERTPROBLEM,
        pycurl.E_SSL_CIPHER,
        pycurl.E_SSL_CACERT_BADFILE,
        pycurl.E_SSL_ISSUER_ERROR,
        pycurl.E_SSL_PINNEDPUBKEYNOTMATCH,
        pycurl.E_SSL_ENGINE_INITFAILED,
        pycurl.E_USE_SSL_FAILED,
    }
)
_LOST_ERRORS = frozenset(
    {
        pycurl.E_RECV_ERROR,
        pycurl.E_SEND_ERROR,
        pycurl.E_GOT_NOTHING,
        pycurl.E_PARTIAL_FILE,
        pycurl.E_HTTP2,
        pycurl.E_WRITE_ERROR,
        pycurl.E_SEND_FAIL_REWIND,
    }
)
_LOCAL_ERRORS = frozenset(
    {
        pycurl.E_URL_MALFORMAT,
        pycurl.E_UNSUPPORTED_PROTOCOL,
        pycurl.E_BAD_FUNCTION_ARGUMENT,
        pycurl.E_OUT_OF_MEMORY,
    }
)
_E_HTTP2_STREAM = 92  # CURLE_HTTP2_STREAM, which pycurl does not name
_H2_ERROR_CODE = re.compile(r"error 0x([0-9a-fA-F]+)")
_REFUSED_STREAM = 0x7

_TLS_MIN = {
    "TLSv1": pycurl.SSLVERSION_TLSv1_0,
    "TLSv1_1": pycurl.SSLVERSION_TLSv1_1,
    "TLSv1_2": pycurl.SSLVERSION_TLSv1_2,
    "TLSv1_3": pycurl.SSLVERSION_TLSv1_3,
}
_TLS_MAX = {
    "TLSv1": pycurl.SSLVERSION_MAX_TLSv1_0,
    "TLSv1_1": pycurl.SSLVERSION_MAX_TLSv1_1,
    "TLSv1_2": pycurl.SSLVERSION_MAX_TLSv1_2,
    "TLSv1_3": pycurl.SSLVERSION_MAX_TLSv1_3,
}


def _tls_options(tls: CurlTls) -> list[tuple[int, Any]]:
    options: list[tuple[int, Any]] = [
        (pycurl.SSL_VERIFYPEER, 1 if tls.verify_peer else 0),
        (pycurl.SSL_VERIFYHOST, 2 if tls.verify_host else 0),
    ]
    if tls.ca_pem is not None:
        options.append((pycurl.CAINFO_BLOB, tls.ca_pem))
    else:
        cafile, capath = system_ca_locations()
        if cafile is not None:
            options.append((pycurl.CAINFO, cafile))
        if capath is not None:
            options.append((pycurl.CAPATH, capath))
    if tls.client_pem is not None:
        options += [
            (pycurl.SSLCERT_BLOB, tls.client_pem),
            (pycurl.SSLCERTTYPE, "PEM"),
            (pycurl.SSLKEY_BLOB, tls.client_pem),
            (pycurl.SSLKEYTYPE, "PEM"),
        ]
    version = _TLS_MIN.get(tls.min_version.name, pycurl.SSLVERSION_DEFAULT) | _TLS_MAX.get(
        tls.max_version.name, pycurl.SSLVERSION_MAX_DEFAULT
    )
    options.append((pycurl.SSLVERSION, version))
    return options


def _header_lines(headers: HeaderList | Mapping[str, str]) -> list[str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lines: list[str] = []
    given: set[str] = set()
    for raw_name, value in pairs:
        name, line = _header_line(raw_name, value)
        if line:
            given.add(name)
            lines.append(line)
    lines += [f"{name}:" for name in _SUPPRESSED if name not in given]
    return lines


# Most headers repeat from one push to the next (the bearer token, topic, push type,
# priority): each is checked and formatted once. Per-push values (apns-id) pass through and
# are the first to go.
@functools.lru_cache(maxsize=1024)
def _header_line(raw_name: str, value: str) -> tuple[str, str]:
    """The header's lower-case name and its line in libcurl's syntax ("" for a header
    libcurl writes itself); `RequestError` for one that HTTP cannot carry."""
    name = raw_name.lower()
    if name in _OWN_HEADERS:
        return name, ""
    # "name:" with nothing after it would remove the header; "name;" sends it empty.
    line = f"{name}: {value}" if value else f"{name};"
    if (
        not name
        or name[0] == ":"
        or ":" in name
        or " " in name
        or "\r" in line
        or "\n" in line
        or "\0" in line
    ):
        raise RequestError(f"header {raw_name!r} refused locally", retryable=False)
    return name, line


def _timeout_ms(timeout: float | None) -> int:
    """libcurl's TIMEOUT_MS for `timeout` seconds; libcurl takes 0 as "no timeout", so a
    short remainder is never rounded down to it."""
    return 0 if timeout is None else max(1, math.ceil(timeout * 1000))


def _error(errno: int, message: str, sent: bool) -> RequestError:
    """The `RequestError` for libcurl's `errno`; `sent`: the request was handed to the
    connection (libcurl's pre-transfer time is set)."""
    text = f"{message or pycurl.easy_strerror(errno)} (curl error {errno})"
    if errno in _CONNECT_ERRORS:
        return ConnectError(text, unprocessed=True)
    if errno == pycurl.E_OPERATION_TIMEDOUT:
        if not sent and ("onnect" in message or "resolv" in message):
            return ConnectError(text, unprocessed=True)
        return RequestTimeout(text, unprocessed=not sent)
    if errno == pycurl.E_FILESIZE_EXCEEDED:
        return ResponseTooLarge(f"answer larger than {MAX_RESPONSE_BYTES} bytes: {text}")
    if errno == _E_HTTP2_STREAM:
        match = _H2_ERROR_CODE.search(message)
        code = int(match.group(1), 16) if match else 0
        return StreamResetError(text, code, unprocessed=code == _REFUSED_STREAM)
    if errno in _LOST_ERRORS:
        if "GOAWAY" in message:
            return GoAwayError(text, unprocessed=True)
        return ConnectionLostError(text, unprocessed=not sent)
    if errno in _LOCAL_ERRORS:
        return RequestError(f"request refused locally: {text}", retryable=False)
    return RequestError(text, unprocessed=not sent)


def _parse_head(lines: Sequence[bytes]) -> dict[str, str]:
    """The headers of the last header block (1xx blocks come first)."""
    headers: dict[str, str] = {}
    for line in lines:
        if line[:5] == b"HTTP/":
            headers = {}
            continue
        colon = line.find(b":")
        if colon <= 0:
            continue  # the blank line that ends a block
        key = line[:colon].lower().decode("latin-1")
        text = line[colon + 1 :].strip().decode("latin-1")
        known = headers.get(key)
        headers[key] = text if known is None else f"{known}, {text}"
    return headers


# --------------------------------------------------------------------------- transfers


class _Transfer:
    """An easy handle with its answer buffers, reused from one request to the next (its
    options stay set; only the request's own change)."""

    __slots__ = (
        "chunks",
        "custom",
        "easy",
        "future",
        "header_lines",
        "lines",
        "pool",
        "sent_at",
        "url",
    )

    def __init__(self, static: Sequence[tuple[int, Any]]) -> None:
        self.easy = pycurl.Curl()
        self.chunks: list[bytes] = []
        self.lines: list[bytes] = []
        # The bound `append`s stay valid for the handle's life: buffers are cleared, not replaced.
        self.easy.setopt(pycurl.WRITEFUNCTION, self.chunks.append)
        self.easy.setopt(pycurl.HEADERFUNCTION, self.lines.append)
        for option, value in static:
            self.easy.setopt(option, value)
        self.future: asyncio.Future[Response] | None = None
        self.pool: _Pool | None = None
        self.sent_at = 0.0
        # What the handle was last set to: a request to the same URL with the same header
        # lines (the same list) sets neither again; libcurl would copy both every time.
        self.url = ""
        self.header_lines: list[str] | None = None
        self.custom = False  # CUSTOMREQUEST is set

    def prepare(
        self, method: str, url: str, lines: list[str], body: bytes, timeout_ms: int
    ) -> None:
        easy = self.easy
        if url != self.url:
            easy.setopt(pycurl.URL, url)
            self.url = url
        if lines is not self.header_lines:
            easy.setopt(pycurl.HTTPHEADER, lines)
            self.header_lines = lines
        if method == "GET" and not body:
            easy.setopt(pycurl.HTTPGET, 1)
            custom = False
        else:
            easy.setopt(pycurl.POSTFIELDS, body)
            custom = method != "POST"
        if custom:
            easy.setopt(pycurl.CUSTOMREQUEST, method)
        elif self.custom:
            easy.unsetopt(pycurl.CUSTOMREQUEST)
        self.custom = custom
        easy.setopt(pycurl.TIMEOUT_MS, timeout_ms)
        self.chunks.clear()
        self.lines.clear()


class _Answer(asyncio.Future[Response]):
    """The future of a request handed to libcurl; cancelling it stops the request (libcurl
    resets its stream) and frees its slot at once, whoever awaits it: a task cancelled while
    awaiting it cancels it."""

    transfer: _Transfer | None = None

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False
        transfer = self.transfer
        if transfer is not None and transfer.future is self and transfer.pool is not None:
            client = transfer.pool.client
            transfer.pool.abandon(transfer)
            client._release(transfer)
        return True


class _Pool:
    """One libcurl multi handle (its connection pool) on the event loop."""

    def __init__(self, client: CurlClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        # Our own cap on streams per connection; libcurl applies the server's lower one too.
        self.multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, MAX_STREAMS)
        self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, client.max_host_connections)
        self.multi.setopt(pycurl.M_MAXCONNECTS, client.max_host_connections)
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self.transfers: dict[Any, _Transfer] = {}  # easy handle -> transfer
        self.watched: dict[int, int] = {}  # fd -> the POLL_* events watched
        # The watched connections that take TCP_CORK: corked while libcurl writes (`_act`).
        self.corkable: set[int] = set()
        self.timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self.last_read = 0.0
        self.retired = False
        self.closed = False
        # One request until the first answer: libcurl would otherwise open as many streams as
        # its own cap allows before the server's SETTINGS say how many it takes (APNs: one,
        # until a push succeeds). The first answer comes after the server's SETTINGS.
        self.ready: asyncio.Future[None] = loop.create_future()
        self.first_sent = False

    # ---- libcurl's callbacks (called from inside libcurl: no libcurl calls here)

    def _on_socket(self, what: int, fd: int, _multi: object, _socketp: object) -> None:
        if self.closed:
            return
        before = self.watched.get(fd, 0)
        after = 0 if what == pycurl.POLL_REMOVE else what & pycurl.POLL_INOUT
        if (before ^ after) & pycurl.POLL_IN:
            if after & pycurl.POLL_IN:
                self.loop.add_reader(fd, self._on_readable, fd)
            else:
                self.loop.remove_reader(fd)
        if (before ^ after) & pycurl.POLL_OUT:
            if after & pycurl.POLL_OUT:
                self.loop.add_writer(fd, self._on_writable, fd)
            else:
                self.loop.remove_writer(fd)
        if after:
            if not before and cork.can_cork(fd):
                self.corkable.add(fd)
            self.watched[fd] = after
        else:
            self.watched.pop(fd, None)
            self.corkable.discard(fd)

    def _on_timer(self, timeout_ms: int) -> None:
        if self.closed:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if timeout_ms == 0:
            self.timer = self.loop.call_soon(self._on_timeout)
        elif timeout_ms > 0:
            self.timer = self.loop.call_later(timeout_ms / 1000, self._on_timeout)

    # ---- event loop callbacks

    def _on_readable(self, fd: int) -> None:
        self.last_read = self.loop.time()
        self._act(fd, pycurl.CSELECT_IN)

    def _on_writable(self, fd: int) -> None:
        self._act(fd, pycurl.CSELECT_OUT)

    def _on_timeout(self) -> None:
        self.timer = None
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        if self.closed:
            return
        # One action starts every request waiting for a connection, each its own send():
        # corked, they leave together (see `cork`). Not over HTTP/1.1, one request per
        # connection, where it would only cost two calls per connection.
        corked = tuple(self.corkable) if self.client.protocol != "http/1.1" else ()
        for socket_fd in corked:
            cork.cork(socket_fd)
        try:
            self.multi.socket_action(fd, events)
        except pycurl.error as exc:
            self.fail_all(RequestError(f"libcurl multi error: {exc}"))
            return
        finally:
            for socket_fd in corked:
                cork.uncork(socket_fd)
        self._collect()

    def _collect(self) -> None:
        while True:
            queued, done, failed = self.multi.info_read()
            for easy in done:
                self._finish(easy, 0, "")
            for easy, errno, message in failed:
                self._finish(easy, errno, message)
            if not queued:
                break
        if self.retired and not self.transfers:
            self.loop.call_soon(self.close)

    def _finish(self, easy: Any, errno: int, message: str) -> None:
        transfer = self.transfers.pop(easy, None)
        if transfer is None:
            return
        future = transfer.future
        transfer.future = transfer.pool = None
        outcome: Response | BaseException
        try:
            self.multi.remove_handle(easy)
            outcome = self._outcome(transfer, errno, message)
        except Exception as exc:  # a future left unresolved would hang its caller
            outcome = exc
        self.client._release(transfer)
        self._set_ready()
        if future is not None and not future.done():
            if isinstance(outcome, Response):
                future.set_result(outcome)
            else:
                future.set_exception(outcome)

    def _outcome(self, transfer: _Transfer, errno: int, message: str) -> Response | RequestError:
        if errno == 0:
            lines = transfer.lines
            if lines:
                self.client.protocol = "h2" if lines[0][:6] == b"HTTP/2" else "http/1.1"
            status = transfer.easy.getinfo(pycurl.RESPONSE_CODE)
            return Response(status, Headers(lines.copy()), b"".join(transfer.chunks))
        sent = transfer.easy.getinfo(pycurl.PRETRANSFER_TIME_T) > 0
        error = _error(errno, message, sent)
        if isinstance(error, RequestTimeout) and sent and self.last_read < transfer.sent_at:
            # Nothing at all came back since this request went out: the connection is likely
            # dead. New requests get new connections; this pool closes once empty.
            self.client._retire(self)
        return error

    def _set_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    # ---- used by the client

    def start(self, transfer: _Transfer) -> asyncio.Future[Response]:
        future = _Answer(loop=self.loop)
        future.transfer = transfer
        transfer.future = future
        transfer.pool = self
        transfer.sent_at = self.loop.time()
        self.transfers[transfer.easy] = transfer
        try:
            self.multi.add_handle(transfer.easy)
        except pycurl.error as exc:
            del self.transfers[transfer.easy]
            transfer.future = transfer.pool = None
            raise RequestError(f"libcurl refused the request: {exc}", unprocessed=True) from exc
        return future

    def abandon(self, transfer: _Transfer) -> None:
        """Stop a transfer whose caller gave up (libcurl resets its stream)."""
        if self.transfers.pop(transfer.easy, None) is not None:
            with contextlib.suppress(pycurl.error):
                self.multi.remove_handle(transfer.easy)
        transfer.future = transfer.pool = None
        self._set_ready()
        if self.retired and not self.transfers:
            self.loop.call_soon(self.close)

    def fail_all(self, error: RequestError) -> None:
        for transfer in list(self.transfers.values()):
            future = transfer.future
            self.abandon(transfer)
            self.client._release(transfer)
            if future is not None and not future.done():
                future.set_exception(error)

    def close(self) -> None:
        """Close every connection of the pool; requests still in it fail."""
        if self.closed:
            return
        self.fail_all(ClientClosedError("client closed"))
        self._set_ready()
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        # Unwatch first: libcurl closes the sockets in `close`, and a number reused by a new
        # socket must not find a stale watcher.
        for fd in self.watched:
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        self.watched.clear()
        self.corkable.clear()
        self.multi.close()
        self.client._forget(self)


# --------------------------------------------------------------------------- the client


class CurlClient:
    """HTTP requests to one origin over a libcurl connection pool of its own (one per
    credential and host: nothing is shared with another client).

    `origin`: `https://host[:port]` (ALPN `h2, http/1.1`; HTTP/2 where the server selects it)
    or `http://host[:port]` (HTTP/2 with prior knowledge). A path in the origin is a prefix for
    every request path. `tls` (or `ssl_context`, read once here, see `CurlTls.from_context`)
    says what to trust and which client certificate to present.

    `max_connections`: HTTP/2 connections (each multiplexes as many streams as the server
    allows); `http1_connections`: a larger bound used when the server may select HTTP/1.1,
    which carries one request per connection. `max_in_flight`: requests handed to libcurl at
    once; more wait here, their timeout running.
    """

    def __init__(
        self,
        origin: str,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 1,
        *,
        tls: CurlTls | None = None,
        http1_connections: int | None = None,
        connect_timeout: float = 10.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"origin {origin!r} must be an https:// or http:// URL")
        if max_connections < 1 or max_in_flight < 1:
            raise ValueError("max_connections and max_in_flight must be at least 1")
        self.origin = origin.rstrip("/")
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.max_connections = max_connections
        self.max_host_connections = max(max_connections, http1_connections or 0)
        self.max_in_flight = max_in_flight
        self.connect_timeout = connect_timeout
        self.protocol: str | None = None  # "h2" or "http/1.1", from the latest answer
        static: list[tuple[int, Any]] = [
            (pycurl.NOSIGNAL, 1),
            (pycurl.PIPEWAIT, 1),  # wait for a connection that may multiplex, not a new one
            (pycurl.TCP_NODELAY, 1),
            (pycurl.TCP_KEEPALIVE, 1),
            (pycurl.CONNECTTIMEOUT_MS, max(1, int(connect_timeout * 1000))),
            (pycurl.MAXFILESIZE_LARGE, MAX_RESPONSE_BYTES),
            (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
            (pycurl.FOLLOWLOCATION, 0),
        ]
        if parts.scheme == "http":
            static.append((pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE))
        else:
            static.append((pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS))
            if tls is None:
                tls = CurlTls.from_context(ssl_context)
            static += _tls_options(tls)
        self._static = static
        self._pool: _Pool | None = None
        self._pools: list[_Pool] = []  # the current one and retired ones still draining
        self._free: list[_Transfer] = []
        self._handles: list[_Transfer] = []  # every easy handle made, closed in aclose
        self._in_flight = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        # The loop of the first request, which every pool runs on: Python 3.11's
        # `get_running_loop` costs a getpid() system call (3% of a delivery worker's CPU).
        self._loop: asyncio.AbstractEventLoop | None = None
        # The header lines of the latest tuple of headers (a sender that sends the same
        # headers each time, the same tuple, has them checked and formatted once).
        self._last_headers: object = None
        self._last_lines: list[str] = []

    @property
    def in_flight(self) -> int:
        """Requests handed to libcurl and not finished."""
        return self._in_flight

    # ---- bookkeeping used by the pools

    def _release(self, transfer: _Transfer) -> None:
        if not self._closed:
            self._free.append(transfer)
        self._give_back_slot()

    def _give_back_slot(self) -> None:
        """A slot freed goes straight to the longest waiting request, so that a request
        arriving meanwhile cannot overtake it (nor push the count over the bound)."""
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1

    def _retire(self, pool: _Pool) -> None:
        if self._pool is pool:
            self._pool = None
        pool.retired = True

    def _forget(self, pool: _Pool) -> None:
        with contextlib.suppress(ValueError):
            self._pools.remove(pool)
        if self._pool is pool:
            self._pool = None

    # ---- requests

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
        return await self.start(method, path, headers, body, timeout)

    def start(
        self,
        method: str,
        path: str,
        headers: HeaderList | Mapping[str, str] = (),
        body: bytes = b"",
        timeout: float | None = 10.0,
    ) -> asyncio.Future[Response]:
        """`request` without a coroutine of its own: the future of the answer, or of the
        `RequestError`. When a slot and a ready connection pool are free (the usual case
        under load) the request is handed to libcurl at once; otherwise a task waits for
        them. Cancelling the future stops the request. Call it from the event loop."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        pool = self._pool
        if (
            pool is None
            or not pool.ready.done()
            or self._closed
            or self._in_flight >= self.max_in_flight
            or self._slot_waiters
        ):
            return loop.create_task(self._request_in_turn(method, path, headers, body, timeout))
        self._in_flight += 1
        transfer = None
        try:
            lines = self._lines(headers)
            transfer = self._free.pop() if self._free else self._new_transfer()
            transfer.prepare(method, self.base + path, lines, body, _timeout_ms(timeout))
            return pool.start(transfer)
        except Exception as error:
            if transfer is None:
                self._give_back_slot()
            else:
                self._release(transfer)
            failed: asyncio.Future[Response] = loop.create_future()
            failed.set_exception(error)
            return failed

    def _lines(self, headers: HeaderList | Mapping[str, str]) -> list[str]:
        if headers is self._last_headers:
            return self._last_lines
        lines = _header_lines(headers)
        if isinstance(headers, tuple):  # immutable: the same one has the same lines
            self._last_headers, self._last_lines = headers, lines
        return lines

    async def _request_in_turn(
        self,
        method: str,
        path: str,
        headers: HeaderList | Mapping[str, str],
        body: bytes,
        timeout: float | None,
    ) -> Response:
        """A request that waits for a slot or for its connection pool to take it."""
        lines = self._lines(headers)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if self._closed:
            raise ClientClosedError("client closed", unprocessed=True)
        if self._in_flight < self.max_in_flight and not self._slot_waiters:
            self._in_flight += 1
        else:
            await self._wait_for_slot(loop, deadline, timeout)
        # From here this request holds a slot: every way out gives it back.
        try:
            pool = await self._pool_for_next(loop, deadline, timeout)
            remaining = None if deadline is None else deadline - loop.time()
            transfer = self._free.pop() if self._free else self._new_transfer()
            transfer.prepare(method, self.base + path, lines, body, _timeout_ms(remaining))
        except BaseException:
            self._give_back_slot()
            raise
        try:
            future = pool.start(transfer)
        except RequestError:
            self._release(transfer)
            raise
        # Cancelled while awaiting it, this task cancels the answer, which stops the request.
        return await future

    async def _pool_for_next(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None, timeout: float | None
    ) -> _Pool:
        """The pool for a new request, once it may take one (see `_Pool.ready`)."""
        while True:
            if self._closed:
                raise ClientClosedError("client closed", unprocessed=True)
            pool = self._pool
            if pool is None:
                pool = self._pool = _Pool(self, loop)
                self._pools.append(pool)
            if pool.ready.done():
                return pool
            if not pool.first_sent:
                pool.first_sent = True
                return pool
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(pool.ready)
            except TimeoutError:
                raise RequestTimeout(
                    f"no answer within {timeout}s (waiting for the first answer on a new"
                    " connection)",
                    unprocessed=True,
                ) from None

    def _new_transfer(self) -> _Transfer:
        transfer = _Transfer(self._static)
        self._handles.append(transfer)
        return transfer

    async def _wait_for_slot(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None, timeout: float | None
    ) -> None:
        """Wait until a finished request hands its slot over (see `_give_back_slot`)."""
        waiter: asyncio.Future[None] = loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give_back_slot()  # handed over just as this request gave up
            if isinstance(exc, TimeoutError):
                raise RequestTimeout(
                    f"no answer within {timeout}s ({self.max_in_flight} requests in flight)",
                    unprocessed=True,
                ) from None
            raise
        if self._closed:
            self._give_back_slot()
            raise ClientClosedError("client closed", unprocessed=True)

    async def aclose(self) -> None:
        """Close every connection; requests still waiting fail with `ClientClosedError`."""
        if self._closed:
            return
        self._closed = True
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        for pool in list(self._pools):
            pool.close()
        self._pools.clear()
        self._pool = None
        # Only after the pools: a connection keeps pointers into the handle that opened it.
        for transfer in self._handles:
            transfer.easy.close()
        self._handles.clear()
        self._free.clear()
        await asyncio.sleep(0)  # let the futures failed above reach their waiters

    async def __aenter__(self) -> CurlClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
