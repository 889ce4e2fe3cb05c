"""Provider credentials are encrypted at rest with AES-256-GCM.

The key comes from PUSHGATE_SECRET_KEY (32 bytes, URL-safe base64) or, on the
embedded default, from `secret.key` in the data dir, created on first use
with mode 0600. Keeping the key beside the database protects copies of the
database file alone; deployments should set the variable from a secret store.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pushgate.config import ENV_PREFIX, ConfigError, env, os_reason, usable_data_dir

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


def decode_key(text: str, source: str = f"{ENV_PREFIX}SECRET_KEY") -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{source} must be 32 bytes in URL-safe base64 (44 characters)")
    return key


# PUSHGATE_SECRET_KEY is the one setting read here rather than into config.Settings: the
# settings are handed to every child process, the key need not be.


def wrong_key(data_dir: Path | None = None) -> ConfigError:
    """The one line for a key that does not open what the database holds sealed."""
    if env("SECRET_KEY"):
        which = f"{ENV_PREFIX}SECRET_KEY"
    else:
        where = (
            data_dir / KEY_FILENAME if data_dir is not None else f"the data dir's {KEY_FILENAME}"
        )
        which = f"the secret key in {where} ({ENV_PREFIX}SECRET_KEY is not set)"
    return ConfigError(
        f"{which} does not open the provider credentials stored in the database: set"
        f" {ENV_PREFIX}SECRET_KEY to the key that sealed them (every process sharing a"
        " database needs the same one)"
    )


def load_key(data_dir: Path, create: bool = True) -> bytes:
    """PUSHGATE_SECRET_KEY, else the data dir's key file, created when missing if `create`
    (not where the database already holds something sealed: a new key could not open it)."""
    if configured := env("SECRET_KEY"):
        return decode_key(configured)
    path = data_dir / KEY_FILENAME
    try:
        return decode_key(path.read_text(), str(path))
    except (FileNotFoundError, NotADirectoryError):  # none yet, or no usable data dir (below)
        pass
    except OSError as error:
        raise ConfigError(
            f"{path} cannot be read: {os_reason(error)} ({ENV_PREFIX}SECRET_KEY is not set)"
        ) from None
    if not create:
        raise ConfigError(
            f"{ENV_PREFIX}SECRET_KEY is not set and there is no {path}, but the database holds"
            f" provider credentials sealed with a key: set {ENV_PREFIX}SECRET_KEY to that key"
            " (every process sharing a database needs the same one)"
        )
    usable_data_dir(data_dir)
    key = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return decode_key(path.read_text(), str(path))
    with os.fdopen(fd, "w") as f:
        f.write(base64.urlsafe_b64encode(key).decode())
    return key


def box_for(data_dir: Path, create: bool = True) -> SecretBox:
    return SecretBox(load_key(data_dir, create))
