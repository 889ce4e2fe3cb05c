"""The emulators' HTTP/1.1 sessions, on `h11` (firebase-admin talks HTTP/1.1 through
`requests`). Connection faults: `goaway` answers with `connection: close`; `drop` closes without
answering.
"""

from __future__ import annotations

import asyncio

import h11

from pushgate.emulators.exchange import (
    READ_SIZE,
    Connection,
    Endpoint,
    Request,
    Response,
    Session,
    as_text,
)


class H11Session(Session):
    def __init__(
        self,
        server: Endpoint,
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
                data = await self.reader.read(READ_SIZE)
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
        headers = [(as_text(k).lower(), as_text(v)) for k, v in event.headers]
        target = as_text(event.target)
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
            method=as_text(event.method),
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
