"""The emulators' HTTP/2 sessions, on `h2`: every request becomes one `Request` handed to the
handler; its `Response` is sent whole, a small body in a single DATA frame (aioapns parses each
DATA frame as one JSON document). A per-connection `SETTINGS_MAX_CONCURRENT_STREAMS` a handler
can change (APNs does); requests that carry `host` instead of `:authority`.

Connection faults: `goaway`: the answer goes out, then a GOAWAY (NO_ERROR) naming the highest
stream answered so far as the last one; streams above it are left unprocessed (their handlers
are cancelled) and the connection closes once the streams up to it are answered. `drop`: no
answer; the connection is closed with this request, and any other unanswered one, in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

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

from pushgate.emulators.exchange import (
    READ_SIZE,
    Connection,
    Endpoint,
    Request,
    Response,
    Session,
    as_text,
)

MAX_HEADER_LIST_SIZE = 65536
# Until the client acknowledges our first SETTINGS it cannot know our stream limit (aioapns may
# open many streams before it has read them): streams up to this many are accepted meanwhile.
STREAMS_BEFORE_SETTINGS_ACK = 1000
# After a GOAWAY, how long the client gets to read it and close first: closing with its late
# frames unread would make the kernel answer with a RST, which can destroy what it has not read.
GOAWAY_CLOSE_GRACE = 1.0


@dataclass(slots=True)
class _Stream:
    headers: list[tuple[str, str]] = field(default_factory=list)
    pseudo: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    too_large: bool = False
    task: asyncio.Task[None] | None = None


class H2Session(Session):
    def __init__(
        self,
        server: Endpoint,
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
                data = await self.reader.read(READ_SIZE)
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
                key, text = as_text(name).lower(), as_text(value)
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
