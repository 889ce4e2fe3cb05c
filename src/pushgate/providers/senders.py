"""One sender per provider credential: `await send(token, payload) -> Verdict`.

Each sender owns its connections (a `CurlClient` per host: one connection pool per credential
and host) and, for FCM and HMS, its access-token source, and closes them in `aclose()`. It
never raises for a provider or network problem: connection errors and timeouts become
`Verdict(kind="retry")`, requests the provider would refuse and that are caught locally become
the verdict the provider would have given (with `status` 0).

Payloads are the bodies built by `pushgate.payloads.build` (without the device token):
the APNs JSON payload; the FCM body `{"message": ..., "validate_only": false}`; the HMS
body `{"validate_only": false, "message": ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from pushgate.providers import apns, fcm, hms
from pushgate.providers.apns_certificate import ApnsIdentity, client_context, load_p12
from pushgate.providers.curl_client import (
    DEFAULT_HTTP1_CONNECTIONS,
    CurlClient,
    RequestError,
    Response,
)
from pushgate.providers.errors import InvalidRequest
from pushgate.providers.oauth import (
    FcmTokenSource,
    HmsTokenSource,
    TokenFetchError,
    TokenSource,
    token_http_client,
)
from pushgate.providers.tls import CurlTls, copy_trust
from pushgate.providers.verdict import Verdict

DEFAULT_TIMEOUT_S = 10.0
# FCM and HMS: a device without a token can never be reached (no request is made).
EMPTY_TOKEN = Verdict(
    kind="dead_token", reason="InvalidRegistration", detail="empty token (checked locally)"
)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Provider base URLs (scheme, host, port): the real hosts unless overridden."""

    apns_url: str = apns.APNS_PRODUCTION
    apns_sandbox_url: str = apns.APNS_SANDBOX
    fcm_url: str = fcm.FCM_URL
    hms_url: str = hms.HMS_URL
    hms_token_url: str = hms.HMS_TOKEN_URL


def token_verify(ssl_context: ssl.SSLContext | None) -> ssl.SSLContext:
    """The token endpoint's TLS trust: the same CAs, in a context of its own (httpx
    rewrites the ALPN of the context it is given, which must not reach a shared one); without
    a context, httpx's default trust (certifi), one context for all token clients."""
    return copy_trust(ssl_context) if ssl_context is not None else _default_token_trust()


@functools.cache
def _default_token_trust() -> ssl.SSLContext:
    # Made once per process: making one reads the CA bundle, 30 ms of the event loop, which
    # every FCM and HMS sender built would otherwise pay. httpx sets the same ALPN on it for
    # each token client (HTTP/1.1).
    return httpx.create_ssl_context()


# TLS alerts a server sends about the client's certificate: APNs refuses an unknown or
# revoked push certificate during the handshake (providers.md), which is BadCertificate.
# OpenSSL's texts: "sslv3 alert bad certificate", "tlsv13 alert certificate required"...
_CERTIFICATE_ALERT = re.compile(
    r"alert[ _](bad[ _]certificate|certificate[ _]unknown|unknown[ _]ca|certificate[ _]expired"
    r"|certificate[ _]revoked|certificate[ _]required|unsupported[ _]certificate)",
    re.IGNORECASE,
)


def _transport_verdict(error: RequestError) -> Verdict:
    if _CERTIFICATE_ALERT.search(str(error)):
        return Verdict(
            kind="credential",
            reason="BadCertificate",
            detail=f"the server refused the client certificate: {error}",
        )
    return Verdict(
        kind="retry" if error.retryable else "rejected",
        reason=type(error).__name__,
        detail=str(error),
    )


def _token_verdict(error: TokenFetchError) -> Verdict:
    if error.permanent:
        return Verdict(
            kind="credential", reason="AccessTokenRefused", status=error.status, detail=str(error)
        )
    return Verdict(
        kind="retry", reason="AccessTokenUnavailable", status=error.status, detail=str(error)
    )


