"""The emulators' HTTP server: HTTP/2 with or without ALPN, HTTP/1.1 on the same port, h2c."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from pushgate.emulators import LocalCA
from pushgate.emulators.exchange import Request, Response
from pushgate.emulators.server import HttpServer
from tests.emulators.h2client import H2Client


async def echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("handler failure")
    if request.path == "/big":
        return Response(200, b"x" * 200_000)
    about = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "version": request.http_version,
        "alpn": request.connection.alpn,
        "authority": request.authority,
        "connection": request.connection.id,
        "body_length": len(request.body),
        "headers": dict(request.headers),
    }
    return Response(200, json.dumps(about).encode(), [("content-type", "application/json")])


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA.generate()


@pytest.fixture
async def tls_server(ca: LocalCA) -> AsyncIterator[HttpServer]:
    server = HttpServer(echo, ssl_context=ca.server_context(), max_body=300_000)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def plain_server() -> AsyncIterator[HttpServer]:
    server = HttpServer(echo)
    await server.start()
    yield server
    await server.stop()


async def test_tls_without_alpn_speaks_http2_with_prior_knowledge(
    tls_server: HttpServer, ca: LocalCA
) -> None:
    client = await H2Client.connect(tls_server.host, tls_server.port, ca.client_context())
    try:
        response = await client.request("GET", "/x?a=1")
    finally:
        await client.close()

    about = json.loads(response.body)
    assert (about["version"], about["alpn"]) == ("2", None)
    assert (about["path"], about["query"], about["authority"]) == ("/x", "a=1", "127.0.0.1")


async def test_tls_with_alpn_selects_h2(tls_server: HttpServer, ca: LocalCA) -> None:
    async with httpx.AsyncClient(verify=ca.client_context(), http2=True) as client:
        response = await client.get(tls_server.url + "/x")

    assert response.http_version == "HTTP/2"
    assert (response.json()["version"], response.json()["alpn"]) == ("2", "h2")


async def test_tls_with_alpn_http11_speaks_http11_and_keeps_the_connection(
    tls_server: HttpServer, ca: LocalCA
) -> None:
    async with httpx.AsyncClient(verify=ca.client_context()) as client:
        first = await client.post(tls_server.url + "/a", content=b"hello")
        second = await client.get(tls_server.url + "/b")

    assert first.http_version == "HTTP/1.1"
    assert (first.json()["version"], first.json()["alpn"]) == ("1.1", "http/1.1")
    assert first.json()["body_length"] == 5
    assert first.json()["connection"] == second.json()["connection"]


async def test_tls_without_alpn_serves_http11_when_the_client_sends_it(
    tls_server: HttpServer, ca: LocalCA
) -> None:
    reader, writer = await asyncio.open_connection(
        tls_server.host, tls_server.port, ssl=ca.client_context()
    )
    writer.write(b"GET /plain HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["version"] == "1.1"
    assert json.loads(body)["authority"] == "localhost"


async def test_cleartext_http2_with_prior_knowledge(plain_server: HttpServer) -> None:
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        response = await client.get(plain_server.url + "/h2c")

    assert response.http_version == "HTTP/2"
    assert response.json()["version"] == "2"


async def test_cleartext_http11(plain_server: HttpServer) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(plain_server.url + "/h1")

    assert response.http_version == "HTTP/1.1"
    assert response.json()["version"] == "1.1"


async def test_bodies_larger_than_the_flow_control_window_cross_both_ways(
    tls_server: HttpServer, ca: LocalCA
) -> None:
    async with httpx.AsyncClient(verify=ca.client_context(), http2=True) as client:
        upload = await client.post(tls_server.url + "/up", content=b"y" * 250_000)
        download = await client.get(tls_server.url + "/big")

    assert upload.json()["body_length"] == 250_000
    assert download.content == b"x" * 200_000


async def test_a_body_over_the_limit_is_refused_with_413(
    tls_server: HttpServer, ca: LocalCA
) -> None:
    async with httpx.AsyncClient(verify=ca.client_context(), http2=True) as client:
        response = await client.post(tls_server.url + "/up", content=b"y" * 400_000)

    assert response.status_code == 413


async def test_a_failing_handler_answers_500_and_the_connection_lives_on(
    tls_server: HttpServer, ca: LocalCA
) -> None:
    async with httpx.AsyncClient(verify=ca.client_context(), http2=True) as client:
        failed = await client.get(tls_server.url + "/boom")
        after = await client.get(tls_server.url + "/fine")

    assert failed.status_code == 500
    assert after.status_code == 200


async def test_stop_sends_goaway_to_open_http2_connections(
    ca: LocalCA,
) -> None:
    server = HttpServer(echo, ssl_context=ca.server_context())
    await server.start()
    client = await H2Client.connect(server.host, server.port, ca.client_context())
    await client.request("GET", "/x")

    await server.stop()
    await asyncio.sleep(0.05)

    assert client.terminated
    await client.close()
