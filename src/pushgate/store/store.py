"""The store: the service's operations on its database, as units of work run by an executor."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence

from pushgate.crypto import SecretBox
from pushgate.jobs import Attempt, Credential, DeliveryOutcome, Job
from pushgate.payloads.build import BuiltPayloads
from pushgate.queue.table import TableJobQueue
from pushgate.stats import funnel
from pushgate.stats.campaign import Campaign
from pushgate.stats.events import EventBatch
from pushgate.stats.message_center import InboxQuery, SentPush
from pushgate.store import (
    audience,
    campaign_stats,
    cancellation,
    deliveries,
    erasure,
    idempotency,
    partners,
    profiles,
    sends,
    webhooks,
)
from pushgate.store import credentials as creds
from pushgate.store.db import Db, Executor
from pushgate.store.models import Partner
from pushgate.store.partners import KeyKind
from pushgate.targeting import decide
from pushgate.targeting.decide import Outcome
from pushgate.targeting.push import Identifier, Push
from pushgate.targeting.users import Session, UserData
from pushgate.wire.stats import CampaignReport
from pushgate.wire.users import Profile

# How long a cancel waits for the async requests accepted before it to be queued.
ASYNC_WAIT_SECONDS = 10.0


class Store:
    """Every operation of the service on its database, one unit of work each; the same code
    for both backends (the SQL is the dialect they share)."""

    def __init__(
        self,
        db: Executor,
        box: SecretBox,
        count_stats: bool = True,
    ) -> None:
        self.db = db
        self.box = box
        self.count_stats = count_stats
        self.queue = TableJobQueue(db)
        self.variants = sends.KnownVariants()
        self.outbox = False  # jobs also go to the outbox, for a broker's relay
        self.webhooks = webhooks.WebhookStore(db, box)

    def start(self) -> None:
        self.db.start()

    def close(self) -> None:
        self.db.close()

    async def partner_by_secret(self, kind: KeyKind, secret: str) -> Partner | None:
        return await self.db.run(lambda c: partners.partner_by_secret(c, kind, secret))

    async def partner_by_name(self, name: str) -> Partner | None:
        return await self.db.run(lambda c: partners.partner_by_name(c, name))

    async def send_pushes(
        self,
        partner: Partner,
        pushes: Sequence[Push],
        built: Sequence[BuiltPayloads],
        now: float,
        async_request_id: int | None = None,
        key: idempotency.Key | None = None,
        answer_of: Callable[[list[Outcome]], bytes] | None = None,
    ) -> list[Outcome] | None:
        """Resolve the users, decide each send, apply the frequency cap and queue the jobs,
        in one transaction; returns every user's outcome.

        For an async request, its stored body is deleted in the same transaction;
        None means another process already handled it.
        """
        identifiers = [ident for push in pushes for ident in push.identifiers]
        hour = funnel.hour_of(now)
        known = self.variants.of(partner.id)
        variants: dict[sends.VariantKey, int] = {}  # read or written by the unit

        def unit(conn: Db) -> list[Outcome] | None:
            variants.clear()
            if async_request_id is not None:
                gone = conn.execute("DELETE FROM async_requests WHERE id = ?", (async_request_id,))
                if gone.rowcount == 0:
                    return None
            matches, found = audience.resolve(conn, partner.id, identifiers)
            outcomes = decide.plan(pushes, matches, found, partner.validated_platforms)
            capped = sends.commit_sends(
                conn, partner, pushes, built, outcomes, now, self.outbox, known, variants
            )
            final = decide.apply_cap(outcomes, capped)
            if self.count_stats:
                campaign_stats.add_counts(conn, partner.id, funnel.outcome_counts(final), hour)
            if key is not None and answer_of is not None:
                body = answer_of(final)
                idempotency.remember(conn, partner.id, key.value, 200, body, now, key.keep_seconds)
            return final

        result = await self.db.run(unit)
        if variants:
            self.variants.add(partner.id, variants)  # committed by now
        return result

    async def save_async_request(
        self,
        partner_id: int,
        body: bytes,
        now: float,
        key: idempotency.Key | None = None,
        answer: tuple[int, bytes] | None = None,
    ) -> int:
        def unit(conn: Db) -> int:
            row = conn.execute(
                "INSERT INTO async_requests (partner_id, body, received_at) VALUES (?, ?, ?)"
                " RETURNING id",
                (partner_id, body, now),
            ).fetchone()
            if key is not None and answer is not None:
                status, text = answer
                idempotency.remember(
                    conn, partner_id, key.value, status, text, now, key.keep_seconds
                )
            return int(row[0])

        return await self.db.run(unit)

    async def pending_async_requests(self, limit: int) -> list[tuple[int, int, bytes]]:
        return await self.db.run(
            lambda c: [
                (int(i), int(p), bytes(b))
                for i, p, b in c.execute(
                    "SELECT id, partner_id, body FROM async_requests ORDER BY id LIMIT ?", (limit,)
                )
            ]
        )

    async def claim_key(
        self, partner_id: int, key: idempotency.Key, body_hash: bytes
    ) -> idempotency.Claimed:
        now = time.time()
        return await self.db.run(
            lambda c: idempotency.claim(c, partner_id, key.value, body_hash, now, key.keep_seconds)
        )

    async def release_key(self, partner_id: int, key: idempotency.Key) -> None:
        await self.db.run(lambda c: idempotency.release(c, partner_id, key.value))

    async def purge_keys(self, limit: int) -> int:
        now = time.time()
        return await self.db.run(lambda c: idempotency.purge(c, now, limit))

    async def credential(self, partner_id: int, platform: str) -> Credential | None:
        return await self.db.run(lambda c: creds.get(c, self.box, partner_id, platform))

    async def record_delivery(self, job: Job, worker: str, outcome: DeliveryOutcome) -> bool:
        return (await self.record_deliveries(worker, [(job, outcome)]))[0]

    async def record_deliveries(self, worker: str, attempts: Sequence[Attempt]) -> list[bool]:
        """One transaction for the batch; per attempt, whether this worker still held its job."""
        now = time.time()
        count = self.count_stats
        return await self.db.run(lambda c: deliveries.record_many(c, worker, attempts, now, count))

    async def discard_async_request(self, request_id: int) -> None:
        await self.db.run(
            lambda c: c.execute("DELETE FROM async_requests WHERE id = ?", (request_id,))
        )

    async def partner_by_id(self, partner_id: int) -> Partner | None:
        def unit(conn: Db) -> Partner | None:
            row = conn.execute("SELECT name FROM partners WHERE id = ?", (partner_id,)).fetchone()
            return None if row is None else partners.partner_by_name(conn, row[0])

        return await self.db.run(unit)

    async def sdk_session(self, partner_id: int, session: Session, now: float) -> str:
        def unit(conn: Db) -> str:
            profile_id = profiles.record_session(conn, partner_id, session, now)
            return profiles.insider_id_of(conn, profile_id)

        return await self.db.run(unit)

    async def upsert_users(
        self,
        partner_id: int,
        users: Sequence[UserData],
        now: float,
        key: idempotency.Key | None = None,
        answer: tuple[int, bytes] | None = None,
    ) -> None:
        def unit(conn: Db) -> None:
            for user in users:
                profiles.upsert_user(conn, partner_id, user, now)
            if key is not None and answer is not None:
                status, text = answer
                idempotency.remember(
                    conn, partner_id, key.value, status, text, now, key.keep_seconds
                )

        await self.db.run(unit)

    async def read_profile(
        self, partner_id: int, identifiers: Sequence[Identifier], insider_id: str | None
    ) -> Profile | None:
        def unit(conn: Db) -> Profile | None:
            profile_id = profiles.locate(conn, partner_id, identifiers, insider_id)
            return None if profile_id is None else profiles.read_profile(conn, profile_id)

        return await self.db.run(unit)

    async def delete_profile(
        self, partner_id: int, identifiers: Sequence[Identifier], insider_id: str | None
    ) -> bool:
        def unit(conn: Db) -> bool:
            profile_id = profiles.locate(conn, partner_id, identifiers, insider_id)
            if profile_id is None:
                return False
            erasure.erase_profile(conn, profile_id, time.time(), self.count_stats)
            return True

        return await self.db.run(unit)

    # ---- statistics ----

    async def record_events(
        self, partner_id: int, batch: EventBatch
    ) -> campaign_stats.EventsRecorded | None:
        """None when the partner has no user with that insider_id."""

        def unit(conn: Db) -> campaign_stats.EventsRecorded | None:
            profile_id = profiles.profile_by_insider_id(conn, partner_id, batch.insider_id)
            if profile_id is None:
                return None
            recorded = campaign_stats.record_events(conn, partner_id, profile_id, batch.events)
            if recorded.opened:
                now = time.time()
                webhooks.opened_events(conn, partner_id, profile_id, recorded.opened, now)
            return recorded

        return await self.db.run(unit)

    async def cancel_campaign(self, partner_id: int, camp_id: int) -> int | None:
        """Cancel every push of the campaign not yet handed to a provider, a batch per
        transaction; returns how many, or None when the partner has no such campaign."""
        now = time.time()
        await self._async_requests_done(partner_id, now)
        if not await self.db.run(lambda c: cancellation.mark(c, partner_id, camp_id, now)):
            return None
        owner = f"cancel-{secrets.token_hex(6)}"
        count = self.count_stats
        total, after = 0, 0
        while True:

            def unit(conn: Db, after: int = after) -> tuple[int, int]:
                batch, last = cancellation.cancel_batch(
                    conn, partner_id, camp_id, owner, after, now
                )
                deliveries.record_many(conn, owner, batch, now, count)
                return len(batch), last

            done, after = await self.db.run(unit)
            total += done
            if done < cancellation.CANCEL_BATCH:
                return total

    async def _async_requests_done(self, partner_id: int, before: float) -> None:
        """Wait (within reason) until the partner's async requests accepted before `before`
        have queued their pushes: accepted, and not yet handed to a provider, they are the
        campaign's too. They are usually queued within a second of their 202."""
        deadline = time.monotonic() + ASYNC_WAIT_SECONDS
        while time.monotonic() < deadline:
            waiting = await self.db.run(
                lambda c: c.execute(
                    "SELECT count(*) FROM async_requests WHERE partner_id = ? AND received_at <= ?",
                    (partner_id, before),
                ).fetchone()[0]
            )
            if not waiting:
                return
            await asyncio.sleep(0.05)

    async def campaigns_since(self, partner_id: int, since: float) -> list[Campaign]:
        return await self.db.run(lambda c: campaign_stats.campaigns_since(c, partner_id, since))

    async def list_campaigns(
        self, partner_id: int, start: float, end: float, offset: int, limit: int
    ) -> tuple[int, list[Campaign]]:
        return await self.db.run(
            lambda c: campaign_stats.list_campaigns(c, partner_id, start, end, offset, limit)
        )

    async def campaign_report(self, partner_id: int, camp_id: int) -> CampaignReport | None:
        return await self.db.run(lambda c: campaign_stats.campaign_report(c, partner_id, camp_id))

    async def inbox(self, partner_id: int, query: InboxQuery) -> list[SentPush]:
        def unit(conn: Db) -> list[SentPush]:
            profile_id = profiles.find_profile(conn, partner_id, query.identifiers)
            if profile_id is None:
                return []
            return campaign_stats.inbox(
                conn, partner_id, profile_id, query.start, query.end, query.limit
            )

        return await self.db.run(unit)