def _answer_verdict(
    answer: asyncio.Future[Response], classify: Callable[[Response], Verdict]
) -> Verdict:
    """A request's verdict, from its finished future: `classify`'s of the answer, or the
    transport's when none came."""
    try:
        response = answer.result()
    except RequestError as error:
        return _transport_verdict(error)
    return classify(response)


def _apns_verdict(response: Response) -> Verdict:
    return apns.classify(response.status, response.headers, response.body)


async def _verdict_when_answered(started: asyncio.Future[Response] | Verdict) -> Verdict:
    if isinstance(started, Verdict):
        return started
    with contextlib.suppress(RequestError):
        await started
    return _answer_verdict(started, _apns_verdict)


def decided(verdict: Verdict) -> asyncio.Future[Verdict]:
    """A verdict reached without a request, as the future `start` returns."""
    future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
    future.set_result(verdict)
    return future


class _PendingVerdict(asyncio.Future[Verdict]):
    """A push's verdict, made of steps (its request, then, if it needs one, a task for the
    second chances): cancelling it cancels the step under way, so that the work stops, not
    only the wait for it."""

    step: asyncio.Future[Any] | None = None

    @classmethod
    def after(
        cls,
        answer: asyncio.Future[Response],
        then: Callable[[_PendingVerdict, asyncio.Future[Response]], None],
    ) -> _PendingVerdict:
        """The verdict to come of `answer`: `then(verdict, answer)` decides it once the answer
        is in, unless the verdict was cancelled first."""
        # The loop given, not looked up: Python 3.11's look-up is a getpid() call.
        verdict = cls(loop=answer.get_loop())
        verdict.step = answer
        answer.add_done_callback(functools.partial(verdict._answered, then))
        return verdict

    def _answered(
        self,
        then: Callable[[_PendingVerdict, asyncio.Future[Response]], None],
        answer: asyncio.Future[Response],
    ) -> None:
        if answer.cancelled():
            self.cancel()
        if not self.done():
            then(self, answer)

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False
        if self.step is not None:
            self.step.cancel(msg)
        return True

    def follow(self, step: asyncio.Future[Verdict]) -> None:
        """Take `step`'s outcome as this one's."""
        self.step = step
        step.add_done_callback(self._take)

    def _take(self, step: asyncio.Future[Verdict]) -> None:
        if self.done():
            return
        if step.cancelled():
            self.cancel()
        elif (error := step.exception()) is not None:
            self.set_exception(error)
        else:
            self.set_result(step.result())


def _decode_object(payload: bytes) -> dict[str, Any] | None:
    try:
        data: Any = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None


def _with_ttl(message: Mapping[str, Any], ttl_text: str | None) -> dict[str, Any]:
    result = dict(message)
    if ttl_text is not None:
        android = dict(result.get("android") or {})
        android["ttl"] = ttl_text
        result["android"] = android
    return result


def _ttl_text(ttl: int) -> str:
    return f"{max(0, int(ttl))}s"


# Stand-ins for the per-push values while a payload's body is built once (`_BodyTemplates`);
# NUL characters keep them from being anything a payload holds.
_TOKEN_SLOT = "\x00pushgate-token\x00"
_TTL_SLOT = "\x00pushgate-ttl\x00"
_TOKEN_SLOT_JSON = msgspec.json.encode(_TOKEN_SLOT)
_TTL_SLOT_JSON = msgspec.json.encode(_TTL_SLOT)
_TEMPLATES_KEPT = 1024  # payloads whose bodies are kept; all are forgotten when full
_HEADER_SETS_KEPT = 256  # an APNs sender's header tuples; all are forgotten when full


_TOKEN, _TTL = 0, 1  # the slots of a template's pieces


@dataclass(frozen=True, slots=True)
class _BodyTemplate:
    """A request body with the token's and the ttl's JSON strings left out: `pieces` are
    literal bytes and, where a value goes, `_TOKEN` or `_TTL`."""

    path: str
    pieces: tuple[bytes | int, ...]

    def fill(self, token: str, ttl_text: str | None) -> bytes:
        values = (msgspec.json.encode(token), msgspec.json.encode(ttl_text))
        return b"".join(values[p] if isinstance(p, int) else p for p in self.pieces)


