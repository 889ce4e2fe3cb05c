"""The emulators' HTTP server acting on a handler's connection fault (`Request.connection_fault`),
seen on the wire: the frames an HTTP/2 client reads, and what an HTTP/1.1 client gets.

contract.md, "Additions (revised)": `goaway` sends GOAWAY after a request, leaving later streams
unprocessed; `drop` closes the connection mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame

from pushgate.emulators import h2_session
from pushgate.emulators.exchange import Request, Response
from pushgate.emulators.server import HttpServer


@dataclass
class Scripted:
    """A handler whose paths say what to do: `/hold/...` waits for `hold`, `/slow/...` for
    `release`; a path ending in `goaway` or `drop` asks for that fault."""

    hold: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)

    async def __call__(self, request: Request) -> Response:
        self.started.append(request.path)
        self.connections.append(request.connection.id)
        waits = {"/hold": self.hold, "/slow": self.release}
        gate = next((e for prefix, e in waits.items() if request.path.startswith(prefix)), None)
        if gate is not None:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(request.path)
                raise
        if request.path.endswith("goaway"):
            request.connection_fault = "goaway"
        elif request.path.endswith("drop"):
            request.connection_fault = "drop"
        return Response(200, request.path.encode())

    async def wait_started(self, count: int) -> None:
        """Until `count` handlers have started (they run as soon as their request is read)."""
        async with asyncio.timeout(10):
            while len(self.started) < count:
                await asyncio.sleep(0.005)


@pytest.fixture
def scripted() -> Scripted:
    return Scripted()


@pytest.fixture
async def server(scripted: Scripted, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HttpServer]:
    # No need to give the raw test client a second to close first: it reads until EOF.
    monkeypatch.setattr(h2_session, "GOAWAY_CLOSE_GRACE", 0.0)
    running = HttpServer(scripted)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def closing() -> AsyncIterator[list[RawH2]]:
    clients: list[RawH2] = []
    yield clients
    for client in clients:
        await client.close()


class RawH2:
    """Writes requests with h2; reads the server's frames itself, so that nothing after a GOAWAY
    is hidden (h2 refuses every frame once it has received one)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.buffer = b""
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, server: HttpServer) -> RawH2:
        client = cls(*await asyncio.open_connection(server.host, server.port))
        client.h2.initiate_connection()
        client.writer.write(client.h2.data_to_send())
        return client

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    def send(self, path: str) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", path)]
        self.h2.send_headers(stream_id, headers, end_stream=True)
        self.writer.write(self.h2.data_to_send())
        return stream_id

    async def read_until(self, wanted: type[Frame] | None) -> None:
        """Read frames until one of type `wanted` arrives (None: until the server closes)."""
        while True:
            while len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                self.buffer = self.buffer[9 + length :]
                self.frames.append(frame)
                if wanted is not None and isinstance(frame, wanted):
                    return
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            if not data:
                assert wanted is None, f"closed before a {wanted.__name__}"
                return
            self.buffer += data

    def answered(self) -> list[int]:
        """The streams that got an answer, in order (one HEADERS frame each)."""
        return [f.stream_id for f in self.frames if isinstance(f, HeadersFrame)]

    def goaways(self) -> list[GoAwayFrame]:
        return [f for f in self.frames if isinstance(f, GoAwayFrame)]

    def bodies(self) -> dict[int, bytes]:
        return {f.stream_id: f.data for f in self.frames if isinstance(f, DataFrame) and f.data}


async def test_goaway_names_the_answered_stream_and_later_streams_stay_unprocessed(
    server: HttpServer, scripted: Scripted, closing: list[RawH2]
) -> None:
    client = await RawH2.connect(server)
    closing.append(client)
    held = client.send("/hold/1")  # below the GOAWAY, still being handled when it goes out
    goaway = client.send("/slow/goaway")
    later = client.send("/slow/5")  # above it, being handled when it goes out
    await scripted.wait_started(3)
    scripted.release.set()
    await client.read_until(GoAwayFrame)
    after = client.send("/after")  # sent once the GOAWAY was read
    scripted.hold.set()
    await client.read_until(None)

    [frame] = client.goaways()
    assert (frame.last_stream_id, frame.error_code) == (goaway, 0)
    assert client.answered() == [goaway, held], "the streams up to the last one are answered"
    assert client.bodies() == {goaway: b"/slow/goaway", held: b"/hold/1"}
    assert later not in client.answered() and after not in client.answered()
    assert scripted.cancelled == ["/slow/5"], "a stream above it is left unprocessed"
    assert "/after" not in scripted.started


async def test_drop_closes_the_connection_without_answering_anything_in_flight(
    server: HttpServer, scripted: Scripted, closing: list[RawH2]
) -> None:
    client = await RawH2.connect(server)
    closing.append(client)
    client.send("/hold/1")
    await scripted.wait_started(1)
    client.send("/drop")
    await client.read_until(None)

    assert client.answered() == []
    assert client.goaways() == [], "closed, not shut down gracefully"
    assert scripted.cancelled == ["/hold/1"], "the request in flight is cut off too"


async def test_goaway_over_http11_answers_with_connection_close(
    server: HttpServer, scripted: Scripted
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        first = await client.post("/goaway")
        second = await client.post("/next")

    assert (first.status_code, first.text) == (200, "/goaway")
    assert first.headers["connection"] == "close"
    assert second.status_code == 200
    assert scripted.connections[0] != scripted.connections[1], "the next request reconnected"


async def test_drop_over_http11_closes_without_an_answer(
    server: HttpServer, scripted: Scripted
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/drop")
        after = await client.post("/next")

    assert after.status_code == 200
    assert scripted.started == ["/drop", "/next"]
