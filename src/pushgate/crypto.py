"""Provider credentials are encrypted at rest with AES-256-GCM.

The key comes from PUSHGATE_SECRET_KEY (32 bytes, URL-safe base64) or, on the
embedded default, from `secret.key` in the data dir, created on first use
with mode 0600. Keeping the key beside the database protects copies of the
database file alone; deployments should set the variable from a secret store.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pushgate.config import env

KEY_FILENAME = "secret.key"
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the secret key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        """Encrypt; `context` (e.g. partner and platform) is authenticated, so a
        ciphertext copied onto another record does not decrypt."""
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes = b"") -> bytes:
        if sealed[:1] != _VERSION:
            raise ValueError("unknown secret format")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], context)


def decode_key(text: str) -> bytes:
    key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    if len(key) != 32:
        raise ValueError("PUSHGATE_SECRET_KEY must encode 32 bytes")
    return key


def load_key(data_dir: Path) -> bytes:
    if configured := env("SECRET_KEY"):
        return decode_key(configured)
    path = data_dir / KEY_FILENAME
    try:
        return decode_key(path.read_text())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return decode_key(path.read_text())
    with os.fdopen(fd, "w") as f:
        f.write(base64.urlsafe_b64encode(key).decode())
    return key


def box_for(data_dir: Path) -> SecretBox:
    return SecretBox(load_key(data_dir))
