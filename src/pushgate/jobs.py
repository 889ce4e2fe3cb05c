"""The job model: a job, its states, what a delivery attempt decided for it, and the kinds of
provider verdict. The bottom layer: it imports nothing else of pushgate, so the store, the
queue, delivery, providers, stats and metrics all take these types from here rather than from
each other (tests/unit/test_import_graph.py holds them to that).

A job is one push to one device. Enqueueing happens inside the store's transaction (answered
means queued); workers claim jobs with a lease, and a job whose lease runs out (its worker died
mid-send) is claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import msgspec

# A job's states (the `jobs.state` column).
QUEUED = "queued"
LEASED = "leased"
DONE = "done"
FAILED = "failed"  # permanent provider failure: a fail record
DEAD = "dead"  # gave up after too many attempts
EXPIRED = "expired"  # its TTL ran out before a provider accepted it


# msgspec Structs, not dataclasses: a worker makes one Job per claimed row, and a frozen
# dataclass's __init__ (a Python setattr per field) cost 3.7 µs of it against 0.16 µs.
class NewJob(msgspec.Struct, frozen=True, gc=False):
    partner_id: int
    camp_id: int
    profile_id: int
    device_id: int
    platform: str
    token: str
    environment: str
    payload: bytes
    push_type: str
    priority: int
    expires_at: float
    variant_id: int = 0  # the campaign content it carries (Message Center)
    due_at: float = 0.0  # when it may be sent (scheduled, local time, quiet hours); 0: at once


class Job(msgspec.Struct, frozen=True, gc=False):
    id: int
    partner_id: int
    camp_id: int
    profile_id: int
    device_id: int
    platform: str
    token: str
    environment: str
    payload: bytes
    push_type: str
    priority: int
    created_at: float
    expires_at: float
    attempts: int
    variant_id: int = 0


# What a provider's answer means (providers/verdict.py describes each kind).
VerdictKind = Literal["ok", "retry", "dead_token", "credential", "rejected"]
VERDICT_KINDS: tuple[str, ...] = get_args(VerdictKind)

EXPIRED_REASON = "Expired"  # contract.md: not accepted within its TTL
CANCELLED_REASON = "Cancelled"  # contract.md: its campaign was cancelled before it was sent
INVALID_CERTIFICATE = "InvalidCertificate"
# Only a dead token retires a device (providers.md): configuration answers never do.
DeviceAction = Literal["unregister"]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    state: str  # the job's next state
    reason: str | None = None  # fail-record name, when the send failed for good
    detail: str | None = None
    retry_at: float | None = None
    device_action: DeviceAction | None = None
    token_dead_since_ms: int | None = None  # APNs 410 timestamp
    credential_invalid: bool = False
    device_environment: str | None = None  # APNs: the environment the token was found in


# A claimed job and the outcome to record for it.
Attempt = tuple[Job, DeliveryOutcome]
# A claimed job, the outcome recorded for it, and whether this worker still held its lease.
Settled = tuple[Job, DeliveryOutcome, bool]
# The common outcome, shared (it is immutable) rather than made per send.
ACCEPTED = DeliveryOutcome(DONE)


def expired(detail: str | None = None) -> DeliveryOutcome:
    return DeliveryOutcome(EXPIRED, EXPIRED_REASON, detail)


# How a partner's provider credential came to be: made by `serve --emulate`, or uploaded.
EMULATOR = "emulator"
UPLOADED = "uploaded"


@dataclass(frozen=True, slots=True)
class Credential:
    """A partner's provider credential as the store reads it and delivery sends with it."""

    partner_id: int
    platform: str
    kind: str  # EMULATOR or UPLOADED
    record: dict[str, Any]
    validated: bool
    detail: str | None
