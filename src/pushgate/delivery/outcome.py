"""What a provider's answer means for the job, the device and the credential (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pushgate.delivery.backoff import next_attempt
from pushgate.providers.verdict import VerdictKind
from pushgate.queue.base import DONE, EXPIRED, FAILED, QUEUED, Job

EXPIRED_REASON = "Expired"  # contract.md: not accepted within its TTL
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
# The common outcome, shared (it is immutable) rather than made per send.
ACCEPTED = DeliveryOutcome(DONE)


def expired(detail: str | None = None) -> DeliveryOutcome:
    return DeliveryOutcome(EXPIRED, EXPIRED_REASON, detail)


def decide(
    job: Job,
    kind: VerdictKind,
    reason: str,
    *,
    now: float,
    retry_after: float | None = None,
    timestamp_ms: int | None = None,
    detail: str | None = None,
    environment: str | None = None,
    rng: random.Random | None = None,
) -> DeliveryOutcome:
    if kind == "ok":
        if environment is None:
            return ACCEPTED
        return DeliveryOutcome(DONE, device_environment=environment)
    if kind == "retry":
        at = next_attempt(job.attempts, now, job.expires_at, retry_after, rng)
        if at is None:
            return expired(detail or reason)
        return DeliveryOutcome(QUEUED, detail=detail or reason, retry_at=at)
    if kind == "dead_token":
        return DeliveryOutcome(
            FAILED, reason, detail, device_action="unregister", token_dead_since_ms=timestamp_ms
        )
    if kind == "credential":
        return DeliveryOutcome(
            FAILED, INVALID_CERTIFICATE, detail or reason, credential_invalid=True
        )
    return DeliveryOutcome(FAILED, reason, detail)
