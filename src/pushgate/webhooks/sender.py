"""Sends waiting webhook events: lease a batch from the outbox, POST each, record the result.

At least once: an event leaves the outbox only after a 2xx within `ANSWER_SECONDS`; anything
else is tried again on the schedule (events.RETRY_DELAYS) and then given up; 410 Gone disables
the webhook. Each connection goes to an address checked at that moment (addresses.py), with the
URL's host name kept for TLS and the Host header, and redirects are not followed, so a name
that comes to resolve inward, or a 3xx, cannot take a request into the service's own network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import httpx

from pushgate.webhooks import addresses, events, signing

log = logging.getLogger("pushgate.webhooks")

BATCH = 64  # events leased at once
AT_ONCE = 16  # requests in flight
LEASE_SECONDS = 60.0  # longer than a request may take, so a live sender keeps its events
IDLE_SECONDS = 1.0  # between looks at an empty outbox
# While pushes are being delivered, the sender takes at most this share of the time: events
# wait a little longer, pushes do not (issue 17: delivery within 10% with a webhook on). They
# are, when this process's worker holds jobs (`busy`), or when the events just leased were
# written within the last RECENT_SECONDS (deliveries in any process write them as they settle).
BACKGROUND_SHARE = 0.1
RECENT_SECONDS = 2.0
GONE = 410
USER_AGENT = "pushgate-webhooks"


class PendingEvent(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def partner_id(self) -> int: ...
    @property
    def message_id(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def url(self) -> str: ...
    @property
    def secret(self) -> str: ...
    @property
    def created_at(self) -> float: ...


P = TypeVar("P", bound=PendingEvent)


class Outbox(Protocol[P]):
    """What the sender needs of the store (store/webhooks.py: WebhookStore)."""

    async def claim(self, owner: str, limit: int, lease: float) -> Sequence[P]: ...

    async def delivered(self, event_ids: Sequence[int], owner: str) -> None: ...

    async def failed(self, pending: P, owner: str, error: str) -> bool: ...

    async def disable(self, partner_id: int, error: str) -> None: ...


class WebhookSender(Generic[P]):
    def __init__(
        self,
        outbox: Outbox[P],
        networks: Sequence[addresses.Network] = (),
        *,
        busy: Callable[[], bool] = lambda: False,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.outbox = outbox
        self.networks = tuple(networks)
        self.busy = busy  # whether pushes are being delivered (then the sender paces itself)
        self.idle_seconds = idle_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:webhooks"
        self.counters = {"delivered": 0, "retried": 0, "given_up": 0, "disabled": 0}
        self._client: httpx.AsyncClient | None = None
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Events were queued: look now rather than after the idle wait."""
        self._wakeup.set()

    async def run(self) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=events.ANSWER_SECONDS,
            headers={"user-agent": USER_AGENT},
        )
        try:
            while True:
                self._wakeup.clear()
                try:
                    leased = await self.outbox.claim(self.owner, BATCH, LEASE_SECONDS)
                except Exception:
                    log.exception("leasing webhook events failed; trying again")
                    leased = []
                if leased:
                    started = time.monotonic()
                    await self._send_all(leased)
                    fresh = max(p.created_at for p in leased) > time.time() - RECENT_SECONDS
                    if fresh or self.busy():
                        took = time.monotonic() - started
                        await asyncio.sleep(took * (1 / BACKGROUND_SHARE - 1))
                    if len(leased) == BATCH:
                        continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.idle_seconds):
                        await self._wakeup.wait()
        finally:
            await self._client.aclose()
            self._client = None

    async def _send_all(self, leased: Sequence[P]) -> None:
        slots = asyncio.Semaphore(AT_ONCE)

        async def one(pending: P) -> tuple[P, int | None, str]:
            async with slots:
                return (pending, *await self.post(pending))

        results = await asyncio.gather(*(one(p) for p in leased))
        done = [p.id for p, status, _ in results if status is not None and 200 <= status < 300]
        if done:
            await self.outbox.delivered(done, self.owner)
            self.counters["delivered"] += len(done)
        gone: set[int] = set()
        for pending, status, error in results:
            if status is not None and 200 <= status < 300:
                continue
            if status == GONE:
                if pending.partner_id not in gone:
                    gone.add(pending.partner_id)
                    await self.outbox.disable(pending.partner_id, "410 Gone: webhook disabled")
                    self.counters["disabled"] += 1
                continue
            if pending.partner_id in gone:
                continue
            again = await self.outbox.failed(pending, self.owner, error)
            self.counters["retried" if again else "given_up"] += 1

    async def post(self, pending: PendingEvent) -> tuple[int | None, str]:
        """One attempt: the answer's status (None when there was none) and what went wrong."""
        assert self._client is not None
        try:
            parts, found = await addresses.allowed_url(pending.url, self.networks)
        except addresses.RefusedUrl as refused:
            return None, str(refused)
        host = parts.hostname or ""
        address = found[0]
        literal = f"[{address}]" if ":" in address else address
        port = f":{parts.port}" if parts.port else ""
        target = f"{parts.scheme}://{literal}{port}{parts.path or '/'}"
        if parts.query:
            target += f"?{parts.query}"
        stamp = int(time.time())
        headers = signing.signed_headers(pending.secret, pending.message_id, stamp, pending.body)
        headers.append(("host", parts.netloc.rsplit("@", 1)[-1]))
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            answer = await self._client.post(
                target, content=pending.body, headers=headers, extensions=extensions
            )
        except httpx.TimeoutException:
            return None, f"no answer within {events.ANSWER_SECONDS:g} s"
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}"
        if 200 <= answer.status_code < 300:
            return answer.status_code, ""
        return answer.status_code, f"HTTP {answer.status_code}"
