"""Partner secrets: generated once, shown once, stored only as hashes.

The keys are 256-bit random tokens, so a plain SHA-256 is the right hash: there
is nothing to brute-force, and a fast hash keeps the per-request check cheap.
The stored hash is looked up by an index and then compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "pgk_"
REQUEST_TOKEN_PREFIX = "pgt_"
SDK_KEY_PREFIX = "pgs_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
