"""CurlClient (libcurl on the asyncio loop) against tiny local servers over real sockets."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from hyperframe.frame import GoAwayFrame

from pushgate.providers.curl_client import (
    MAX_RESPONSE_BYTES,
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    CurlClient,
    RequestError,
    RequestTimeout,
    ResponseTooLarge,
)
from pushgate.providers.tls import CurlTls
from tests.support.provider_servers import (
    H2TestServer,
    HttpRequest,
    HttpTestServer,
    Reply,
    Request,
    Tls,
    eventually,
)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


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
        CurlClient(server.url, max_connections=1) as client,
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
        CurlClient(server.url) as client,
    ):
        responses = await asyncio.wait_for(
            asyncio.gather(*(client.request("POST", f"/{i}", [], b"{}", 5.0) for i in range(60))),
            timeout=10,
        )
    assert sorted(r.status for r in responses) == [200] * 52 + [400] * 8
    assert server.violations == [], "a stream was opened before the server's SETTINGS allowed it"
    assert server.accepted == 1


async def test_response_status_headers_and_body_come_back() -> None:
    async with H2TestServer(echo) as server, CurlClient(server.url) as client:
        response = await client.request("GET", "/hello", {"accept": "application/json"})
        posted = await client.request("PUT", "/put", [("x-empty", "")], b"body")
    assert response.status == 200
    assert response.headers["x-method"] == "GET"
    assert response.body == b"/hello"
    assert (posted.status, posted.headers["x-method"], posted.body) == (200, "PUT", b"/put")
    assert client.protocol == "h2"


async def test_what_the_server_receives_is_exactly_the_request() -> None:
    """No header of libcurl's own (accept, expect, a form content type), the body whole."""
    seen: list[Request] = []

    async def handler(request: Request) -> Reply:
        seen.append(request)
        return Reply(200)

    body = b'{"aps":{"alert":"x"}}' * 500  # several DATA frames
    async with H2TestServer(handler) as server, CurlClient(server.url + "/prefix") as client:
        await client.request(
            "POST", "/3/device/abc", [("apns-topic", "com.example"), ("Apns-Priority", "10")], body
        )
        await client.request("POST", "/json", [("content-type", "application/json")], b"{}")
    first, second = seen
    assert first.path == "/prefix/3/device/abc"
    assert first.body == body
    regular = {k: v for k, v in first.headers.items() if not k.startswith(":")}
    assert regular == {
        "apns-topic": "com.example",
        "apns-priority": "10",
        "content-length": str(len(body)),
    }
    assert second.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "header", [("x-bad", "a\r\nx-injected: 1"), ("bad name", "v"), (":path", "/x"), ("x", "\0")]
)
async def test_a_header_that_would_change_the_request_is_refused_before_sending(
    header: tuple[str, str],
) -> None:
    async with H2TestServer(echo) as server, CurlClient(server.url) as client:
        with pytest.raises(RequestError) as caught:
            await client.request("POST", "/", [header], b"")
    assert not caught.value.retryable
    assert server.accepted == 0


async def test_a_graceful_goaway_makes_the_next_request_open_a_new_connection() -> None:
    async def handler(request: Request) -> Reply:
        return Reply(200, b"bye", goaway_after=True)

    async with H2TestServer(handler) as server, CurlClient(server.url) as client:
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
        if len(arrived) == 4 and server.accepted == 1:
            all_arrived.set()
        if server.accepted == 1 and request.path != "/first":
            await all_arrived.wait()
            if request.path == "/0":  # stream 3: GOAWAY first, naming it, then its answer
                request.connection.inject(GoAwayFrame(0, last_stream_id=3).serialize())
            else:
                await asyncio.sleep(10)  # never answered on this connection
        return Reply(200, request.path.encode())

    async with H2TestServer(handler) as server, CurlClient(server.url) as client:
        await client.request("POST", "/first", [], b"x", 5.0)  # stream 1
        zero = asyncio.ensure_future(client.request("POST", "/0", [], b"x", 5.0))  # stream 3
        await eventually(lambda: len(arrived) == 2)
        others = [client.request("POST", f"/{i}", [], b"x", 5.0) for i in (1, 2)]  # 5 and 7
        responses = await asyncio.wait_for(asyncio.gather(zero, *others), timeout=5)
    assert [r.body for r in responses] == [b"/0", b"/1", b"/2"]
    assert server.accepted == 2
    assert [r.path for r in arrived].count("/0") == 1, "the stream the server took went once"


