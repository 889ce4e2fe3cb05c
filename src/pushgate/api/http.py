"""Requests and responses on raw ASGI: just what the routes need, nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from pushgate.api.types import Receive, Scope, Send
from pushgate.wire.errors import ErrorBody

MAX_BODY_BYTES = 5_000_000  # the Insider APIs' request limit
_encode = msgspec.json.encode


class BodyTooLarge(Exception):
    pass


@dataclass(slots=True)
class Request:
    scope: Scope
    body: bytes

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    @property
    def path_params(self) -> dict[str, str]:
        """The `{name}` segments of the route's path template (api/app.py: App.route)."""
        params: dict[str, str] = self.scope.get("path_params", {})
        return params

    @property
    def client_ip(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    def header(self, name: bytes) -> str | None:
        value = scope_header(self.scope, name)
        return None if value is None else value.decode("latin-1")

    @property
    def query(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(bytes(self.scope.get("query_string", b"")).decode("latin-1")))


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()

    async def __call__(self, send: Send, request_id: bytes | None = None) -> None:
        headers = [
            (b"content-type", self.content_type),
            (b"content-length", str(len(self.body)).encode()),
            *self.headers,
        ]
        if request_id is not None:
            headers.append((b"x-request-id", request_id))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(
    status: int, content: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> Response:
    return Response(status, _encode(content), headers=tuple(headers))


def error_json(
    status: int,
    error: str,
    message: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> Response:
    """An `ErrorBody` answer; without a message, the `{"error": ...}` of the families that
    give none."""
    return json_response(status, ErrorBody(error=error, message=message), headers)


def text_response(
    status: int, text: str, content_type: bytes = b"text/plain; charset=utf-8"
) -> Response:
    return Response(status, text.encode(), content_type)


def scope_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (`name` in lower case, as ASGI gives them)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    length = scope_header(scope, b"content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise BodyTooLarge
        except ValueError:
            pass
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


Handler = Callable[[Request], Awaitable[Response]]
