"""Committing a targeted push: campaigns, frequency cap, delivery jobs, in one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, MutableMapping, Sequence

import msgspec

from pushgate.jobs import NewJob
from pushgate.limits import frequency_cap
from pushgate.payloads.build import BuiltPayloads
from pushgate.queue import table as job_table
from pushgate.store.db import Db
from pushgate.store.models import Partner
from pushgate.targeting import decide
from pushgate.targeting.decide import Outcome
from pushgate.targeting.push import Push

_encode = msgspec.json.encode

# A campaign variant: (camp_id, content hash).
VariantKey = tuple[int, bytes]


class KnownVariants:
    """Variant ids of rows already committed, per partner: a campaign's every request after
    its first finds its variant here instead of in a SELECT (a round trip on PostgreSQL).
    Variant rows are never deleted or changed, so an id once committed stays right. Filled
    only after the transaction that read or wrote the ids has committed (`add`): an id
    inserted by a transaction that is rolled back must not be remembered."""

    LIMIT = 10_000  # entries; then it starts over (a campaign's next request reads it again)

    def __init__(self) -> None:
        self._ids: dict[int, dict[VariantKey, int]] = {}
        self._size = 0

    def of(self, partner_id: int) -> Mapping[VariantKey, int]:
        return self._ids.get(partner_id) or {}

    def add(self, partner_id: int, found: Mapping[VariantKey, int]) -> None:
        if self._size + len(found) > self.LIMIT:
            self._ids.clear()
            self._size = 0
        known = self._ids.setdefault(partner_id, {})
        before = len(known)
        known.update(found)
        self._size += len(known) - before


def _content_hash(push: Push) -> bytes:
    key = push.content_key or _encode(
        msgspec.structs.replace(push, index=0, identifiers_sent={}, identifiers=())
    )
    return hashlib.blake2b(key, digest_size=16).digest()


def record_campaigns(
    conn: Db,
    partner_id: int,
    pushes: Sequence[Push],
    now: float,
    known: Mapping[VariantKey, int] | None = None,
    found: MutableMapping[VariantKey, int] | None = None,
) -> dict[int, int]:
    """Each distinct content of a campaign is a variant; returns the variant of every push index.
    A campaign is recorded with its first variant, on the first use of its camp_id; later
    sends keep its row. So a known content costs one read, no write, and none if it is in
    `known` (committed ids). The ids read or written go into `found`."""
    variants: dict[int, int] = {}
    seen: MutableMapping[VariantKey, int] = {} if found is None else found
    known = known or {}
    select = (
        "SELECT id FROM campaign_variants WHERE partner_id = ? AND camp_id = ? AND content_hash = ?"
    )
    for p in pushes:
        key = (p.camp_id, _content_hash(p))
        if key in known:
            variants[p.index] = known[key]
            continue
        if key not in seen:
            row = conn.execute(select, (partner_id, *key)).fetchone()
            if row is None:
                links = _deep_links(p)
                conn.execute(
                    "INSERT INTO campaigns (partner_id, camp_id, name, title, message, image_url,"
                    " deep_links, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        partner_id,
                        p.camp_id,
                        p.camp_name,
                        p.title,
                        p.message,
                        p.image_url,
                        links,
                        now,
                    ),
                )
                # Concurrent writers (PostgreSQL) may both miss the variant; the conflict clause
                # lets one insert it and the other read it back.
                row = (
                    conn.execute(
                        "INSERT INTO campaign_variants (partner_id, camp_id, content_hash, title,"
                        " message, image_url, deep_links, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT DO NOTHING RETURNING id",
                        (partner_id, *key, p.title, p.message, p.image_url, links, now),
                    ).fetchone()
                    or conn.execute(select, (partner_id, *key)).fetchone()
                )
            seen[key] = int(row[0])
        variants[p.index] = seen[key]
    return variants


def _deep_links(p: Push) -> str:
    return _encode({"android": p.android.deep_links, "ios": p.ios.deep_links}).decode()


def commit_sends(
    conn: Db,
    partner: Partner,
    pushes: Sequence[Push],
    built: Sequence[BuiltPayloads],
    outcomes: Sequence[Outcome],
    now: float,
    outbox: bool = False,
    known: Mapping[VariantKey, int] | None = None,
    found: MutableMapping[VariantKey, int] | None = None,
) -> list[int]:
    """Apply the frequency cap and queue one job per remaining send (`known` and `found`:
    `record_campaigns`).

    Returns the indexes of outcomes excluded by the cap. The caller commits.
    """
    variants = record_campaigns(conn, partner.id, pushes, now, known, found)
    capped: list[int] = []
    jobs: list[NewJob] = []
    for i, o in enumerate(outcomes):
        if o.device is None or o.profile is None:
            continue
        if (
            o.wants_cap
            and partner.gfc_limit > 0
            and not frequency_cap.take(
                conn, partner.id, o.profile.id, partner.gfc_limit, partner.gfc_window, now
            )
        ):
            capped.append(i)
            continue
        payloads = built[o.push.index]
        due = decide.due_at(o, now, partner.timezone, partner.quiet_hours)
        jobs.append(
            NewJob(
                partner_id=partner.id,
                camp_id=o.push.camp_id,
                profile_id=o.profile.id,
                device_id=o.device.id,
                platform=o.device.platform,
                token=o.device.token,
                environment=o.device.environment,
                payload=payloads.bodies[o.device.platform],
                push_type=payloads.apns_push_type,
                priority=payloads.apns_priority,
                expires_at=due + o.push.ttl,  # the TTL counts from when it becomes due
                variant_id=variants[o.push.index],
                due_at=due,
            )
        )
    job_table.enqueue(conn, jobs, now, outbox)
    return capped
