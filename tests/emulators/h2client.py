"""A minimal HTTP/2 client on `h2` that shows what a library hides: every SETTINGS change the
server sends and how many DATA frames carried each response body."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.settings import SettingCodes


@dataclass
class H2Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    data_frames: int = 0


@dataclass
class _Pending:
    future: asyncio.Future[H2Response]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    data_frames: int = 0


class H2Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.max_streams_history: list[int] = []
        """Every MAX_CONCURRENT_STREAMS value the server announced, in order."""
        self.settings_changed = asyncio.Event()
        self.terminated = False
        self._pending: dict[int, _Pending] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> H2Client:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname=server_hostname if ssl_context else None
        )
        client = cls(reader, writer)
        client.conn.initiate_connection()
        client._flush()
        client._task = asyncio.create_task(client._read())
        return client

    async def wait_for_settings(self, count: int = 1, timeout: float = 5) -> list[int]:
        async with asyncio.timeout(timeout):
            while len(self.max_streams_history) < count:
                self.settings_changed.clear()
                await self.settings_changed.wait()
        return self.max_streams_history

    async def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        authority: str | None = "127.0.0.1",
        timeout: float = 5,
    ) -> H2Response:
        stream_id = self.start(method, path, headers, body, authority)
        async with asyncio.timeout(timeout):
            return await self._pending[stream_id].future

    def start(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        authority: str | None = "127.0.0.1",
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        pseudo = [(":method", method), (":scheme", "https"), (":path", path)]
        if authority is not None:
            pseudo.append((":authority", authority))
        self._pending[stream_id] = _Pending(asyncio.get_running_loop().create_future())
        self.conn.send_headers(stream_id, pseudo + (headers or []), end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self._flush()
        return stream_id

    async def response(self, stream_id: int, timeout: float = 5) -> H2Response:
        async with asyncio.timeout(timeout):
            return await self._pending[stream_id].future

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close_connection()
            self._flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    self._on_event(event)
                self._flush()
        finally:
            self.terminated = True
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(ConnectionError("connection closed"))
            self.settings_changed.set()

    def _on_event(self, event: object) -> None:
        if isinstance(event, RemoteSettingsChanged):
            changed = event.changed_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS)
            if changed is not None:
                self.max_streams_history.append(changed.new_value)
                self.settings_changed.set()
        elif isinstance(event, ResponseReceived):
            pending = self._pending[event.stream_id]
            for name, value in event.headers:
                key, text = str(name), str(value)
                if key == ":status":
                    pending.status = int(text)
                else:
                    pending.headers[key] = text
        elif isinstance(event, DataReceived):
            pending = self._pending[event.stream_id]
            pending.body += event.data
            pending.data_frames += 1
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded):
            pending = self._pending[event.stream_id]
            pending.future.set_result(
                H2Response(
                    pending.status, pending.headers, bytes(pending.body), pending.data_frames
                )
            )
        elif isinstance(event, StreamReset):
            pending = self._pending[event.stream_id]
            if not pending.future.done():
                pending.future.set_exception(ConnectionError(f"stream reset {event.error_code}"))
        elif isinstance(event, ConnectionTerminated):
            self.terminated = True
