"""The campaigns dashboard: a static page, sign-in with the partner's API key, and the same
campaign list and report as the API, read with a session cookie instead of the key.

The API key is sent once (a JSON POST) and never kept in the browser: the session is a random
token in an HttpOnly, SameSite=Strict cookie, stored server-side only as a hash, so it survives
restarts and works behind several API processes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from pushgate import keys
from pushgate.api.http import Request, Response, json_response
from pushgate.api.push import error_response
from pushgate.auth import PartnerCache, body_api_key, check_ip
from pushgate.store import sessions
from pushgate.store.models import Partner
from pushgate.store.store import Store
from pushgate.targeting.errors import ApiError
from pushgate.targeting.validate import parse_json

PREFIX = "/dashboard"
STATIC_DIR = Path(__file__).with_name("static")
COOKIE = "pushgate_session"
SESSION_SECONDS = 12 * 3600
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        b" frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".md": b"text/plain; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}
NOT_SIGNED_IN = ApiError(401, "not_signed_in", "sign in with the app's API key")
INVALID_API_KEY = ApiError(401, "invalid_api_key", "that API key is not valid")
JSON_ONLY = ApiError(415, "unsupported_media_type", "send the API key as application/json")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")

Read = Callable[[Partner, Request], Awaitable[Any]]


def _static_files() -> dict[str, tuple[bytes, bytes]]:
    """Read once at start: the set of files is fixed, so no path from a request reaches the disk."""
    files: dict[str, tuple[bytes, bytes]] = {}
    for path in STATIC_DIR.iterdir():
        content_type = CONTENT_TYPES.get(path.suffix)
        if path.is_file() and content_type is not None:
            files[path.name] = (path.read_bytes(), content_type)
    return files


def _secure(request: Request) -> bool:
    """Browsers keep Secure cookies from https pages and from loopback hosts only; a plain-http
    deployment on another host (behind nothing) would otherwise never stay signed in."""
    if request.scope.get("scheme") == "https":
        return True
    host = (request.header(b"host") or "").rsplit(":", 1)[0]
    return host in LOOPBACK_HOSTS


def _cookie(request: Request, value: str, max_age: int) -> tuple[bytes, bytes]:
    parts = [f"{COOKIE}={value}", f"Path={PREFIX}", f"Max-Age={max_age}", "HttpOnly"]
    parts.append("SameSite=Strict")
    if _secure(request):
        parts.append("Secure")
    return (b"set-cookie", "; ".join(parts).encode())


def _session_token(request: Request) -> str | None:
    raw = request.header(b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is the same as none
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _with_headers(response: Response, *extra: tuple[bytes, bytes]) -> Response:
    response.headers = (
        *response.headers,
        *SECURITY_HEADERS,
        (b"cache-control", b"no-store"),
        *extra,
    )
    return response


class Dashboard:
    def __init__(
        self,
        store: Store,
        partners: PartnerCache,
        campaigns: Read,
        report: Read,
        webhook: Read,
    ) -> None:
        self.store = store
        self.partners = partners
        self.reads: dict[str, Read] = {
            "campaigns": campaigns,
            "report": report,
            "webhook": webhook,
        }
        self.files = _static_files()

    async def page(self, request: Request) -> Response:
        body, content_type = self.files["index.html"]
        return _with_headers(Response(200, body, content_type))

    async def static(self, request: Request) -> Response:
        name = request.path[len(f"{PREFIX}/static/") :]
        found = self.files.get(name)
        if found is None:
            return _with_headers(
                json_response(404, {"error": "not_found", "message": f"no file {name}"})
            )
        return _with_headers(Response(200, *found))

    async def _partner(self, request: Request) -> Partner:
        token = _session_token(request)
        if token is None:
            raise NOT_SIGNED_IN
        digest = keys.hash_secret(token)
        now = time.time()
        partner = await self.store.db.run(lambda c: sessions.partner_of(c, digest, now))
        if partner is None:
            raise NOT_SIGNED_IN
        check_ip(partner, request.client_ip)
        return partner

    async def session(self, request: Request) -> Response:
        """GET: who is signed in (`null`: nobody); POST {"api_key"}: sign in; DELETE: sign out."""
        try:
            if request.method == "POST":
                return await self._sign_in(request)
            if request.method == "DELETE":
                return await self._sign_out(request)
            partner = await self._partner(request)
        except ApiError as error:
            if error is NOT_SIGNED_IN and request.method == "GET":
                # Being signed out is an answer, not a failure (browsers log every 401).
                return _with_headers(json_response(200, {"partner": None}))
            return _with_headers(error_response(error))
        return _with_headers(json_response(200, {"partner": partner.name}))

    async def _sign_in(self, request: Request) -> Response:
        content_type = (request.header(b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise JSON_ONLY
        key = body_api_key(parse_json(request.body))
        partner = await self.partners.admit("api_key", key, request.client_ip)
        if partner is None:
            raise INVALID_API_KEY
        token = secrets.token_urlsafe(32)
        digest = keys.hash_secret(token)
        now, partner_id = time.time(), partner.id
        await self.store.db.run(
            lambda c: sessions.create(c, digest, partner_id, now, SESSION_SECONDS)
        )
        return _with_headers(
            json_response(200, {"partner": partner.name}),
            _cookie(request, token, SESSION_SECONDS),
        )

    async def _sign_out(self, request: Request) -> Response:
        token = _session_token(request)
        if token is not None:
            digest = keys.hash_secret(token)
            await self.store.db.run(lambda c: sessions.delete(c, digest))
        return _with_headers(json_response(200, {}), _cookie(request, "", 0))

    def api(self, read: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                partner = await self._partner(request)
                return _with_headers(json_response(200, await self.reads[read](partner, request)))
            except ApiError as error:
                return _with_headers(error_response(error))

        return handle
