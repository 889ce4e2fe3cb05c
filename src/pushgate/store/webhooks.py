"""Partners' webhooks and the events waiting for them (contract.md, "Webhooks").

A webhook's secret is sealed as provider credentials are (crypto.SecretBox, bound to the
partner). Events are rows of `webhook_events`, written in the transaction of what they tell
(`delivery_events`, called by deliveries.record_many; `opened_events` by the SDK's events), so
an event is never told of something that did not commit, nor lost when it did. A sender leases
them (`claim`) as workers lease jobs: a sender that dies leaves them to the next once the lease
runs out; delivery is at least once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from pushgate.crypto import SecretBox
from pushgate.jobs import DEAD, DONE, EXPIRED, FAILED, Attempt
from pushgate.store.db import Db, Executor
from pushgate.webhooks import events as ev

_LOOKUP_CHUNK = 500  # ids per IN list, under SQLite's parameter limit


def _context(partner_id: int) -> bytes:
    return b"webhook:%d" % partner_id


@dataclass(frozen=True, slots=True)
class Webhook:
    partner_id: int
    url: str
    events: tuple[str, ...] | None  # None: every event
    secret: str
    enabled: bool
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Pending:
    """An event leased for sending, with where it goes."""

    id: int
    partner_id: int
    message_id: str
    body: bytes
    attempts: int  # before this one
    url: str
    secret: str
    created_at: float


def _events_text(events: tuple[str, ...] | None) -> str | None:
    return None if events is None else msgspec.json.encode(list(events)).decode()


def _events_of(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(msgspec.json.decode(text))


def save(
    conn: Db,
    box: SecretBox,
    partner_id: int,
    url: str,
    events: tuple[str, ...] | None,
    secret: str,
    now: float,
) -> None:
    """Register (or replace) the partner's webhook, enabled, with no error."""
    sealed = box.seal(secret.encode(), _context(partner_id))
    conn.execute(
        "INSERT INTO webhooks (partner_id, url, events, secret, enabled, last_error, updated_at)"
        " VALUES (?, ?, ?, ?, 1, NULL, ?) ON CONFLICT (partner_id) DO UPDATE SET"
        " url = excluded.url, events = excluded.events, secret = excluded.secret, enabled = 1,"
        " last_error = NULL, updated_at = excluded.updated_at",
        (partner_id, url, _events_text(events), sealed, now),
    )


def read(conn: Db, box: SecretBox, partner_id: int) -> Webhook | None:
    row = conn.execute(
        "SELECT url, events, secret, enabled, last_error FROM webhooks WHERE partner_id = ?",
        (partner_id,),
    ).fetchone()
    if row is None:
        return None
    url, events, sealed, enabled, last_error = row
    secret = box.open(bytes(sealed), _context(partner_id)).decode()
    return Webhook(partner_id, url, _events_of(events), secret, bool(enabled), last_error)


def replace_secret(conn: Db, box: SecretBox, partner_id: int, secret: str, now: float) -> bool:
    sealed = box.seal(secret.encode(), _context(partner_id))
    changed = conn.execute(
        "UPDATE webhooks SET secret = ?, updated_at = ? WHERE partner_id = ?",
        (sealed, now, partner_id),
    ).rowcount
    return bool(changed)


def delete(conn: Db, partner_id: int) -> bool:
    """Remove the webhook and the events waiting for it."""
    conn.execute("DELETE FROM webhook_events WHERE partner_id = ?", (partner_id,))
    return bool(conn.execute("DELETE FROM webhooks WHERE partner_id = ?", (partner_id,)).rowcount)


def subscriptions(conn: Db, partner_ids: Iterable[int]) -> dict[int, tuple[str, ...] | None]:
    """The enabled webhooks' event lists of these partners (None: every event)."""
    wanted = sorted(set(partner_ids))
    found: dict[int, tuple[str, ...] | None] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        for partner_id, events in conn.execute(
            f"SELECT partner_id, events FROM webhooks WHERE enabled = 1 AND partner_id IN ({marks})",
            chunk,
        ):
            found[int(partner_id)] = _events_of(events)
    return found


