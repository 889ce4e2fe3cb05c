"""api/one_write.py: a response's writes leave together, once per event-loop iteration."""

from __future__ import annotations

import asyncio

from pushgate.api.one_write import _CoalescingTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


def test_the_writes_of_one_iteration_go_out_as_one() -> None:
    async def scenario() -> list[bytes]:
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert real.writes == []  # nothing before the iteration ends
        await asyncio.sleep(0)
        transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await asyncio.sleep(0)
        return real.writes

    assert asyncio.run(scenario()) == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]


def test_closing_sends_what_waits_first() -> None:
    async def scenario() -> RecordingTransport:
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        transport.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        return real

    real = asyncio.run(scenario())
    assert real.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"]
    assert real.closed


def test_nothing_is_written_to_a_transport_already_closing() -> None:
    async def scenario() -> RecordingTransport:
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"late")
        real.close()  # the peer went away meanwhile
        await asyncio.sleep(0)
        return real

    assert asyncio.run(scenario()).writes == []


def test_the_rest_is_the_real_transports() -> None:
    async def scenario() -> object:
        transport = _CoalescingTransport(RecordingTransport(), asyncio.get_running_loop())
        return transport.get_extra_info("peername")

    assert asyncio.run(scenario()) == ("127.0.0.1", 5)
