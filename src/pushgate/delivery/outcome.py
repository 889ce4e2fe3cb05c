"""What a provider's answer means for the job, the device and the credential (pure)."""

from __future__ import annotations

import random

from pushgate.delivery.backoff import next_attempt
from pushgate.jobs import (
    ACCEPTED,
    DONE,
    FAILED,
    INVALID_CERTIFICATE,
    QUEUED,
    DeliveryOutcome,
    Job,
    VerdictKind,
    expired,
)


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
