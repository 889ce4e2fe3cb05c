"""The ASGI application: a route table, error mapping and the service's lifespan.

Handlers are plain async functions of a `Request`; each endpoint family maps
its own errors to its documented shape, and anything unexpected becomes a
JSON 500 (never a stack trace or HTML).

Every request gets an id (the client's `X-Request-Id` when sane, else a new one), returned in
`X-Request-Id` and carried by every log line emitted while it is handled; it is counted under
its route template (metrics.py) and logged once on `pushgate.access`: method, route template,
status and duration only, never the path's parameters, the query string or the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pushgate import logs
from pushgate.api.admission import Admission
from pushgate.api.http import (
    BodyTooLarge,
    Handler,
    Request,
    Response,
    error_json,
    read_body,
    scope_header,
)
from pushgate.api.types import ASGIApp, Receive, Scope, Send
from pushgate.metrics import EndpointStats, RequestMetrics
from pushgate.outage import RETRY_AFTER_SECONDS, unreachable
from pushgate.startup_errors import explained

log = logging.getLogger("pushgate.api")
access = logging.getLogger("pushgate.access")

Route = tuple[str, str]  # (method, path)
BodyLimitAnswer = Callable[[], Response]


def _compile(template: str) -> re.Pattern[str]:
    """`/a/{name}/b` -> a pattern whose group `name` is one non-empty path segment."""
    parts = re.split(r"\{(\w+)\}", template)
    pieces = [
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    ]
    return re.compile("".join(pieces))


def request_too_large() -> Response:
    return error_json(413, "request_too_large", "the request body must be at most 5000000 bytes")


@dataclass
class Endpoint:
    handler: Handler
    stats: EndpointStats  # its label, `template`, is the route's path or path template
    too_large: BodyLimitAnswer = request_too_large

    @property
    def template(self) -> str:
        return self.stats.endpoint


@dataclass
class App:
    routes: dict[Route, Endpoint] = field(default_factory=dict)
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    ready: bool = False
    metrics: RequestMetrics = field(default_factory=RequestMetrics)
    access_log: bool = True  # one INFO line per request on `pushgate.access`
    admission: Admission | None = None  # load shedding; None: every request is handled
    # Sub-apps that own every path their predicate accepts (the emulators' control routes).
    mounts: list[tuple[Callable[[str], bool], ASGIApp]] = field(default_factory=list)
    # Routes with parameters in their path (`/x/{id}/report`), tried in the order added.
    templates: list[tuple[str, re.Pattern[str], Endpoint]] = field(default_factory=list)
    # Routes owning every path under a prefix (files under a directory).
    prefixes: dict[Route, Endpoint] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        handler: Handler,
        too_large: BodyLimitAnswer = request_too_large,
    ) -> None:
        """`path` exactly, or a template whose `{name}` segments match any one segment; the
        handler reads them from `Request.path_params`. Either way the route is counted and
        logged as `path`, so a path's parameters never become label values."""
        endpoint = Endpoint(handler, self.metrics.endpoint(method, path), too_large)
        if "{" in path:
            self.templates.append((method, _compile(path), endpoint))
        else:
            self.routes[(method, path)] = endpoint

    def route_prefix(
        self, method: str, prefix: str, handler: Handler, template: str | None = None
    ) -> None:
        """A route for every path under `prefix`; `template` (say `/x/{id}/report`) is what it
        is counted and logged as, so that the paths' parameters never become label values."""
        stats = self.metrics.endpoint(method, template or prefix + "*")
        self.prefixes[(method, prefix)] = Endpoint(handler, stats)

    def _find(self, method: str, scope: Scope) -> Endpoint | None:
        path: str = scope["path"]
        endpoint = self.routes.get((method, path))
        if endpoint is not None:
            return endpoint
        for m, pattern, e in self.templates:
            if m == method and (match := pattern.fullmatch(path)):
                scope["path_params"] = match.groupdict()
                return e
        for (m, prefix), e in self.prefixes.items():
            if m == method and path.startswith(prefix):
                return e
        return None

    def _methods(self, path: str) -> set[str]:
        """The methods some route takes at this path (empty: no route knows it)."""
        methods = {m for m, p in self.routes if p == path}
        methods |= {m for m, pattern, _ in self.templates if pattern.fullmatch(path)}
        methods |= {m for m, prefix in self.prefixes if path.startswith(prefix)}
        if "GET" in methods:
            methods.add("HEAD")
        return methods

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
        started = time.perf_counter()
        rid = logs.request_id(scope_header(scope, b"x-request-id"))
        context = logs.REQUEST_ID.set(rid)
        try:
            endpoint = self._find(method, scope)
            if endpoint is None and method == "HEAD":
                endpoint = self._find("GET", scope)
            if endpoint is None:
                stats = self.metrics.unmatched(method)
                response = self._unmatched(method, path)
            else:
                stats = endpoint.stats
                response = await self._admitted(endpoint, scope, receive)
            await response(send, rid.encode())
            seconds = time.perf_counter() - started
            stats.observe(response.status, seconds)
            if self.access_log and access.isEnabledFor(logging.INFO):
                access.info(
                    "%s %s %d %.1fms",
                    method,
                    stats.endpoint,
                    response.status,
                    seconds * 1000,
                    extra={
                        "method": method,
                        "route": stats.endpoint,
                        "status": response.status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )
        finally:
            logs.REQUEST_ID.reset(context)

    def _unmatched(self, method: str, path: str) -> Response:
        if methods := self._methods(path):
            return error_json(  # RFC 9110 15.5.6: a 405 names the methods that are allowed
                405,
                "method_not_allowed",
                f"{method} is not allowed on {path}",
                headers=((b"allow", ", ".join(sorted(methods)).encode()),),
            )
        return error_json(404, "not_found", f"no endpoint at {path}")

    async def _admitted(self, endpoint: Endpoint, scope: Scope, receive: Receive) -> Response:
        """The endpoint's answer, or a 503 when the service is overloaded (api/admission.py)."""
        if self.admission is None:
            return await self._handle(endpoint, scope, receive)
        refusal = self.admission.refuse(scope)
        if refusal is not None:
            return refusal
        try:
            return await self._handle(endpoint, scope, receive)
        finally:
            self.admission.release(scope)

    async def _handle(self, endpoint: Endpoint, scope: Scope, receive: Receive) -> Response:
        try:
            body = await read_body(scope, receive)
        except BodyTooLarge:
            return endpoint.too_large()
        try:
            return await endpoint.handler(Request(scope, body))
        except Exception as error:
            part = unreachable(error)
            if part is not None:  # nothing of the request was kept: the client sends it again
                log.warning(
                    "%s unreachable on %s %s: %s", part, scope["method"], endpoint.template, error
                )
                return error_json(
                    503,
                    "unavailable",
                    f"the {part} cannot be reached; retry after {RETRY_AFTER_SECONDS} seconds",
                    headers=((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),),
                )
            log.exception("unhandled error on %s %s", scope["method"], endpoint.template)
            return error_json(500, "internal_error", "the server failed to process the request")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                    self._tasks = [asyncio.create_task(job()) for job in self.background]
                except Exception as exc:
                    mistake = explained(exc)
                    if mistake is None:
                        log.exception("startup failed")
                    else:  # a configuration mistake: its one line, no traceback
                        log.error("%s", mistake)
                    # uvicorn logs a message given here: the line above is the whole story
                    reason = "" if mistake is not None else str(exc)
                    await send({"type": "lifespan.startup.failed", "message": reason})
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