# One event as written: (partner, type, camp_id, platform, profile, token, reason, detail). The
# body is built when it is sent (`claim`): the delivery's transaction only adds a short row.
EventRow = tuple[int, str, int | None, str | None, int | None, str | None, str | None, str | None]
_EVENT_COLUMNS = "partner_id, type, camp_id, platform, profile_id, token, reason, detail"


def queue(conn: Db, rows: Sequence[EventRow], now: float) -> None:
    """Events to send as soon as a sender takes them."""
    if rows:
        conn.executemany(
            f"INSERT INTO webhook_events ({_EVENT_COLUMNS}, created_at, due_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, now, now) for row in rows],
        )


_PUSH_EVENT = {DONE: ev.PUSH_ACCEPTED, FAILED: ev.PUSH_FAILED, DEAD: ev.PUSH_FAILED}


def delivery_events(conn: Db, settled: Sequence[Attempt], now: float) -> None:
    """The events of recorded delivery outcomes, for the partners whose webhook wants them:
    push.accepted, push.failed, push.expired, device.unregistered, credential.invalid."""
    wanted = subscriptions(conn, {job.partner_id for job, _ in settled})
    if not wanted:
        return
    rows: list[EventRow] = []
    invalid: set[tuple[int, str]] = set()
    for job, outcome in settled:
        if job.partner_id not in wanted:
            continue
        events = wanted[job.partner_id]
        kind = ev.PUSH_EXPIRED if outcome.state == EXPIRED else _PUSH_EVENT.get(outcome.state)
        if kind is not None and (events is None or kind in events):
            failed = kind == ev.PUSH_FAILED
            rows.append(
                (
                    job.partner_id,
                    kind,
                    job.camp_id,
                    job.platform,
                    job.profile_id,
                    job.token,
                    outcome.reason if failed else None,
                    outcome.detail if failed else None,
                )
            )
        if outcome.device_action == "unregister" and ev.wants(events, ev.DEVICE_UNREGISTERED):
            rows.append(
                (
                    job.partner_id,
                    ev.DEVICE_UNREGISTERED,
                    None,
                    job.platform,
                    job.profile_id,
                    job.token,
                    outcome.reason,
                    None,
                )
            )
        key = (job.partner_id, job.platform)
        if outcome.credential_invalid and key not in invalid:
            invalid.add(key)
            if ev.wants(events, ev.CREDENTIAL_INVALID):
                reason = outcome.reason or outcome.detail
                rows.append(
                    (
                        job.partner_id,
                        ev.CREDENTIAL_INVALID,
                        None,
                        job.platform,
                        None,
                        None,
                        reason,
                        None,
                    )
                )
    queue(conn, rows, now)


def opened_events(
    conn: Db, partner_id: int, profile_id: int, camp_ids: Sequence[int], now: float
) -> None:
    """push.opened for each campaign the SDK reported opened for the first time, if the
    partner's webhook wants it."""
    events = subscriptions(conn, [partner_id])
    if partner_id not in events or not ev.wants(events[partner_id], ev.PUSH_OPENED):
        return
    rows: list[EventRow] = [
        (partner_id, ev.PUSH_OPENED, camp_id, None, profile_id, None, None, None)
        for camp_id in camp_ids
    ]
    queue(conn, rows, now)


def _insider_ids(conn: Db, profile_ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(profile_ids))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        for pid, insider_id in conn.execute(
            f"SELECT id, insider_id FROM profiles WHERE id IN ({marks})", chunk
        ):
            found[int(pid)] = str(insider_id)
    return found


