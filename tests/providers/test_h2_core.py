"""The sans-IO HTTP/2 client core against a real h2 server object, frame by frame (no sockets).

The server is `h2.connection.H2Connection(client_side=False)`: it enforces the limits it
advertised (opening a stream over its acknowledged MAX_CONCURRENT_STREAMS is a protocol
error there), so every exchange below also checks that the client stays within them.
"""

from __future__ import annotations

from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived, Event, RequestReceived, StreamEnded, StreamReset
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from pushgate.providers.h2client import (
    ClientConnection,
    Completed,
    ConnectionLostError,
    Failed,
    GoAwayError,
    Outcome,
    StreamResetError,
)


class Wire:
    """A client core and an h2 server wired back to back; bytes move only when asked."""

    def __init__(self, max_streams: int | None = None, **server_settings: int) -> None:
        self.client = ClientConnection("push.example", "https")
        self.server = H2Connection(
            config=H2Configuration(client_side=False, header_encoding="utf-8")
        )
        initial: dict[SettingCodes, int] = {}
        if max_streams is not None:
            initial[SettingCodes.MAX_CONCURRENT_STREAMS] = max_streams
        for name, value in server_settings.items():
            initial[SettingCodes[name.upper()]] = value
        self.server.local_settings = Settings(client=False, initial_values=initial)
        self.server.initiate_connection()
        self.requests: dict[int, dict[str, str]] = {}  # stream id -> request headers
        self.bodies: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.resets: dict[int, int] = {}
        self.outcomes: dict[int, Outcome] = {}

    def to_server(self, data: bytes | None = None) -> list[Event]:
        events = self.server.receive_data(self.client.data_to_send() if data is None else data)
        for event in events:
            if isinstance(event, RequestReceived):
                self.requests[event.stream_id] = {str(k): str(v) for k, v in event.headers}
                self.bodies[event.stream_id] = bytearray()
            elif isinstance(event, DataReceived):
                self.bodies[event.stream_id] += event.data
            elif isinstance(event, StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, StreamReset):
                self.resets[event.stream_id] = int(event.error_code)
        return events

    def to_client(self, extra: bytes = b"") -> list[Outcome]:
        outcomes = self.client.receive_data(extra + self.server.data_to_send())
        for outcome in outcomes:
            assert outcome.key not in self.outcomes, "one outcome per request"
            self.outcomes[outcome.key] = outcome
        return outcomes

    def settle(self) -> None:
        """Move bytes both ways until neither side has anything to say."""
        for _ in range(50):
            from_client = self.client.data_to_send()
            if from_client:
                self.to_server(from_client)
            from_server = self.server.data_to_send()
            if from_server:
                self.to_client(from_server)
            if not from_client and not from_server:
                return
        raise AssertionError("connection did not settle")

    def respond(self, stream_id: int, status: int = 200, body: bytes = b"", **headers: str) -> None:
        response = [(":status", str(status)), *headers.items()]
        self.server.send_headers(stream_id, response, end_stream=not body)
        if body:
            self.server.send_data(stream_id, body, end_stream=True)

    def completed(self, key: int) -> Any:
        outcome = self.outcomes[key]
        assert isinstance(outcome, Completed), outcome
        return outcome.response

    def failed(self, key: int) -> Any:
        outcome = self.outcomes[key]
        assert isinstance(outcome, Failed), outcome
        return outcome.error


def submit(wire: Wire, n: int, body: bytes = b"") -> list[int]:
    return [
        wire.client.submit("POST", f"/3/device/{i}", [("apns-topic", "t")], body) for i in range(n)
    ]


def test_before_the_servers_settings_only_one_stream_starts() -> None:
    wire = Wire(max_streams=100)
    submit(wire, 5)
    wire.to_server()
    assert len(wire.requests) == 1
    assert wire.client.pending_requests == 4
    wire.to_client()  # the server's SETTINGS: 100 streams
    wire.to_server()
    assert len(wire.requests) == 5
    assert wire.client.pending_requests == 0


def test_requests_carry_pseudo_headers_headers_and_content_length() -> None:
    wire = Wire()
    wire.client.submit("POST", "/3/device/abc", [("Apns-Topic", "com.x")], b'{"aps":{}}')
    wire.settle()
    [headers] = wire.requests.values()
    assert headers[":method"] == "POST"
    assert headers[":scheme"] == "https"
    assert headers[":authority"] == "push.example"
    assert headers[":path"] == "/3/device/abc"
    assert headers["apns-topic"] == "com.x"
    assert headers["content-length"] == "10"
    assert bytes(wire.bodies[1]) == b'{"aps":{}}'