async def test_connection_loss_fails_in_flight_requests_retryable_and_the_next_reconnects() -> None:
    async def handler(request: Request) -> Reply:
        if request.path == "/drop":
            assert request.connection.transport is not None
            request.connection.transport.abort()
        return Reply(200)

    async with H2TestServer(handler) as server, CurlClient(server.url) as client:
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

    async with H2TestServer(handler) as server, CurlClient(server.url) as client:
        assert (await client.request("POST", "/first", [], b"x")).status == 200  # stream 1
        slow = asyncio.ensure_future(client.request("POST", "/slow", [], b"x", timeout=0.3))
        await asyncio.sleep(0.05)
        assert (await client.request("POST", "/fast", [], b"x")).status == 200
        with pytest.raises(RequestTimeout) as caught:
            await slow
        assert caught.value.retryable
        await eventually(lambda: server.resets == [3])
        assert (await client.request("POST", "/fast", [], b"x")).status == 200
    assert server.accepted == 1, "a connection that still answers is kept"


async def test_a_connection_that_stopped_answering_is_replaced_after_a_timeout() -> None:
    async def handler(request: Request) -> Reply:
        if request.path == "/hang":
            await asyncio.sleep(10)
        return Reply(200)

    async with H2TestServer(handler) as server, CurlClient(server.url) as client:
        assert (await client.request("POST", "/ok", [], b"x")).status == 200
        with pytest.raises(RequestTimeout):
            await client.request("POST", "/hang", [], b"x", timeout=0.3)
        assert (await client.request("POST", "/ok", [], b"x")).status == 200
        await eventually(lambda: len(server.connections) == 1)  # the first one was closed
    assert server.accepted == 2


async def test_https_origins_negotiate_h2_by_alpn() -> None:
    async with H2TestServer(echo, tls=Tls()) as server:
        assert server.tls is not None
        async with CurlClient(server.url, server.tls.client_context()) as client:
            response = await client.request("GET", "/tls")
        assert response.body == b"/tls"
    assert server.alpn == ["h2"]


async def test_a_server_that_selects_http11_is_spoken_to_in_http11() -> None:
    tls = Tls()

    async def answer(request: HttpRequest) -> tuple[int, bytes]:
        return 200, request.body

    async with (
        HttpTestServer(answer, tls=tls) as server,
        CurlClient(server.url, tls.client_context(), http1_connections=4) as client,
    ):
        responses = await asyncio.gather(
            *(client.request("POST", f"/{i}", [], str(i).encode()) for i in range(8))
        )
        protocol = client.protocol
        authority = server.url.split("//")[1]
    assert [r.body for r in responses] == [str(i).encode() for i in range(8)]
    assert protocol == "http/1.1"
    assert {r.headers["content-type"] for r in responses} == {"application/json"}
    assert all("expect" not in r.headers for r in server.requests)
    assert {r.headers["host"] for r in server.requests} == {authority}


async def test_an_answer_larger_than_the_limit_is_refused_not_retried() -> None:
    tls = Tls()

    async def huge(request: HttpRequest) -> tuple[int, bytes]:
        return 200, b"x" * (MAX_RESPONSE_BYTES + 1)

    async with (
        HttpTestServer(huge, tls=tls) as server,
        CurlClient(server.url, tls.client_context()) as client,
    ):
        with pytest.raises(ResponseTooLarge) as caught:
            await client.request("GET", "/")
    assert not caught.value.retryable


async def test_a_server_certificate_that_is_not_trusted_fails_to_connect() -> None:
    async with H2TestServer(echo, tls=Tls()) as server:
        stranger = Tls().client_context()  # trusts another certificate only
        async with CurlClient(server.url, stranger) as client:
            with pytest.raises(ConnectError) as caught:
                await client.request("GET", "/", timeout=5)
        async with CurlClient(server.url, tls=CurlTls(verify_peer=False)) as client:
            unverified = await client.request("GET", "/insecure", timeout=5)
    assert caught.value.retryable and caught.value.unprocessed
    assert unverified.body == b"/insecure"


async def test_an_unreachable_origin_fails_with_a_retryable_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    async with CurlClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(ConnectError) as caught:
            await client.request("GET", "/", timeout=5)
    assert caught.value.retryable


async def test_requests_spread_over_max_connections_when_the_server_allows_one_stream_each() -> (
    None
):
    async def handler(request: Request) -> Reply:
        await asyncio.sleep(0.05)
        return Reply(200)

    async with (
        H2TestServer(handler, initial_max_streams=1) as server,
        CurlClient(server.url, max_connections=3) as client,
    ):
        responses = await asyncio.gather(
            *(client.request("POST", f"/{i}", [], b"x") for i in range(6))
        )
    assert all(r.status == 200 for r in responses)
    # libcurl opens a second connection for the second request; before that connection's
    # SETTINGS arrive it may carry more than one stream, so a third is not always needed.
    assert 2 <= server.accepted <= 3
    assert server.violations == []