BodyBuilder = Callable[[bytes, str, str | None], tuple[str, bytes] | Verdict]


class _BodyTemplates:
    """Request bodies built once per payload (a campaign's pushes share theirs) rather than
    decoded and encoded again for each token: `build(payload, token, ttl_text)` is run with
    stand-ins, and the body it makes is cut where they are. A payload whose body cannot be cut
    so (a stand-in missing or twice) is built in full every time; a payload refused is refused
    without building again."""

    def __init__(self, build: BodyBuilder) -> None:
        self.build = build
        self._kept: dict[tuple[bytes, bool], _BodyTemplate | Verdict | None] = {}

    def body(self, payload: bytes, token: str, ttl_text: str | None) -> tuple[str, bytes] | Verdict:
        key = (payload, ttl_text is None)
        if key in self._kept:
            kept = self._kept[key]
        else:
            kept = self._kept[key] = self._template(payload, ttl_text is not None)
            if len(self._kept) > _TEMPLATES_KEPT:
                self._kept = {key: kept}
        if isinstance(kept, _BodyTemplate):
            return kept.path, kept.fill(token, ttl_text)
        if isinstance(kept, Verdict):
            return kept
        return self.build(payload, token, ttl_text)

    def _template(self, payload: bytes, with_ttl: bool) -> _BodyTemplate | Verdict | None:
        built = self.build(payload, _TOKEN_SLOT, _TTL_SLOT if with_ttl else None)
        if isinstance(built, Verdict):
            return built
        path, data = built
        slots = {_TOKEN: _TOKEN_SLOT_JSON}
        if with_ttl:
            slots[_TTL] = _TTL_SLOT_JSON
        if any(data.count(stand_in) != 1 for stand_in in slots.values()):
            return None
        pieces: list[bytes | int] = [data]
        for slot, stand_in in slots.items():
            cut: list[bytes | int] = []
            for piece in pieces:
                if isinstance(piece, bytes) and stand_in in piece:
                    before, _, after = piece.partition(stand_in)
                    cut += [before, slot, after]
                else:
                    cut.append(piece)
            pieces = cut
        return _BodyTemplate(path, tuple(pieces))