def test_streams_wait_while_the_limit_is_one_and_all_start_when_it_rises_to_1000() -> None:
    wire = Wire(max_streams=1)
    keys = submit(wire, 5)
    wire.settle()
    assert list(wire.requests) == [1]
    assert wire.client.active_streams == 1
    assert wire.client.pending_requests == 4
    assert wire.client.max_concurrent_streams == 1

    wire.server.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
    wire.to_client()  # the new limit: the four waiting requests start at once
    wire.to_server()
    assert sorted(wire.requests) == [1, 3, 5, 7, 9]
    assert wire.client.pending_requests == 0

    for stream_id in wire.requests:
        wire.respond(stream_id, 200)
    wire.to_client()
    assert all(wire.completed(key).status == 200 for key in keys)


def test_a_waiting_stream_starts_as_soon_as_a_stream_ends() -> None:
    wire = Wire(max_streams=1)
    keys = submit(wire, 3)
    wire.settle()
    for expected in ([1], [1, 3], [1, 3, 5]):
        assert sorted(wire.requests) == expected
        wire.respond(expected[-1], 200)
        wire.to_client()  # the answer frees the slot: the next request starts in this step
        wire.to_server()
    assert [wire.completed(k).status for k in keys] == [200, 200, 200]
    assert wire.client.active_streams == 0


def test_the_limit_dropping_to_one_mid_flight_lets_open_streams_finish_and_holds_new_ones() -> None:
    wire = Wire(max_streams=100)
    first = submit(wire, 5)
    wire.settle()
    assert wire.client.active_streams == 5

    wire.server.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    wire.settle()  # the client acknowledges the new limit
    assert wire.client.max_concurrent_streams == 1
    later = submit(wire, 3)
    wire.settle()
    assert len(wire.requests) == 5, "no new stream while 5 are open and the limit is 1"

    for stream_id in [1, 3, 5, 7]:
        wire.respond(stream_id)
    wire.settle()
    assert len(wire.requests) == 5, "still one open stream: nothing new may start"
    wire.respond(9)
    wire.settle()
    assert len(wire.requests) == 6, "the last open stream ended: exactly one starts"
    assert wire.client.pending_requests == 2

    wire.server.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
    wire.settle()
    assert len(wire.requests) == 8
    for stream_id in (11, 13, 15):
        wire.respond(stream_id)
    wire.settle()
    assert all(wire.completed(k).status == 200 for k in first + later)


def test_goaway_fails_streams_above_last_stream_id_unprocessed_and_lower_ones_complete() -> None:
    wire = Wire(max_streams=3)
    keys = submit(wire, 5)  # streams 1, 3, 5 start; two wait
    wire.settle()
    assert sorted(wire.requests) == [1, 3, 5]
    goaway = GoAwayFrame(0, last_stream_id=3, error_code=0).serialize()
    # The GOAWAY and the answer to stream 1 arrive in the same read.
    wire.respond(1, 200, b"one")
    wire.to_client(extra=goaway)

    assert wire.completed(keys[0]).body == b"one"
    for key in (keys[2], keys[3], keys[4]):  # stream 5, and the two never started
        error = wire.failed(key)
        assert isinstance(error, GoAwayError)
        assert error.unprocessed and error.retryable
    assert not wire.client.accepting
    with pytest.raises(RuntimeError):
        wire.client.submit("POST", "/x")
    assert not wire.client.finished, "stream 3 is still in flight"

    wire.to_server()
    assert 5 in wire.resets  # the client gave up stream 5 explicitly
    wire.respond(3, 200, b"three")
    wire.to_client()
    assert wire.completed(keys[1]).body == b"three"
    assert wire.client.finished


def test_a_second_goaway_with_a_lower_last_stream_id_fails_the_streams_between() -> None:
    wire = Wire(max_streams=10)
    keys = submit(wire, 3)
    wire.settle()
    wire.to_client(extra=GoAwayFrame(0, last_stream_id=2**31 - 1).serialize())
    assert not wire.outcomes
    wire.to_client(extra=GoAwayFrame(0, last_stream_id=1).serialize())
    assert isinstance(wire.failed(keys[1]), GoAwayError)
    assert isinstance(wire.failed(keys[2]), GoAwayError)
    wire.respond(1)
    wire.to_client()
    assert wire.completed(keys[0]).status == 200


def test_rst_stream_fails_that_stream_only_and_frees_its_slot() -> None:
    wire = Wire(max_streams=2)
    keys = submit(wire, 3)
    wire.settle()
    wire.server.reset_stream(1, ErrorCodes.INTERNAL_ERROR)
    wire.to_client()
    error = wire.failed(keys[0])
    assert isinstance(error, StreamResetError)
    assert error.error_code == ErrorCodes.INTERNAL_ERROR
    assert error.retryable and not error.unprocessed
    wire.to_server()
    assert sorted(wire.requests) == [1, 3, 5], "the third request took the freed slot"
    wire.respond(3)
    wire.respond(5)
    wire.to_client()
    assert wire.completed(keys[1]).status == wire.completed(keys[2]).status == 200


