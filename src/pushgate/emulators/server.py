"""A small asyncio HTTP server for the emulators: HTTP/2 and HTTP/1.1, TLS optional.

What the providers' real clients need:

- over TLS, `h2` when the client offers it by ALPN, and HTTP/2 with prior knowledge when the client
  offers no ALPN at all (aioapns); in cleartext, HTTP/2 with prior knowledge (h2c);
- HTTP/1.1 on the same port (firebase-admin talks HTTP/1.1 through `requests`): the first bytes
  decide, the HTTP/2 client preface `PRI * HTTP/2.0` or anything else.

This module accepts connections and picks the session (h2_session.py, h11_session.py); what a
handler sees is in exchange.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from pushgate.emulators.exchange import READ_SIZE, Connection, Handler, Request, Response, Session
from pushgate.emulators.h2_session import H2Session
from pushgate.emulators.h11_session import H11Session

log = logging.getLogger("pushgate.emulators.server")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_MAX_BODY = 1 << 20


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
        self._sessions: set[Session] = set()
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
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    return
                first += chunk
        session: Session
        if not self.http2 and (alpn == "h2" or first.startswith(H2_PREFACE)):
            await _refuse_http2(writer)
            return
        if alpn == "h2" or first.startswith(H2_PREFACE):
            connection = Connection("h2", tls, alpn, peer, peer_certificate)
            session = H2Session(self, reader, writer, connection)
        else:
            connection = Connection("http/1.1", tls, alpn, peer, peer_certificate)
            session = H11Session(self, reader, writer, connection)
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