class ApnsSender:
    """APNs pushes for one credential (token auth with `signer`; with certificate auth
    pass `signer=None` and the `.p12`'s `identity`, presented as the TLS client certificate).

    `ssl_context` says what to trust (None: the system store); it is read, never changed.

    The device's environment picks the host: `send(..., sandbox=True)` uses the sandbox.
    """

    def __init__(
        self,
        signer: apns.ApnsTokenSigner | None,
        topic: str,
        *,
        production_url: str = apns.APNS_PRODUCTION,
        sandbox_url: str = apns.APNS_SANDBOX,
        ssl_context: ssl.SSLContext | None = None,
        identity: ApnsIdentity | None = None,
        max_connections: int = 1,
        timeout: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.topic = topic
        self.urls = {False: production_url, True: sandbox_url}
        self.ssl_context = ssl_context
        self.identity = identity
        self.max_connections = max_connections
        self.timeout = timeout
        self.clock = clock
        # The headers of each campaign's pushes, built once: the same tuple each time, which
        # the client turns into header lines once (see `CurlClient._lines`).
        self._headers: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}
        self._clients: dict[bool, CurlClient] = {}

    @classmethod
    def from_credential(
        cls,
        credential: Mapping[str, Any],
        *,
        endpoints: Endpoints | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **options: Any,
    ) -> ApnsSender:
        """From a stored APNs credential: token auth (`{"key_id", "team_id", "bundle_id",
        "private_key"}`) or certificate auth (`{"type": "apns_certificate", "p12", "password",
        "bundle_id"}`: the .p12's identity is the TLS client certificate of this sender's own
        connections, and no provider token is sent).

        Raises `CredentialError` for an unusable key or .p12, `KeyError` for a missing field.
        """
        endpoints = endpoints or Endpoints()
        signer: apns.ApnsTokenSigner | None = None
        identity: ApnsIdentity | None = None
        if credential.get("type") == "apns_certificate":
            identity = load_p12(str(credential["p12"]), str(credential.get("password") or ""))
            client_context(identity, None)  # CredentialError unless OpenSSL takes the key
        else:
            signer = apns.ApnsTokenSigner(
                credential["private_key"], credential["key_id"], credential["team_id"]
            )
        return cls(
            signer,
            credential["bundle_id"],
            production_url=endpoints.apns_url,
            sandbox_url=endpoints.apns_sandbox_url,
            ssl_context=ssl_context,
            identity=identity,
            **options,
        )

    def _client(self, sandbox: bool) -> CurlClient:
        client = self._clients.get(sandbox)
        if client is None:
            identity = self.identity.pem() if self.identity is not None else None
            tls = CurlTls.from_context(self.ssl_context, client_pem=identity)
            client = CurlClient(self.urls[sandbox], max_connections=self.max_connections, tls=tls)
            self._clients[sandbox] = client
        return client

    async def send(
        self,
        token: str,
        payload: bytes,
        *,
        sandbox: bool = False,
        push_type: str = "alert",
        priority: int = 10,
        expiration: int = 0,
        collapse_id: str | None = None,
        apns_id: str | None = None,
    ) -> Verdict:
        """One push; the verdict after the two second chances providers.md asks for.

        403 ExpiredProviderToken: a new provider token (if the 20-minute rule allows one) and
        one more try; a second refusal stands and the credential is invalid. 400
        BadDeviceToken: the token may belong to the other environment, so one try there; if
        it is accepted the verdict names that environment (the device is corrected), if it
        is refused there too the token is dead.
        """
        return await self.start(
            token,
            payload,
            sandbox=sandbox,
            push_type=push_type,
            priority=priority,
            expiration=expiration,
            collapse_id=collapse_id,
            apns_id=apns_id,
        )

    def start(
        self,
        token: str,
        payload: bytes,
        *,
        sandbox: bool = False,
        push_type: str = "alert",
        priority: int = 10,
        expiration: int = 0,
        collapse_id: str | None = None,
        apns_id: str | None = None,
    ) -> asyncio.Future[Verdict]:
        """`send` without a coroutine: the future of its verdict, the request already handed
        to the connection (`CurlClient.start`). A coroutine and a task per push were a
        sixth of a delivery worker's CPU; only a push that needs a second chance gets a task.
        Cancelling the future stops the request under way. Call it from the event loop."""
        request = functools.partial(
            self._start_once,
            token,
            payload,
            push_type=push_type,
            priority=priority,
            expiration=expiration,
            collapse_id=collapse_id,
            apns_id=apns_id,
        )
        started = request(sandbox)
        if isinstance(started, Verdict):
            return decided(started)
        return _PendingVerdict.after(
            started, functools.partial(self._first_answer, request, sandbox)
        )

    def _first_answer(
        self,
        request: Callable[[bool], asyncio.Future[Response] | Verdict],
        sandbox: bool,
        verdict: _PendingVerdict,
        answer: asyncio.Future[Response],
    ) -> None:
        first = _answer_verdict(answer, _apns_verdict)
        if (first.refresh_auth and self.signer is not None) or (
            first.status == 400 and first.reason == apns.BAD_DEVICE_TOKEN
        ):
            verdict.follow(
                answer.get_loop().create_task(self._second_chances(first, request, sandbox))
            )
        else:
            verdict.set_result(first)

    async def _second_chances(
        self,
        verdict: Verdict,
        request: Callable[[bool], asyncio.Future[Response] | Verdict],
        sandbox: bool,
    ) -> Verdict:
        if verdict.refresh_auth and self.signer is not None:
            now = self.clock()
            if not self.signer.refresh(now):
                wait = apns.TOKEN_MIN_AGE_S - (now - (self.signer.issued_at or now))
                return dataclasses.replace(
                    verdict,
                    kind="retry",
                    retry_after=max(1.0, wait),
                    detail=f"{verdict.detail} [provider token kept: issued under 20 minutes"
                    " ago, check the clock]",
                )
            verdict = await _verdict_when_answered(request(sandbox))
        if verdict.status == 400 and verdict.reason == apns.BAD_DEVICE_TOKEN:
            other = await _verdict_when_answered(request(not sandbox))
            if other.ok:
                return dataclasses.replace(
                    other, environment="production" if sandbox else "sandbox"
                )
            if other.status == 400 and other.reason == apns.BAD_DEVICE_TOKEN:
                return dataclasses.replace(
                    verdict, detail=f"{verdict.detail} [refused on both environments]"
                )
            return other
        return verdict

    def _start_once(
        self,
        token: str,
        payload: bytes,
        sandbox: bool,
        *,
        push_type: str,
        priority: int,
        expiration: int,
        collapse_id: str | None,
        apns_id: str | None,
    ) -> asyncio.Future[Response] | Verdict:
        """The request's answer to come, or the verdict of a request refused locally."""
        bearer = self.signer.token(self.clock()) if self.signer is not None else None
        key = (push_type, priority, expiration, collapse_id, apns_id, bearer)
        try:
            headers = self._headers.get(key)
            if headers is None:
                headers = apns.build_headers(
                    topic=self.topic,
                    push_type=push_type,
                    priority=priority,
                    expiration=expiration,
                    apns_id=apns_id,
                    bearer=bearer,
                    collapse_id=collapse_id,
                )
                if len(self._headers) >= _HEADER_SETS_KEPT:
                    self._headers.clear()
                self._headers[key] = headers
            apns.check_push(token, payload)
        except InvalidRequest as error:
            return apns.local_verdict(error)
        path = apns.device_path(token)
        return self._client(sandbox).start("POST", path, headers, payload, timeout=self.timeout)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class _OAuthSender:
    """Sends with a bearer access token; renews it once when the provider refuses it."""

    def __init__(
        self,
        url: str,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        timeout: float,
        tokens: TokenSource,
        own_http: httpx.AsyncClient | None,
        http1_connections: int | None = None,
    ) -> None:
        self.timeout = timeout
        self.tokens = tokens
        self._client = CurlClient(
            url, ssl_context, max_connections, http1_connections=http1_connections
        )
        self._own_http = own_http
        self._headers: tuple[tuple[str, str], ...] = (("authorization", ""),)

    def _start_post(
        self, path: str, body: bytes, classify: Callable[[Response], Verdict], attempt: int = 0
    ) -> asyncio.Future[Verdict]:
        """The verdict's future, the request handed to the connection at once while the access
        token is cached (`ApnsSender.start` says why); a task fetches one first otherwise. A
        refused token is renewed once and the request sent again."""
        access_token = self.tokens.current()
        if access_token is None:
            return asyncio.get_running_loop().create_task(
                self._post_with_new_token(path, body, classify, attempt)
            )
        return self._post_with(access_token, path, body, classify, attempt)

    async def _post_with_new_token(
        self, path: str, body: bytes, classify: Callable[[Response], Verdict], attempt: int
    ) -> Verdict:
        try:
            access_token = await self.tokens.get()
        except TokenFetchError as error:
            return _token_verdict(error)
        return await self._post_with(access_token, path, body, classify, attempt)

    def _post_with(
        self,
        access_token: str,
        path: str,
        body: bytes,
        classify: Callable[[Response], Verdict],
        attempt: int,
    ) -> asyncio.Future[Verdict]:
        headers = self._headers
        if headers[0][1] != f"Bearer {access_token}":
            # A new tuple only when the token changes: the client formats it once.
            headers = self._headers = (
                ("authorization", f"Bearer {access_token}"),
                ("content-type", "application/json; charset=UTF-8"),
            )
        answer = self._client.start("POST", path, headers, body, timeout=self.timeout)
        return _PendingVerdict.after(
            answer,
            functools.partial(self._answered, access_token, path, body, classify, attempt),
        )

    def _answered(
        self,
        access_token: str,
        path: str,
        body: bytes,
        classify: Callable[[Response], Verdict],
        attempt: int,
        verdict: _PendingVerdict,
        answer: asyncio.Future[Response],
    ) -> None:
        result = _answer_verdict(answer, classify)
        if result.refresh_auth and attempt == 0:
            self.tokens.invalidate(access_token)  # and try once more with a new one
            verdict.follow(self._start_post(path, body, classify, attempt + 1))
        else:
            verdict.set_result(result)

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._own_http is not None:
            await self._own_http.aclose()