def test_a_refused_stream_is_unprocessed() -> None:
    wire = Wire()
    [key] = submit(wire, 1)
    wire.settle()
    wire.server.reset_stream(1, ErrorCodes.REFUSED_STREAM)
    wire.to_client()
    assert wire.failed(key).unprocessed


def test_a_large_body_is_sent_as_the_flow_control_windows_open() -> None:
    wire = Wire(initial_window_size=1000)
    wire.settle()  # the handshake: the client now knows the stream window is 1000
    body = bytes(range(256)) * 1000  # 256,000 bytes: over the 65,535 connection window too
    [key] = submit(wire, 1, body)
    wire.to_server()
    assert len(wire.bodies[1]) == 1000, "the stream window, then wait for a WINDOW_UPDATE"
    wire.to_client()
    wire.to_server()
    assert len(wire.bodies[1]) == 1000, "nothing more without a WINDOW_UPDATE"

    acknowledged = rounds = 0
    while 1 not in wire.ended:
        rounds += 1
        assert rounds < 1000
        wire.server.acknowledge_received_data(len(wire.bodies[1]) - acknowledged, 1)
        acknowledged = len(wire.bodies[1])
        wire.to_client()
        wire.to_server()
        assert len(wire.bodies[1]) - acknowledged <= 1000
    assert bytes(wire.bodies[1]) == body
    wire.respond(1, 200)
    wire.to_client()
    assert wire.completed(key).status == 200


def test_a_large_response_is_assembled_and_its_windows_handed_back() -> None:
    wire = Wire()
    [key] = submit(wire, 1)
    wire.settle()
    wire.server.send_headers(1, [(":status", "400"), ("apns-id", "abc")])
    chunk = b"x" * 16000
    for _ in range(12):  # 192,000 bytes: only possible if the client hands windows back
        for _round in range(3):
            if wire.server.local_flow_control_window(1) >= len(chunk):
                break
            wire.to_client()
            wire.to_server()
        assert wire.server.local_flow_control_window(1) >= len(chunk), "window not handed back"
        wire.server.send_data(1, chunk)
    wire.server.end_stream(1)
    wire.to_client()
    response = wire.completed(key)
    assert response.status == 400
    assert response.headers["apns-id"] == "abc"
    assert len(response.body) == 192000


def test_an_answer_before_the_whole_body_stops_the_upload() -> None:
    wire = Wire(initial_window_size=100)
    wire.settle()
    [key] = submit(wire, 1, b"y" * 5000)
    wire.settle()
    wire.respond(1, 413, b'{"reason":"PayloadTooLarge"}')
    wire.to_client()
    assert wire.completed(key).status == 413
    wire.to_server()
    assert wire.resets.get(1) == ErrorCodes.NO_ERROR
    assert wire.client.active_streams == 0


def test_connection_loss_fails_every_request_retryable() -> None:
    wire = Wire(max_streams=1)
    started, waiting = submit(wire, 2)
    wire.settle()
    outcomes = {o.key: o for o in wire.client.connection_lost("reset by peer")}
    for key, unprocessed in ((started, False), (waiting, True)):
        outcome = outcomes[key]
        assert isinstance(outcome, Failed)
        assert isinstance(outcome.error, ConnectionLostError)
        assert outcome.error.retryable
        assert outcome.error.unprocessed is unprocessed
    assert wire.client.finished and not wire.client.accepting


def test_a_cancelled_stream_is_reset_and_its_slot_goes_to_the_next_request() -> None:
    wire = Wire(max_streams=1)
    first, second = submit(wire, 2)
    wire.settle()
    wire.client.cancel(first)
    wire.server.send_headers(1, [(":status", "200")])  # sent before it sees the reset
    wire.to_client()
    wire.to_server()
    assert wire.resets[1] == ErrorCodes.CANCEL
    assert 3 in wire.requests
    wire.respond(3)
    wire.to_client()
    assert first not in wire.outcomes
    assert wire.completed(second).status == 200


def test_a_cancelled_waiting_request_never_starts() -> None:
    wire = Wire(max_streams=1)
    _first, second, _third = submit(wire, 3)
    wire.settle()
    wire.client.cancel(second)
    assert wire.client.pending_requests == 1
    wire.respond(1)
    wire.settle()
    assert sorted(wire.requests) == [1, 3]
    assert wire.requests[3][":path"] == "/3/device/2"
    assert second not in wire.outcomes


def test_a_protocol_error_from_the_server_fails_everything_and_goes_away() -> None:
    wire = Wire()
    [key] = submit(wire, 1)
    wire.settle()
    wire.to_client(extra=b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + b"\x00" * 8)  # PING on stream 1
    error = wire.failed(key)
    assert isinstance(error, ConnectionLostError)
    assert wire.client.finished
    events = wire.server.receive_data(wire.client.data_to_send())
    assert any(type(e).__name__ == "ConnectionTerminated" for e in events)
