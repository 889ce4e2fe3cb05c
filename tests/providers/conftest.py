"""Keys and credentials made once per test session (RSA generation is slow)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.provider_keys import (
    KeyPair,
    pkcs8,
)


@pytest.fixture(scope="session")
def apns_key() -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(pkcs8(key), key.public_key())


@pytest.fixture(scope="session")
def rsa_key() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(pkcs8(key), key.public_key())