async def test_requests_beyond_max_in_flight_wait_and_their_timeout_runs() -> None:
    release = asyncio.Event()

    async def handler(request: Request) -> Reply:
        await release.wait()
        return Reply(200)

    async with H2TestServer(handler) as server, CurlClient(server.url, max_in_flight=2) as client:
        await asyncio.gather(client.request("POST", "/warm", [], b"x"), _set_soon(release))
        release.clear()
        held = [asyncio.ensure_future(client.request("POST", f"/{i}", [], b"x")) for i in (1, 2)]
        await eventually(lambda: server.peak_open == 2)
        with pytest.raises(RequestTimeout) as caught:
            await client.request("POST", "/3", [], b"x", timeout=0.2)
        assert caught.value.unprocessed, "it never left"
        third = asyncio.ensure_future(client.request("POST", "/4", [], b"x"))
        await asyncio.sleep(0.05)
        assert client.in_flight == 2
        release.set()
        responses = await asyncio.gather(*held, third)
    assert [r.status for r in responses] == [200] * 3
    assert server.peak_open == 2


async def _set_soon(event: asyncio.Event) -> None:
    await asyncio.sleep(0.01)
    event.set()


async def test_a_cancelled_request_resets_its_stream_and_frees_its_slot() -> None:
    async def handler(request: Request) -> Reply:
        if request.path == "/hang":
            await asyncio.sleep(10)
        return Reply(200)

    async with H2TestServer(handler) as server, CurlClient(server.url, max_in_flight=1) as client:
        assert (await client.request("POST", "/ok", [], b"x")).status == 200
        hanging = asyncio.ensure_future(client.request("POST", "/hang", [], b"x"))
        await eventually(lambda: server.peak_open == 1 and client.in_flight == 1)
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
        assert client.in_flight == 0
        assert (await client.request("POST", "/ok", [], b"x")).status == 200
        await eventually(lambda: server.resets == [3])


async def test_a_started_request_is_handed_over_at_once_and_cancelling_it_resets_its_stream() -> (
    None
):
    async def handler(request: Request) -> Reply:
        if request.path == "/hang":
            await asyncio.sleep(10)
        return Reply(200, request.path.encode())

    async with H2TestServer(handler) as server, CurlClient(server.url, max_in_flight=1) as client:
        first = client.start("POST", "/first", [], b"x")
        assert isinstance(first, asyncio.Task), "a new connection's first request waits its turn"
        assert (await first).body == b"/first"
        answer = client.start("POST", "/hang", [], b"x")
        assert not isinstance(answer, asyncio.Task), "handed to libcurl without a task"
        assert client.in_flight == 1
        waiting = client.start("POST", "/after", [], b"x")
        assert isinstance(waiting, asyncio.Task), "over max_in_flight: it waits in a task"
        await eventually(lambda: server.peak_open == 1)
        await asyncio.sleep(0.01)  # the waiting task waits for a slot by now
        answer.cancel()
        assert client.in_flight == 1, "the slot went straight to the waiting request"
        assert (await waiting).body == b"/after"
        assert client.in_flight == 0
        await eventually(lambda: server.resets == [3])
        refused = client.start("POST", "/", [("bad header", "x")], b"x")
        with pytest.raises(RequestError):
            await refused
        assert client.in_flight == 0


async def test_aclose_fails_waiting_requests_and_closes_the_connections() -> None:
    async def handler(request: Request) -> Reply:
        await asyncio.sleep(10)
        return Reply(200)

    async with H2TestServer(handler) as server:
        client = CurlClient(server.url)
        pending = asyncio.ensure_future(client.request("POST", "/", [], b"x"))
        await eventually(lambda: server.accepted == 1)
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await pending
        await eventually(lambda: server.connections == [])
        with pytest.raises(ClientClosedError):
            await client.request("GET", "/")


async def test_no_file_descriptor_outlives_the_client() -> None:
    tls = Tls()
    async with H2TestServer(echo) as plain, H2TestServer(echo, tls=tls) as secure:
        await asyncio.sleep(0)
        before = open_fds()
        for _ in range(3):
            clients = [
                CurlClient(plain.url, max_connections=2),
                CurlClient(secure.url, tls.client_context()),
            ]
            for client in clients:
                await asyncio.gather(
                    *(client.request("POST", f"/{i}", [], b"x") for i in range(20))
                )
            assert open_fds() > before
            for client in clients:
                await client.aclose()
        # The servers' ends, in this process too, close once they read the client's close.
        await eventually(lambda: open_fds() == before)