def claim(
    conn: Db, box: SecretBox, owner: str, limit: int, lease: float, now: float
) -> list[Pending]:
    """Lease up to `limit` due events of enabled webhooks, oldest first, with their bodies."""
    rows = conn.execute(
        "UPDATE webhook_events SET lease_owner = ?, due_at = ? WHERE id IN ("
        " SELECT e.id FROM webhook_events e JOIN webhooks w ON w.partner_id = e.partner_id"
        " WHERE e.due_at <= ? AND w.enabled = 1 ORDER BY e.due_at LIMIT ?)"
        f" RETURNING id, {_EVENT_COLUMNS}, created_at, attempts",
        (owner, now + lease, now, limit),
    ).fetchall()
    insider = _insider_ids(conn, {row[5] for row in rows if row[5] is not None})
    targets: dict[int, tuple[str, str]] = {}
    pending: list[Pending] = []
    for (
        event_id,
        partner_id,
        kind,
        camp_id,
        platform,
        profile_id,
        token,
        reason,
        detail,
        at,
        tries,
    ) in sorted(rows):
        if partner_id not in targets:
            url, sealed = conn.execute(
                "SELECT url, secret FROM webhooks WHERE partner_id = ?", (partner_id,)
            ).fetchone()
            targets[partner_id] = (url, box.open(bytes(sealed), _context(partner_id)).decode())
        url, secret = targets[partner_id]
        data = {
            "camp_id": camp_id,
            "platform": platform,
            "insider_id": insider.get(profile_id) if profile_id is not None else None,
            "device_token": token,
            "reason": reason,
            "detail": detail,
        }
        # Stable across retries, and apart between installations and restored databases.
        message_id = f"msg_{event_id}_{int(at * 1_000_000)}"
        body = ev.event_body(kind, at, data)
        pending.append(Pending(event_id, partner_id, message_id, body, tries, url, secret, at))
    return pending


def delivered(conn: Db, event_ids: Sequence[int], owner: str) -> None:
    conn.executemany(
        "DELETE FROM webhook_events WHERE id = ? AND lease_owner = ?",
        [(event_id, owner) for event_id in event_ids],
    )


def failed(conn: Db, pending: Pending, owner: str, error: str, now: float) -> bool:
    """A failed attempt: tried again on the schedule, or given up (the webhook's last_error
    says so). Returns whether it will be tried again."""
    attempts = pending.attempts + 1
    delay = ev.retry_delay(attempts)
    if delay is not None:
        conn.execute(
            "UPDATE webhook_events SET attempts = ?, due_at = ?, lease_owner = NULL"
            " WHERE id = ? AND lease_owner = ?",
            (attempts, now + delay, pending.id, owner),
        )
    else:
        conn.execute(
            "DELETE FROM webhook_events WHERE id = ? AND lease_owner = ?", (pending.id, owner)
        )
    conn.execute(
        "UPDATE webhooks SET last_error = ? WHERE partner_id = ?",
        (
            error if delay is not None else f"gave up after {attempts} attempts: {error}",
            pending.partner_id,
        ),
    )
    return delay is not None


def disable(conn: Db, partner_id: int, error: str) -> None:
    """The endpoint said 410 Gone: no more events for it (those waiting are dropped)."""
    conn.execute(
        "UPDATE webhooks SET enabled = 0, last_error = ? WHERE partner_id = ?", (error, partner_id)
    )
    conn.execute("DELETE FROM webhook_events WHERE partner_id = ?", (partner_id,))


class WebhookStore:
    """The webhook operations as units of work on the store's executor (`Store.webhooks`); it
    is also the outbox the sender leases events from (webhooks/sender.py: Outbox)."""

    def __init__(self, db: Executor, box: SecretBox) -> None:
        self.db = db
        self.box = box

    async def save(
        self, partner_id: int, url: str, events: tuple[str, ...] | None, secret: str
    ) -> None:
        now = time.time()
        await self.db.run(lambda c: save(c, self.box, partner_id, url, events, secret, now))

    async def get(self, partner_id: int) -> Webhook | None:
        return await self.db.run(lambda c: read(c, self.box, partner_id))

    async def delete(self, partner_id: int) -> bool:
        return await self.db.run(lambda c: delete(c, partner_id))

    async def rotate(self, partner_id: int, secret: str) -> bool:
        now = time.time()
        return await self.db.run(lambda c: replace_secret(c, self.box, partner_id, secret, now))

    async def claim(self, owner: str, limit: int, lease: float) -> list[Pending]:
        now = time.time()
        return await self.db.run(lambda c: claim(c, self.box, owner, limit, lease, now))

    async def delivered(self, event_ids: Sequence[int], owner: str) -> None:
        await self.db.run(lambda c: delivered(c, event_ids, owner))

    async def failed(self, pending: Pending, owner: str, error: str) -> bool:
        now = time.time()
        return await self.db.run(lambda c: failed(c, pending, owner, error, now))

    async def disable(self, partner_id: int, error: str) -> None:
        await self.db.run(lambda c: disable(c, partner_id, error))
