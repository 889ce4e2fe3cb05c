"""The Targeted Push API end to end: decode, authorise, validate, resolve, queue, answer.

Rules live in `targeting/` and `payloads/` (pure); this module only sequences
them around the store, so the HTTP layer stays a thin adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from pushgate.auth import PartnerCache
from pushgate.limits.rate import RateLimiter
from pushgate.metrics import PushMetrics
from pushgate.payloads.build import MAX_PAYLOAD_BYTES, BuiltPayloads, build_all, oversized
from pushgate.store.idempotency import Key
from pushgate.store.models import Partner
from pushgate.store.store import Store
from pushgate.targeting import decide, errors, idempotency, validate
from pushgate.targeting.decide import Outcome
from pushgate.targeting.errors import ApiError
from pushgate.targeting.push import Push
from pushgate.targeting.schema import TargetedPushRequest
from pushgate.wakeup import idle
from pushgate.wire.push import AsyncAccepted, TargetedPushResponse

log = logging.getLogger("pushgate.push")

ASYNC_ACCEPTED = AsyncAccepted(message="Async request accepted")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: TargetedPushResponse | AsyncAccepted | bytes  # bytes: a stored answer, replayed
    replayed: bool = False


class PushService:
    def __init__(
        self,
        store: Store,
        partners: PartnerCache,
        rate: RateLimiter,
        idempotency_seconds: float,  # Settings.idempotency_hours, in seconds
    ) -> None:
        self.store = store
        self.idempotency_seconds = idempotency_seconds
        self.partners = partners
        self.rate = rate
        # Called after sends were queued, so an in-process worker claims them at once.
        self.on_queued: Callable[[], None] = lambda: None
        self.metrics = PushMetrics()  # users queued and excluded, for /metrics
        self.contents = validate.ContentCache()
        self._payloads: dict[bytes, BuiltPayloads] = {}
        self._async_wakeup = asyncio.Event()

    async def targeted_push(
        self, body: bytes, client_ip: str | None, idempotency_key: str | None = None
    ) -> Answer:
        key_value = idempotency.parse_key(idempotency_key)
        decoded = validate.decode(body)
        partner = await self.partners.admit("api_key", decoded.api_key, client_ip)
        if partner is None:
            raise errors.BAD_API_KEY
        if key_value is None:
            return await self._push(partner, decoded, None)
        key = Key(key_value, self.idempotency_seconds)
        claimed = await self.store.claim_key(partner.id, key, idempotency.body_hash(body))
        if claimed.verdict == "replay":
            return Answer(claimed.status, claimed.body, replayed=True)
        if (refused := idempotency.refusal(claimed.verdict)) is not None:
            raise refused
        try:
            return await self._push(partner, decoded, key)
        except BaseException:
            # Nothing of the request was kept (its answer is written with its changes): the
            # key may be used again, by this request corrected or sent again.
            with contextlib.suppress(Exception):
                await self.store.release_key(partner.id, key)
            raise

    async def _push(self, partner: Partner, decoded: validate.Decoded, key: Key | None) -> Answer:
        request = decoded.request
        await self._check_rate(partner, request)
        if decoded.error is not None:
            raise decoded.error
        assert request is not None
        pushes = validate.validate(request, self.contents)
        built = [self._payloads_of(p) for p in pushes]
        if not partner.validated_platforms:
            raise errors.INVALID_CERTIFICATE
        if request.is_async:
            # Kept for later without the API key, which is stored only as a hash; the request
            # is sent for the partner of the stored row. The decoded request encodes back to
            # itself (less the unknown keys, which are ignored anyway).
            kept = msgspec.json.encode(msgspec.structs.replace(request, api_key=None))
            answer = (202, msgspec.json.encode(ASYNC_ACCEPTED))
            await self.store.save_async_request(partner.id, kept, time.time(), key, answer)
            self._async_wakeup.set()
            return Answer(202, ASYNC_ACCEPTED)
        return Answer(200, await self._send(partner, request, pushes, built, key=key))

    def _payloads_of(self, push: Push) -> BuiltPayloads:
        """The provider payloads, built once per distinct content (they hold no identifier)."""
        payloads = self._payloads.get(push.content_key) if push.content_key else None
        if payloads is None:
            payloads = build_all(push)
            if (too_big := oversized(payloads)) is not None:
                raise errors.payload_too_large(too_big[0], too_big[1], MAX_PAYLOAD_BYTES)
            if push.content_key:
                if len(self._payloads) >= self.contents.max_entries:
                    self._payloads.clear()
                self._payloads[push.content_key] = payloads
        return payloads

    async def _check_rate(self, partner: Partner, request: TargetedPushRequest | None) -> None:
        wait = await self.rate.take(f"push:{partner.id}", partner.rate_limit)
        if (
            not wait
            and request is not None
            and request.notifications
            and any(n.advanced_push_payload is not None for n in request.notifications)
        ):
            wait = await self.rate.take(f"advanced:{partner.id}", partner.advanced_rate_limit)
        if wait:
            raise errors.too_many_requests(wait)

    async def _send(
        self,
        partner: Partner,
        request: TargetedPushRequest,
        pushes: list[Push],
        built: list[BuiltPayloads],
        async_request_id: int | None = None,
        key: Key | None = None,
    ) -> TargetedPushResponse:
        attributes = request.report_attributes

        def answer_of(final: list[Outcome]) -> bytes:
            return msgspec.json.encode(decide.answer(final, attributes))

        final = await self.store.send_pushes(
            partner, pushes, built, time.time(), async_request_id, key, answer_of
        )
        self.on_queued()
        if final:
            self.metrics.count(final)
        return decide.answer(final or [], request.report_attributes)

    async def forget_old_keys(self, every_seconds: float = 600.0) -> None:
        """Drop idempotency keys past their time, a batch at a time, until cancelled (a key
        past its time is treated as new anyway; this keeps the table from growing)."""
        while True:
            try:
                while await self.store.purge_keys(1000) == 1000:
                    pass
            except Exception:
                log.exception("forgetting old idempotency keys failed; trying again later")
            await asyncio.sleep(every_seconds)

    async def run_async_requests(self, poll_seconds: float = 1.0) -> None:
        """Work through accepted async requests, oldest first, until cancelled.

        Each stored body is deleted in the transaction that queues its sends, so a
        crash at any point leaves it either pending or fully queued.
        """
        while True:
            pending = await self.store.pending_async_requests(50)
            for request_id, partner_id, body in pending:
                try:
                    await self._send_stored(request_id, partner_id, body)
                except Exception:
                    log.exception("async request %d failed; it stays pending", request_id)
            if not pending:
                await idle(self._async_wakeup, poll_seconds)

    async def _send_stored(self, request_id: int, partner_id: int, body: bytes) -> None:
        partner = await self.store.partner_by_id(partner_id)
        try:
            request = validate.decode(body).request
            pushes = validate.validate(request, self.contents) if request is not None else []
        except ApiError:
            request = None
        if partner is None or request is None:
            # Accepted bodies passed validation; only a deleted partner gets here.
            await self.store.discard_async_request(request_id)
            return
        built = [self._payloads_of(p) for p in pushes]
        await self._send(partner, request, pushes, built, request_id)
