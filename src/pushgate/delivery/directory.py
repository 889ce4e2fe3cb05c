"""Which provider client sends a job: one sender per partner and platform, built from
the partner's credential and rebuilt when the credential changes."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pushgate.delivery.worker import Sender
from pushgate.jobs import EMULATOR, Credential, Job
from pushgate.providers.errors import CredentialError
from pushgate.providers.senders import ApnsSender, Endpoints, FcmSender, HmsSender, decided
from pushgate.providers.verdict import Verdict

SANDBOX_ENVIRONMENTS = frozenset({"sandbox", "development"})
CredentialLoader = Callable[[int, str], Awaitable[Credential | None]]


class _ProviderSender(Protocol):
    async def aclose(self) -> None: ...


class ApnsJobSender:
    def __init__(self, sender: ApnsSender) -> None:
        self.sender = sender

    def start(self, job: Job) -> asyncio.Future[Verdict]:
        return self.sender.start(
            job.token,
            job.payload,
            sandbox=job.environment.lower() in SANDBOX_ENVIRONMENTS,
            push_type=job.push_type,
            priority=job.priority,
            expiration=int(job.expires_at),
        )

    async def aclose(self) -> None:
        await self.sender.aclose()


class AndroidJobSender:
    """FCM and HMS: the remaining lifetime becomes the message's Android ttl."""

    def __init__(self, sender: FcmSender | HmsSender) -> None:
        self.sender = sender

    def start(self, job: Job) -> asyncio.Future[Verdict]:
        ttl = max(1, int(job.expires_at - time.time()))
        return self.sender.start(job.token, job.payload, ttl=ttl)

    async def aclose(self) -> None:
        await self.sender.aclose()


class UnusableCredential:
    """A stored credential that no client can be built from: every send is a credential failure."""

    def __init__(self, detail: str) -> None:
        self.detail = detail

    def start(self, job: Job) -> asyncio.Future[Verdict]:
        return decided(Verdict(kind="credential", reason="InvalidCertificate", detail=self.detail))

    async def aclose(self) -> None:
        return None


@dataclass
class _Entry:
    credential: Credential
    sender: ApnsJobSender | AndroidJobSender | UnusableCredential
    checked_at: float


class ProviderDirectory:
    """Senders per (partner, platform). A credential is re-read every `recheck_seconds`;
    a changed one replaces its sender, and one marked invalid stops sending."""

    def __init__(
        self,
        load: CredentialLoader,
        endpoints: Endpoints,
        ssl_context_factory: Callable[[], ssl.SSLContext | None] = lambda: None,
        emulator_token_url: str | None = None,
        recheck_seconds: float = 5.0,
    ) -> None:
        self._load = load
        self._endpoints = endpoints
        self._ssl = ssl_context_factory
        self._emulator_token_url = emulator_token_url
        self._recheck = recheck_seconds
        self._entries: dict[tuple[int, str], _Entry] = {}
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}

    async def sender_for(self, job: Job) -> Sender | None:
        key = (job.partner_id, job.platform)
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry.checked_at < self._recheck:
            return entry.sender if entry.credential.validated else None
        # One look-up and one client per key, however many sends arrive at once:
        # a client per send would mean a provider token (and connection) per send.
        async with self._locks.setdefault(key, asyncio.Lock()):
            return await self._refresh(key)

    async def _refresh(self, key: tuple[int, str]) -> Sender | None:
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now - entry.checked_at < self._recheck:
            return entry.sender if entry.credential.validated else None
        credential = await self._load(*key)
        if entry is not None and (
            credential is None or credential.record != entry.credential.record
        ):
            del self._entries[key]
            await entry.sender.aclose()
            entry = None
        if credential is None:
            return None
        if entry is None:
            entry = _Entry(credential, self._build(credential), now)
            self._entries[key] = entry
        entry.credential = credential
        entry.checked_at = now
        return entry.sender if credential.validated else None

    def _build(
        self, credential: Credential
    ) -> ApnsJobSender | AndroidJobSender | UnusableCredential:
        record: dict[str, Any] = dict(credential.record)
        try:
            if credential.platform == "ios":
                return ApnsJobSender(
                    ApnsSender.from_credential(
                        record, endpoints=self._endpoints, ssl_context=self._ssl()
                    )
                )
            if credential.platform == "android":
                if credential.kind == EMULATOR and self._emulator_token_url:
                    record["token_uri"] = self._emulator_token_url
                return AndroidJobSender(
                    FcmSender.from_credential(
                        record,
                        endpoints=self._endpoints,
                        ssl_context=self._ssl(),
                        checked=credential.validated,
                    )
                )
            if credential.platform == "huawei":
                return AndroidJobSender(
                    HmsSender.from_credential(
                        record, endpoints=self._endpoints, ssl_context=self._ssl()
                    )
                )
        except (CredentialError, KeyError, TypeError, ValueError) as exc:
            return UnusableCredential(f"unusable credential: {exc}")
        return UnusableCredential(f"no sender for platform {credential.platform!r}")

    async def aclose(self) -> None:
        entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            await entry.sender.aclose()
