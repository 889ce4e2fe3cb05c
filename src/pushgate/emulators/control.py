"""The emulators' control routes as a raw ASGI app (contract.md, "Emulators").

Relative to `prefix`:

- `GET /emulator/v1/info`: where each emulator listens, and the CA to trust;
- `GET /emulator/v1/deliveries[?platform=&token=]`: a JSON array of the pushes accepted, oldest
  first; `DELETE /emulator/v1/deliveries`: forget them (`{"deleted": n}`);
- `POST /emulator/v1/tokens` `{"platform", "token", "outcome", "environment"}`: answer that token
  with that provider failure from now on (`ok` clears); an iOS token given an `environment`
  (`production` or `sandbox`) is answered `BadDeviceToken` on the other environment's host;
- `POST /emulator/v1/faults` `{"platform", "status", "rate", "retry_after", "latency_ms"}`: answer
  that share of the platform's requests with that transient failure, or add latency (rate 0 and no
  latency clears); with `"kind": "goaway"` (GOAWAY after that share of requests) or `"kind":
  "drop"` (the connection closed with them in flight) instead of a status, which is then ignored.
  `GET /emulator/v1/faults` lists them, each with `kind` and `applied` (requests hit so far).

Bad input gets 400 `{"error": "invalid_request", "message": "..."}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec

from pushgate.api.http import BodyTooLarge, Request, Response, json_response, read_body
from pushgate.api.types import Receive, Scope, Send
from pushgate.emulators.outcomes import (
    FAULT_STATUSES,
    PLATFORMS,
    known_outcomes,
    normalize_outcome,
)
from pushgate.emulators.state import FAULT_KINDS, EmulatorState, Fault

BASE = "/emulator/v1"
APNS_ENVIRONMENTS = ("production", "sandbox")
MAX_CONTROL_BODY = 1 << 20


class BadInput(Exception):
    pass


class ControlApp:
    """ASGI app serving the control routes under `prefix` (e.g. "" or "/admin")."""

    def __init__(
        self, state: EmulatorState, info: Callable[[], dict[str, Any]], prefix: str = ""
    ) -> None:
        self.state = state
        self.info = info
        self.prefix = prefix.rstrip("/")
        self.routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/info"): self._info,
            ("GET", "/deliveries"): self._deliveries,
            ("DELETE", "/deliveries"): self._delete_deliveries,
            ("POST", "/tokens"): self._tokens,
            ("GET", "/faults"): self._faults,
            ("POST", "/faults"): self._set_fault,
        }

    def handles(self, path: str) -> bool:
        """Whether `path` is one of this app's routes (for mounting it beside another app)."""
        return path.startswith(self.prefix + BASE + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = str(scope["method"]), str(scope["path"])
        route = path[len(self.prefix + BASE) :] if self.handles(path) else None
        handler = self.routes.get((method, route)) if route is not None else None
        if handler is None:
            if route is not None and any(r == route for _, r in self.routes):
                await _error(405, "method_not_allowed", f"{method} is not allowed on {path}")(send)
            else:
                await _error(404, "not_found", f"no route {path}")(send)
            return
        try:
            body = await read_body(scope, receive, MAX_CONTROL_BODY)
        except BodyTooLarge:
            await _error(413, "request_too_large", "the body is too large")(send)
            return
        try:
            response = handler(Request(scope, body))
        except BadInput as bad:
            response = _error(400, "invalid_request", str(bad))
        await response(send)

    def _info(self, request: Request) -> Response:
        return json_response(200, self.info())

    def _deliveries(self, request: Request) -> Response:
        query = request.query
        platform = query.get("platform") or None
        if platform is not None and platform not in PLATFORMS:
            raise BadInput(f"platform must be one of {', '.join(PLATFORMS)}")
        found = self.state.deliveries(platform=platform, token=query.get("token") or None)
        return json_response(200, [d.as_dict() for d in found])

    def _delete_deliveries(self, request: Request) -> Response:
        return json_response(200, {"deleted": self.state.clear_deliveries()})

    def _tokens(self, request: Request) -> Response:
        body = _object(request.body)
        platform = _platform(body)
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise BadInput("token must be a non-empty string")
        outcome, environment = body.get("outcome"), body.get("environment")
        if outcome is None and environment is None:
            raise BadInput("give an outcome, an environment or both")
        answer: dict[str, str] = {"platform": platform, "token": token}
        canonical = None
        if outcome is not None:
            if not isinstance(outcome, str):
                raise BadInput("outcome must be a string")
            canonical = normalize_outcome(platform, outcome)
            if canonical is None:
                raise BadInput(
                    f"unknown outcome {outcome!r} for {platform}: one of "
                    + ", ".join(known_outcomes(platform))
                )
            answer["outcome"] = canonical
        if environment is not None:
            if platform != "ios":
                raise BadInput("environment applies to ios tokens only")
            if environment not in APNS_ENVIRONMENTS:
                raise BadInput(f"environment must be one of {', '.join(APNS_ENVIRONMENTS)}")
            answer["environment"] = environment
        # Both checked before either is applied.
        if canonical is not None:
            self.state.set_token_outcome(platform, token, canonical)
        if environment is not None:
            self.state.set_token_environment(platform, token, environment)
        return json_response(200, answer)

    def _faults(self, request: Request) -> Response:
        faults = [f.as_dict() for f in self.state.faults()]
        return json_response(200, faults)

    def _set_fault(self, request: Request) -> Response:
        body = _object(request.body)
        platform = _platform(body)
        rate = _number(body, "rate", 0.0)
        if not 0 <= rate <= 1:
            raise BadInput("rate must be between 0 and 1")
        latency_ms = _number(body, "latency_ms", 0.0)
        if latency_ms < 0:
            raise BadInput("latency_ms must not be negative")
        retry_after: float | None = None
        if body.get("retry_after") is not None:
            retry_after = _number(body, "retry_after", 0.0)
            if retry_after < 0:
                raise BadInput("retry_after must not be negative")
        kind = body.get("kind", "status")
        if kind is None:
            kind = "status"
        if kind not in FAULT_KINDS:
            raise BadInput(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if kind != "status":
            fault = Fault(platform, None, rate, None, latency_ms, kind=kind)
            self.state.set_fault(fault)
            return json_response(200, fault.as_dict())
        status = body.get("status")
        if status is not None and (
            not isinstance(status, int) or isinstance(status, bool) or status not in FAULT_STATUSES
        ):
            raise BadInput(f"status must be one of {', '.join(map(str, FAULT_STATUSES))}")
        if status is None and rate > 0:
            raise BadInput("a fault with a rate needs a status")
        fault = Fault(platform, status, rate, retry_after, latency_ms)
        self.state.set_fault(fault)
        return json_response(200, fault.as_dict())


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        raise BadInput("the body must be JSON") from None
    if not isinstance(value, dict):
        raise BadInput("the body must be a JSON object")
    return value


def _platform(body: dict[str, Any]) -> str:
    platform = body.get("platform")
    if not isinstance(platform, str) or platform not in PLATFORMS:
        raise BadInput(f"platform must be one of {', '.join(PLATFORMS)}")
    return platform


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise BadInput(f"{name} must be a number")
    return float(value)


def _error(status: int, error: str, message: str) -> Response:
    return json_response(status, {"error": error, "message": message})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
