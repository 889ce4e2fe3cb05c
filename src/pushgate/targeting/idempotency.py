"""The `Idempotency-Key` header's rules (contract.md, "Idempotent requests"): what a key may
be, the hash a request's body is known by, and the answers when a key cannot run."""

from __future__ import annotations

import hashlib

from pushgate.targeting.errors import ApiError

MAX_KEY_LENGTH = 255

INVALID_KEY = ApiError(
    400,
    "invalid_idempotency_key",
    "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
)
KEY_REUSED = ApiError(
    422, "idempotency_key_reused", "This Idempotency-Key was used with a different request body."
)
KEY_IN_USE = ApiError(
    409,
    "idempotency_key_in_use",
    "A request with this Idempotency-Key is being processed.",
    retry_after=1,
)


def refusal(verdict: str) -> ApiError | None:
    """The answer to a key that may not run now (store/idempotency.py's `claim` verdicts)."""
    return {"reused": KEY_REUSED, "in_use": KEY_IN_USE}.get(verdict)


def parse_key(header: str | None) -> str | None:
    """The key, None when the request has none; INVALID_KEY when it is not one (printable
    ASCII is 0x20 to 0x7E)."""
    if header is None:
        return None
    if not 1 <= len(header) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in header):
        raise INVALID_KEY
    return header


def body_hash(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()
