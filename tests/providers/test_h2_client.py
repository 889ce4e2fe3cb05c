"""H2Client (asyncio) against a tiny local h2 server over real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx
import pytest
from hyperframe.frame import GoAwayFrame

from pushgate.providers.h2client import (
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    H2Client,
    RequestTimeout,
)
from tests.providers.servers import (
    H2TestServer,
    HttpRequest,
    HttpTestServer,
    Reply,
    Request,
    Tls,
)


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Wait for something the other side does asynchronously; fail if it never happens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def echo(request: Request) -> Reply:
    return Reply(200, request.path.encode(), [("x-method", request.method)])


async def test_fifty_concurrent_requests_complete_while_the_server_lowers_then_raises_the_limit() -> (
    None
):
    handled = 0
    open_at_arrival: list[int] = []

    async def handler(request: Request) -> Reply:
        nonlocal handled
        if request.path == "/lower":
            request.connection.set_max_streams(1)  # sent before this answer
            return Reply(200)
        open_at_arrival.append(request.connection.open_requests)
        handled += 1
        await asyncio.sleep(0.002)
        if handled == 10:
            request.connection.set_max_streams(1000)  # the waiting requests may all start
        return Reply(200, request.path.encode())

    async with (
        H2TestServer(handler, initial_max_streams=100) as server,
        H2Client(server.url, max_connections=1) as client,
    ):
        await client.request("POST", "/lower", [], b"{}")
        paths = [f"/3/device/{i}" for i in range(50)]
        responses = await asyncio.wait_for(
            asyncio.gather(*(client.request("POST", p, [], b"{}", 5.0) for p in paths)),
            timeout=10,
        )
    assert [r.body.decode() for r in responses] == paths
    assert all(r.status == 200 for r in responses)
    assert server.violations == [], "the client opened more streams than allowed"
    assert server.accepted == 1
    assert open_at_arrival[:10] == [1] * 10, "one at a time while the limit is 1"
    assert max(open_at_arrival[10:]) > 10, "the waiting requests started once it rose"


async def test_requests_follow_an_apns_like_limit_that_drops_after_each_rejection() -> None:
    """One stream until a success, many after it, one again after any rejected push."""
    count = 0

    async def handler(request: Request) -> Reply:
        nonlocal count
        count += 1
        number = count
        await asyncio.sleep(0.001)
        if number % 7 == 0:
            request.connection.set_max_streams(1)
            return Reply(400, b'{"reason":"BadDeviceToken"}')
        if request.connection.max_streams == 1:
            request.connection.set_max_streams(500)
        return Reply(200)

    async with (
        H2TestServer(handler, initial_max_streams=1) as server,
        H2Client(server.url) as client,
    ):
        responses = await asyncio.wait_for(
            asyncio.gather(*(client.request("POST", f"/{i}", [], b"{}", 5.0) for i in range(60))),
            timeout=10,
        )
    assert sorted(r.status for r in responses) == [200] * 52 + [400] * 8
    assert server.violations == []


async def test_response_status_headers_and_body_come_back() -> None:
    async with H2TestServer(echo) as server, H2Client(server.url) as client:
        response = await client.request("GET", "/hello", {"accept": "application/json"})
    assert response.status == 200
    assert response.headers["x-method"] == "GET"
    assert response.body == b"/hello"


async def test_a_graceful_goaway_makes_the_next_request_open_a_new_connection() -> None:
    async def handler(request: Request) -> Reply:
        return Reply(200, b"bye", goaway_after=True)

    async with H2TestServer(handler) as server, H2Client(server.url) as client:
        first = await client.request("POST", "/a", [], b"1")
        await asyncio.sleep(0.05)  # let the GOAWAY arrive
        second = await client.request("POST", "/b", [], b"2")
    assert first.status == second.status == 200
    assert server.accepted == 2


async def test_streams_above_a_goaways_last_stream_id_are_resent_on_a_new_connection() -> None:
    arrived: list[Request] = []
    all_arrived = asyncio.Event()

    async def handler(request: Request) -> Reply:
        arrived.append(request)
        if len(arrived) == 3 and server.accepted == 1:
            all_arrived.set()
        if server.accepted == 1:
            await all_arrived.wait()
            if request.path == "/0":  # stream 1: GOAWAY first, then its answer
                request.connection.inject(GoAwayFrame(0, last_stream_id=1).serialize())
            else:
                await asyncio.sleep(10)  # never answered on this connection
        return Reply(200, request.path.encode())

    async with H2TestServer(handler) as server, H2Client(server.url) as client:
        first = client.request("POST", "/0", [], b"x", 5.0)
        others = [client.request("POST", f"/{i}", [], b"x", 5.0) for i in (1, 2)]
        responses = await asyncio.wait_for(asyncio.gather(first, *others), timeout=5)
    assert [r.body for r in responses] == [b"/0", b"/1", b"/2"]
    assert server.accepted == 2


async def test_connection_loss_fails_in_flight_requests_retryable_and_the_next_reconnects() -> None:
    async def handler(request: Request) -> Reply:
        if request.path == "/drop":
            assert request.connection.transport is not None
            request.connection.transport.abort()
        return Reply(200)

    async with H2TestServer(handler) as server, H2Client(server.url) as client:
        with pytest.raises(ConnectionLostError) as caught:
            await client.request("POST", "/drop", [], b"x")
        assert caught.value.retryable and not caught.value.unprocessed
        response = await client.request("POST", "/ok", [], b"x")
    assert response.status == 200
    assert server.accepted == 2


async def test_a_slow_answer_times_out_and_its_stream_is_cancelled() -> None:
    async def handler(request: Request) -> Reply:
        if request.path == "/slow":
            await asyncio.sleep(10)
        return Reply(200)

    async with H2TestServer(handler) as server, H2Client(server.url) as client:
        slow = asyncio.ensure_future(client.request("POST", "/slow", [], b"x", timeout=0.3))
        await asyncio.sleep(0.05)
        assert (await client.request("POST", "/fast", [], b"x")).status == 200
        with pytest.raises(RequestTimeout) as caught:
            await slow
        assert caught.value.retryable
        await eventually(lambda: server.resets == [1])
        assert (await client.request("POST", "/fast", [], b"x")).status == 200
    assert server.accepted == 1, "a connection that still answers is kept"


async def test_a_connection_that_stopped_answering_is_replaced_after_a_timeout() -> None:
    async def handler(request: Request) -> Reply:
        if request.path == "/hang":
            await asyncio.sleep(10)
        return Reply(200)

    async with H2TestServer(handler) as server, H2Client(server.url) as client:
        assert (await client.request("POST", "/ok", [], b"x")).status == 200
        with pytest.raises(RequestTimeout):
            await client.request("POST", "/hang", [], b"x", timeout=0.3)
        assert (await client.request("POST", "/ok", [], b"x")).status == 200
    assert server.accepted == 2


async def test_https_origins_negotiate_h2_by_alpn() -> None:
    async with H2TestServer(echo, tls=Tls()) as server:
        assert server.tls is not None
        async with H2Client(server.url, server.tls.client_context()) as client:
            response = await client.request("GET", "/tls")
        assert response.body == b"/tls"
    assert server.alpn == ["h2"]


async def test_h2_is_still_offered_after_httpx_used_the_same_tls_context() -> None:
    """httpx sets ALPN "http/1.1" on the context it is given, at every connection."""
    tls = Tls()
    shared = tls.client_context()

    async def token(request: HttpRequest) -> tuple[int, bytes]:
        return 200, b"{}"

    async with (
        H2TestServer(echo, tls=tls) as server,
        HttpTestServer(token, tls=tls) as http_server,
        H2Client(server.url, shared, max_connections=2) as client,
    ):
        async with httpx.AsyncClient(verify=shared) as http:
            assert (await http.get(http_server.url)).status_code == 200
        assert (await client.request("GET", "/one")).status == 200
        async with httpx.AsyncClient(verify=shared) as http:
            assert (await http.get(http_server.url)).status_code == 200
        server.connections[0].inject(GoAwayFrame(0, last_stream_id=1).serialize())
        await asyncio.sleep(0.05)
        assert (await client.request("GET", "/two")).status == 200  # a new connection
    assert server.alpn == ["h2", "h2"]


async def test_an_unreachable_origin_fails_with_a_retryable_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    async with H2Client(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(ConnectError) as caught:
            await client.request("GET", "/", timeout=5)
    assert caught.value.retryable


async def test_more_connections_open_when_the_server_allows_one_stream_each() -> None:
    async def handler(request: Request) -> Reply:
        await asyncio.sleep(0.05)
        return Reply(200)

    async with (
        H2TestServer(handler, initial_max_streams=1) as server,
        H2Client(server.url, max_connections=3) as client,
    ):
        responses = await asyncio.gather(
            *(client.request("POST", f"/{i}", [], b"x") for i in range(6))
        )
    assert all(r.status == 200 for r in responses)
    assert server.accepted == 3
    assert server.violations == []


async def test_aclose_fails_waiting_requests_and_closes_the_connections() -> None:
    async def handler(request: Request) -> Reply:
        await asyncio.sleep(10)
        return Reply(200)

    async with H2TestServer(handler) as server:
        client = H2Client(server.url)
        pending = asyncio.ensure_future(client.request("POST", "/", [], b"x"))
        await asyncio.sleep(0.05)
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await pending
        await eventually(lambda: server.connections == [])
        with pytest.raises(ClientClosedError):
            await client.request("GET", "/")
