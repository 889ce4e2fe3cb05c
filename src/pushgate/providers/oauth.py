"""OAuth2 access tokens for FCM and HMS, fetched over HTTP (httpx) and cached.

One `TokenSource` per credential: it keeps the current token until shortly before it
expires (`AccessTokenCache`), and a lock makes concurrent sends share one fetch.

- `FcmTokenSource`: the service account's JWT bearer grant, POSTed to its `token_uri`.
- `HmsTokenSource`: the client-credentials grant, POSTed to the HMS token URL.

A refused credential (HTTP 400/401/403 from the token endpoint) raises `TokenFetchError`
with `permanent=True`; an unreachable or failing endpoint (connection error, timeout,
429, 5xx, an unreadable answer) raises it with `permanent=False`. Google also answers
400 `invalid_grant` for a clock skew or a key not yet propagated, so that answer counts
as permanent only once it has been given for `INVALID_GRANT_PATIENCE_S` (providers.md:
at least 5 minutes) without a token in between.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from pushgate.providers import fcm, hms
from pushgate.providers.access_token import (
    SAFETY_MARGIN_S,
    AccessTokenCache,
    TokenResponseError,
    parse_token_response,
)

INVALID_GRANT = "invalid_grant"
INVALID_GRANT_PATIENCE_S = 5 * 60.0
# A failed fetch is the answer for this long: the sends waiting on the lock (hundreds at
# a time) must not each ask a refusing or failing token endpoint again.
FAILURE_HOLD_S = 2.0
_FORM = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}


class TokenFetchError(Exception):
    def __init__(self, message: str, *, permanent: bool, status: int = 0) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


def token_http_client(
    verify: ssl.SSLContext | bool = True, timeout: float = 10.0
) -> httpx.AsyncClient:
    """An httpx client for token endpoints (`verify`: an SSLContext with a custom CA)."""
    return httpx.AsyncClient(verify=verify, timeout=timeout, follow_redirects=False)


def _error_body(response: httpx.Response) -> dict[str, Any] | None:
    """The token endpoint's JSON error object, if it sent one."""
    try:
        data: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None


def _error_text(response: httpx.Response, body: dict[str, Any] | None) -> str:
    if body is not None:
        parts = [str(body[k]) for k in ("error", "sub_error", "error_description") if k in body]
        if parts:
            return " ".join(parts)
    return response.text[:200]


class TokenSource:
    """Fetches and caches one credential's access token."""

    def __init__(
        self,
        token_url: str,
        http: httpx.AsyncClient,
        *,
        margin: float = SAFETY_MARGIN_S,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self.token_url = token_url
        self.http = http
        self.timeout = timeout
        self.clock = clock
        self.fetches = 0  # token requests made (successful or not)
        self._cache = AccessTokenCache(margin)
        self._lock = asyncio.Lock()
        self._invalid_grant_since: float | None = None
        self._failure: tuple[float, TokenFetchError] | None = None

    def _request_body(self, now: float) -> bytes:
        raise NotImplementedError

    def current(self) -> str | None:
        """The cached access token while it is usable, without waiting; None otherwise."""
        return self._cache.get(self.clock())

    async def get(self) -> str:
        """A usable access token: the cached one, or a new one (one fetch for all waiters)."""
        token = self.current()
        if token is not None:
            return token
        async with self._lock:
            now = self.clock()
            token = self._cache.get(now)
            if token is not None:
                return token
            if self._failure is not None and now - self._failure[0] < FAILURE_HOLD_S:
                raise self._failure[1]
            try:
                return await self._fetch()
            except TokenFetchError as error:
                self._failure = (now, error)
                raise

    def invalidate(self, token: str | None = None) -> None:
        """Forget `token` (after the provider refused it) so the next `get` fetches anew."""
        self._cache.invalidate(token)
        self._failure = None

    async def _fetch(self) -> str:
        started = self.clock()
        self.fetches += 1
        try:
            response = await self.http.post(
                self.token_url,
                content=self._request_body(started),
                headers=_FORM,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise TokenFetchError(
                f"token endpoint {self.token_url} failed: {exc!r}", permanent=False
            ) from exc
        status = response.status_code
        if status != 200:
            error = _error_body(response)
            text = _error_text(response, error)
            if status not in (400, 401, 403):
                raise TokenFetchError(
                    f"token endpoint answered {status}: {text}", permanent=False, status=status
                )
            permanent = True
            if status == 400 and error is not None and error.get("error") == INVALID_GRANT:
                if self._invalid_grant_since is None:
                    self._invalid_grant_since = started
                permanent = started - self._invalid_grant_since >= INVALID_GRANT_PATIENCE_S
            raise TokenFetchError(
                f"token endpoint refused the credential ({status}): {text}",
                permanent=permanent,
                status=status,
            )
        try:
            token = parse_token_response(response.content)
        except TokenResponseError as exc:
            raise TokenFetchError(str(exc), permanent=False, status=status) from exc
        self._invalid_grant_since = None
        return self._cache.store(token, started)


class FcmTokenSource(TokenSource):
    def __init__(
        self, account: fcm.ServiceAccount, http: httpx.AsyncClient, **options: Any
    ) -> None:
        super().__init__(account.token_uri, http, **options)
        self.account = account

    def _request_body(self, now: float) -> bytes:
        return fcm.token_request_body(self.account, now)


class HmsTokenSource(TokenSource):
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient,
        *,
        token_url: str = hms.HMS_TOKEN_URL,
        **options: Any,
    ) -> None:
        super().__init__(token_url, http, **options)
        self.client_id = client_id
        self._client_secret = client_secret

    def _request_body(self, now: float) -> bytes:
        return hms.token_request_body(self.client_id, self._client_secret)