class FcmSender(_OAuthSender):
    """FCM v1 sends for one service account.

    `ssl_context` (None: the system trust store) is used for FCM and, copied, for the
    service account's `token_uri`; `token_source` replaces the built-in token fetcher.
    """

    def __init__(
        self,
        account: fcm.ServiceAccount,
        *,
        url: str = fcm.FCM_URL,
        ssl_context: ssl.SSLContext | None = None,
        token_source: TokenSource | None = None,
        max_connections: int = 1,
        timeout: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        own_http = None
        if token_source is None:
            own_http = token_http_client(token_verify(ssl_context), timeout)
            token_source = FcmTokenSource(account, own_http, timeout=timeout)
        super().__init__(url, ssl_context, max_connections, timeout, token_source, own_http)
        self.account = account
        self.clock = clock
        self._bodies = _BodyTemplates(self._build)
        # QUOTA_EXCEEDED is the project's quota: until this time no message of the
        # credential is sent (each is put back to wait), not only the one refused.
        self.quota_paused_until = 0.0

    @classmethod
    def from_credential(
        cls,
        service_account: bytes | str | Mapping[str, Any],
        *,
        endpoints: Endpoints | None = None,
        checked: bool = False,
        **options: Any,
    ) -> FcmSender:
        """From the service-account JSON as uploaded. Raises `CredentialError`. `checked`:
        the credential was validated when uploaded, so its RSA key's own consistency check
        (40 ms of the event loop) is skipped."""
        endpoints = endpoints or Endpoints()
        return cls(
            fcm.ServiceAccount.parse(service_account, checked=checked),
            url=endpoints.fcm_url,
            **options,
        )

    def _build(
        self, payload: bytes, token: str, ttl_text: str | None
    ) -> tuple[str, bytes] | Verdict:
        body = _decode_object(payload)
        if body is None:
            return Verdict(
                kind="rejected", reason="InvalidParameters", detail="payload is not a JSON object"
            )
        envelope = "message" in body
        message = body["message"] if envelope else body
        if not isinstance(message, dict):
            return Verdict(
                kind="rejected", reason="InvalidParameters", detail="message is not an object"
            )
        try:
            return fcm.build_send(
                self.account.project_id,
                _with_ttl(message, ttl_text),
                token,
                validate_only=bool(body.get("validate_only", False)) if envelope else False,
            )
        except ValueError as error:
            return Verdict(kind="rejected", reason="InvalidParameters", detail=str(error))

    async def send(self, token: str, payload: bytes, *, ttl: int | None = None) -> Verdict:
        """`payload`: `{"message": {...}, "validate_only": false}` (or the bare message);
        `ttl` (seconds) replaces `message.android.ttl`."""
        return await self.start(token, payload, ttl=ttl)

    def start(
        self, token: str, payload: bytes, *, ttl: int | None = None
    ) -> asyncio.Future[Verdict]:
        """`send` without a coroutine: the future of its verdict (see `ApnsSender.start`)."""
        if not token:
            return decided(EMPTY_TOKEN)
        paused = self.quota_paused_until - self.clock()
        if paused > 0:
            return decided(
                Verdict(
                    kind="retry",
                    reason=fcm.QUOTA_EXCEEDED,
                    detail="not sent: the credential waits after QUOTA_EXCEEDED",
                    retry_after=paused,
                )
            )
        built = self._bodies.body(payload, token, None if ttl is None else _ttl_text(ttl))
        if isinstance(built, Verdict):
            return decided(built)
        path, data = built
        return self._start_post(path, data, self._classify)

    def _classify(self, response: Response) -> Verdict:
        verdict = fcm.classify(response.status, response.headers, response.body)
        if verdict.reason == fcm.QUOTA_EXCEEDED and verdict.retry_after is not None:
            self.quota_paused_until = max(
                self.quota_paused_until, self.clock() + verdict.retry_after
            )
        return verdict


class HmsSender(_OAuthSender):
    """HMS Push Kit sends for one app.

    `ssl_context` (None: the system trust store) is used for the push host and, copied,
    for `token_url`; `token_source` replaces the built-in token fetcher. Over https the push
    host is spoken to in HTTP/2 only if it selects `h2` by ALPN, else in HTTP/1.1 (Huawei's
    own server demos use HTTP/1.1); `http://` means HTTP/2 with prior knowledge.
    """

    def __init__(
        self,
        credential: hms.HmsCredential,
        *,
        url: str = hms.HMS_URL,
        token_url: str = hms.HMS_TOKEN_URL,
        ssl_context: ssl.SSLContext | None = None,
        token_source: TokenSource | None = None,
        max_connections: int = 1,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        own_http = None
        if token_source is None:
            own_http = token_http_client(token_verify(ssl_context), timeout)
            token_source = HmsTokenSource(
                credential.client_id,
                credential.client_secret,
                own_http,
                token_url=token_url,
                timeout=timeout,
            )
        super().__init__(
            url,
            ssl_context,
            max_connections,
            timeout,
            token_source,
            own_http,
            http1_connections=DEFAULT_HTTP1_CONNECTIONS,
        )
        self.credential = credential
        self._bodies = _BodyTemplates(self._build)

    @property
    def protocol(self) -> str | None:
        """`h2` or `http/1.1` once the push host has answered (None before)."""
        return self._client.protocol

    @classmethod
    def from_credential(
        cls,
        credential: Mapping[str, Any],
        *,
        endpoints: Endpoints | None = None,
        **options: Any,
    ) -> HmsSender:
        """From the uploaded `{"app_id", "client_id", "client_secret"}` (with an optional
        default `category` and `importance`). Raises `CredentialError`."""
        endpoints = endpoints or Endpoints()
        return cls(
            hms.HmsCredential.parse(credential),
            url=endpoints.hms_url,
            token_url=endpoints.hms_token_url,
            **options,
        )

    def _build(
        self, payload: bytes, token: str, ttl_text: str | None
    ) -> tuple[str, bytes] | Verdict:
        body = _decode_object(payload)
        message = body.get("message") if body is not None else None
        if body is None or not isinstance(message, dict):
            return Verdict(
                kind="rejected", reason="80100003", detail="payload has no message object"
            )
        message = hms.prepare_message(
            message,
            ttl_text=ttl_text,
            category=self.credential.category,
            importance=self.credential.importance,
        )
        try:
            return hms.build_send(self.credential.app_id, {**body, "message": message}, token)
        except ValueError as error:
            return Verdict(kind="rejected", reason="80100001", detail=str(error))

    async def send(self, token: str, payload: bytes, *, ttl: int | None = None) -> Verdict:
        """`payload`: `{"validate_only": false, "message": {...}}`; `ttl` (seconds)
        replaces `message.android.ttl`, cut to Huawei's 15 days like any longer ttl; the
        credential's default category and importance go where the message has none."""
        return await self.start(token, payload, ttl=ttl)

    def start(
        self, token: str, payload: bytes, *, ttl: int | None = None
    ) -> asyncio.Future[Verdict]:
        """`send` without a coroutine: the future of its verdict (see `ApnsSender.start`)."""
        if not token:
            return decided(EMPTY_TOKEN)
        built = self._bodies.body(payload, token, None if ttl is None else hms.ttl_field(ttl))
        if isinstance(built, Verdict):
            return decided(built)
        path, data = built
        return self._start_post(path, data, functools.partial(_hms_verdict, token=token))


def _hms_verdict(response: Response, *, token: str) -> Verdict:
    return hms.classify(response.status, response.headers, response.body, token=token)
