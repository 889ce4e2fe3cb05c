"""The ASGI application: a route table, error mapping and the service's lifespan.

Handlers are plain async functions of a `Request`; each endpoint family maps
its own errors to its documented shape, and anything unexpected becomes a
JSON 500 (never a stack trace or HTML).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pushgate.api.http import BodyTooLarge, Handler, Request, Response, json_response, read_body
from pushgate.api.types import ASGIApp, Receive, Scope, Send
from pushgate.metrics import RequestMetrics

log = logging.getLogger("pushgate.api")

Route = tuple[str, str]  # (method, path)
BodyLimitAnswer = Callable[[], Response]


def request_too_large() -> Response:
    return json_response(
        413,
        {"error": "request_too_large", "message": "the request body must be at most 5000000 bytes"},
    )


@dataclass
class Endpoint:
    handler: Handler
    too_large: BodyLimitAnswer = request_too_large


@dataclass
class App:
    routes: dict[Route, Endpoint] = field(default_factory=dict)
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    ready: bool = False
    metrics: RequestMetrics = field(default_factory=RequestMetrics)
    # Sub-apps that own every path their predicate accepts (the emulators' control routes).
    mounts: list[tuple[Callable[[str], bool], ASGIApp]] = field(default_factory=list)
    # Routes owning every path under a prefix, for paths with parameters in them.
    prefixes: dict[Route, Endpoint] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        handler: Handler,
        too_large: BodyLimitAnswer = request_too_large,
    ) -> None:
        self.routes[(method, path)] = Endpoint(handler, too_large)

    def route_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        self.prefixes[(method, prefix)] = Endpoint(handler)

    def _find(self, method: str, path: str) -> Endpoint | None:
        endpoint = self.routes.get((method, path))
        if endpoint is not None:
            return endpoint
        for (m, prefix), e in self.prefixes.items():
            if m == method and path.startswith(prefix):
                return e
        return None

    def _path_known(self, path: str) -> bool:
        return any(p == path for _, p in self.routes) or any(
            path.startswith(prefix) for _, prefix in self.prefixes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        for owns, sub_app in self.mounts:
            if owns(path):
                await sub_app(scope, receive, send)
                return
        endpoint = self._find(method, path)
        if endpoint is None:
            if method == "HEAD" and (e := self._find("GET", path)):
                endpoint = e
            elif self._path_known(path):
                await json_response(
                    405,
                    {
                        "error": "method_not_allowed",
                        "message": f"{method} is not allowed on {path}",
                    },
                )(send)
                return
            else:
                await json_response(
                    404, {"error": "not_found", "message": f"no endpoint at {path}"}
                )(send)
                return
        started = time.perf_counter()
        try:
            body = await read_body(scope, receive)
        except BodyTooLarge:
            response = endpoint.too_large()
        else:
            try:
                response = await endpoint.handler(Request(scope, body))
            except Exception:
                log.exception("unhandled error on %s %s", method, path)
                response = json_response(
                    500,
                    {
                        "error": "internal_error",
                        "message": "the server failed to process the request",
                    },
                )
        await response(send)
        self.metrics.observe(path, response.status, time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                    self._tasks = [asyncio.create_task(job()) for job in self.background]
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                for task in self._tasks:
                    task.cancel()
                for task in self._tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                for hook in self.on_shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return
