"""Keys and credentials made once per test session (RSA generation is slow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def pkcs8(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_key: Any


@pytest.fixture(scope="session")
def apns_key() -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(pkcs8(key), key.public_key())


@pytest.fixture(scope="session")
def rsa_key() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(pkcs8(key), key.public_key())


def service_account_info(rsa_key: KeyPair, token_uri: str) -> dict[str, Any]:
    return {
        "type": "service_account",
        "project_id": "demo-project",
        "private_key_id": "kid-123",
        "private_key": rsa_key.private_pem,
        "client_email": "pushgate@demo-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
