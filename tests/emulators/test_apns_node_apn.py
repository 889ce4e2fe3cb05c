"""The APNs emulator driven by `@parse/node-apn` from the npm registry, unmodified, under Node:
token auth (a .p8 key) and certificate auth (a .p12), on both hosts.

node-apn is installed once into `.cache/node/` at the repository's root (git-ignored); the
tests are skipped only where node or npm is missing.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pushgate.emulators import Emulators
from pushgate.emulators.credentials import generate_apns_certificate
from pushgate.emulators.server import HttpServer

NODE_APN_VERSION = "8.1.0"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "node"
SCRIPT = Path(__file__).with_name("node_apn_send.js")
BUNDLE = "com.example.app"
GOOD, DEAD, SANDBOX_ONLY = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture(scope="session")
def node_apn() -> Path:
    """The installed package's directory (what `require` takes)."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("node and npm are needed to run @parse/node-apn")
    prefix = CACHE / f"node-apn-{NODE_APN_VERSION}"
    module = prefix / "node_modules" / "@parse" / "node-apn"
    prefix.mkdir(parents=True, exist_ok=True)
    # Test processes may start together (xdist): one installs, the others wait for it.
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (module / "package.json").exists():
            subprocess.run(
                [
                    npm,
                    "install",
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(prefix),
                    f"@parse/node-apn@{NODE_APN_VERSION}",
                ],
                check=True,
                capture_output=True,
                timeout=600,
            )
    installed = json.loads((module / "package.json").read_text())["version"]
    assert installed == NODE_APN_VERSION
    return module


async def node_send(
    node_apn: Path,
    emulators: Emulators,
    credentials: dict[str, Any],
    tokens: list[str],
    server: HttpServer | None = None,
) -> dict[str, Any]:
    """One `provider.send()` to `tokens` through `server` (production by default)."""
    target = server or emulators.apns_server
    provider = {
        "address": target.host,
        "port": target.port,
        "ca": emulators.ca.ca_pem,
        "connectionRetryLimit": 1,
        **credentials,
    }
    config = {"provider": provider, "topic": BUNDLE, "tokens": tokens, "alert": "Hello"}
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_APN_PATH": str(node_apn)},
    )
    out, err = await process.communicate(json.dumps(config).encode())
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def p12_credentials(p12: bytes, password: str) -> dict[str, Any]:
    # Always with a password: node-apn reads the key of an encrypted .p12 only (as Keychain
    # Access exports them), and cryptography encrypts none without a password.
    return {"pfx": base64.b64encode(p12).decode(), "passphrase": password}


async def test_token_mode_sends_and_reports_a_rejected_token(
    node_apn: Path, emulators: Emulators
) -> None:
    key = emulators.generate_apns_credential(BUNDLE)
    emulators.state.set_token_outcome("ios", DEAD, "Unregistered")
    token_auth = {"token": {"key": key.private_key_pem, "keyId": key.key_id, "teamId": key.team_id}}

    result = await node_send(node_apn, emulators, token_auth, [GOOD, DEAD])

    assert result["sent"] == [GOOD]
    assert result["failed"] == [
        {"device": DEAD, "status": 410, "reason": "Unregistered", "error": None}
    ]
    [delivery] = emulators.state.deliveries(platform="ios")
    assert delivery.token == GOOD
    assert delivery.headers["authorization"].startswith("bearer ")
    assert delivery.payload["aps"]["alert"] == "Hello"


async def test_certificate_mode_with_a_p12_sends_without_a_provider_token(
    node_apn: Path, emulators: Emulators, rsa_keys: tuple[str, str]
) -> None:
    certificate = emulators.generate_apns_certificate(
        BUNDLE, password="s3cret", private_key_pem=rsa_keys[0]
    )
    emulators.state.set_token_environment("ios", SANDBOX_ONLY, "sandbox")

    result = await node_send(
        node_apn, emulators, p12_credentials(certificate.p12, "s3cret"), [GOOD, SANDBOX_ONLY]
    )

    assert result["sent"] == [GOOD]
    assert result["failed"] == [
        {"device": SANDBOX_ONLY, "status": 400, "reason": "BadDeviceToken", "error": None}
    ]
    [delivery] = emulators.state.deliveries(platform="ios")
    assert "authorization" not in delivery.headers
    assert delivery.headers["apns-topic"] == BUNDLE


async def test_certificate_mode_a_sandbox_certificate_on_each_host(
    node_apn: Path, emulators: Emulators, rsa_keys: tuple[str, str]
) -> None:
    certificate = emulators.generate_apns_certificate(
        BUNDLE, kind="sandbox", password="pw", private_key_pem=rsa_keys[0]
    )
    p12 = p12_credentials(certificate.p12, "pw")

    sandbox = await node_send(node_apn, emulators, p12, [GOOD], emulators.apns_sandbox_server)
    production = await node_send(node_apn, emulators, p12, [GOOD])

    assert sandbox["sent"] == [GOOD]
    assert production["failed"] == [
        {"device": GOOD, "status": 403, "reason": "BadCertificateEnvironment", "error": None}
    ]


async def test_certificate_mode_with_a_certificate_the_emulator_does_not_accept(
    node_apn: Path, emulators: Emulators, rsa_keys: tuple[str, str]
) -> None:
    stranger = generate_apns_certificate(
        None, bundle_id=BUNDLE, password="pw", private_key_pem=rsa_keys[1]
    )

    result = await node_send(node_apn, emulators, p12_credentials(stranger.p12, "pw"), [GOOD])

    assert result["sent"] == []
    [failure] = result["failed"]
    assert failure["device"] == GOOD and failure["status"] is None and failure["error"]
    assert emulators.state.deliveries() == []
