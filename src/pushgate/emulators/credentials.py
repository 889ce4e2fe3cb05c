"""The credentials the emulators accept, and fresh emulator credentials for each platform.

The emulators never hold credentials of their own: they ask a `CredentialDirectory` (synchronously)
for the public half of whatever a client presents. pushgate passes one backed by its database (the
credentials partners uploaded); `InMemoryCredentials` holds the generated emulator credentials;
`CombinedCredentials` asks several in turn.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_ALNUM = string.ascii_uppercase + string.digits


@dataclass(frozen=True, slots=True)
class ApnsKey:
    """An APNs signing key (token auth): its public half and the topics it may push to."""

    key_id: str
    team_id: str
    public_key_pem: str
    bundle_ids: tuple[str, ...] = ()
    """Bundle ids (apns-topic) this key may push to; empty: any."""


@dataclass(frozen=True, slots=True)
class FcmAccount:
    """A service account allowed to obtain FCM access tokens for `project_id`."""

    client_email: str
    key_id: str
    project_id: str
    public_key_pem: str


@dataclass(frozen=True, slots=True)
class HmsApp:
    """An HMS Push Kit app: OAuth client id and secret, and the app id it sends for."""

    client_id: str
    client_secret: str
    app_id: str


class CredentialDirectory(Protocol):
    """What the emulators ask to verify the credentials a client presents."""

    def apns_key(self, key_id: str, team_id: str) -> ApnsKey | None: ...

    def fcm_account(self, client_email: str, key_id: str) -> FcmAccount | None: ...

    def hms_app(self, client_id: str) -> HmsApp | None: ...


@dataclass(frozen=True, slots=True)
class ApnsCredential:
    """A generated APNs token-auth credential (.p8 key)."""

    key_id: str
    team_id: str
    bundle_id: str
    private_key_pem: str

    def as_upload(self) -> dict[str, str]:
        """The body of `POST /v1/settings/certificate/apns`."""
        return {
            "key_id": self.key_id,
            "team_id": self.team_id,
            "bundle_id": self.bundle_id,
            "private_key": self.private_key_pem,
        }


@dataclass(frozen=True, slots=True)
class HmsCredential:
    """A generated HMS app credential."""

    app_id: str
    client_id: str
    client_secret: str

    def as_upload(self) -> dict[str, str]:
        """The body of `POST /v1/settings/certificate/huawei`."""
        return {
            "app_id": self.app_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }


class InMemoryCredentials:
    """A `CredentialDirectory` in memory, filled with `add_*` or the `generate_*` helpers."""

    def __init__(self) -> None:
        self._apns: dict[tuple[str, str], ApnsKey] = {}
        self._fcm: dict[tuple[str, str], FcmAccount] = {}
        self._hms: dict[str, HmsApp] = {}

    def add_apns_key(self, key: ApnsKey) -> None:
        self._apns[(key.key_id, key.team_id)] = key

    def add_fcm_account(self, account: FcmAccount) -> None:
        self._fcm[(account.client_email, account.key_id)] = account

    def add_hms_app(self, app: HmsApp) -> None:
        self._hms[app.client_id] = app

    def apns_key(self, key_id: str, team_id: str) -> ApnsKey | None:
        return self._apns.get((key_id, team_id))

    def fcm_account(self, client_email: str, key_id: str) -> FcmAccount | None:
        return self._fcm.get((client_email, key_id))

    def hms_app(self, client_id: str) -> HmsApp | None:
        return self._hms.get(client_id)

    def generate_apns(self, bundle_id: str = "com.example.app") -> ApnsCredential:
        return generate_apns_credential(self, bundle_id=bundle_id)

    def generate_fcm(
        self, token_uri: str, project_id: str | None = None, private_key_pem: str | None = None
    ) -> dict[str, str]:
        return generate_fcm_service_account(
            self, token_uri=token_uri, project_id=project_id, private_key_pem=private_key_pem
        )

    def generate_hms(self) -> HmsCredential:
        return generate_hms_credential(self)


class CombinedCredentials:
    """Asks each directory in turn; the first that knows the credential answers."""

    def __init__(self, directories: Iterable[CredentialDirectory]) -> None:
        self.directories = list(directories)

    def apns_key(self, key_id: str, team_id: str) -> ApnsKey | None:
        for directory in self.directories:
            if (found := directory.apns_key(key_id, team_id)) is not None:
                return found
        return None

    def fcm_account(self, client_email: str, key_id: str) -> FcmAccount | None:
        for directory in self.directories:
            if (found := directory.fcm_account(client_email, key_id)) is not None:
                return found
        return None

    def hms_app(self, client_id: str) -> HmsApp | None:
        for directory in self.directories:
            if (found := directory.hms_app(client_id)) is not None:
                return found
        return None


def public_key_pem(private_key_pem: str) -> str:
    """The SubjectPublicKeyInfo PEM of a PEM private key (a .p8 key or a service account's)."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def apns_key_from_private(
    key_id: str, team_id: str, private_key_pem: str, bundle_ids: Iterable[str] = ()
) -> ApnsKey:
    """The `ApnsKey` for an uploaded .p8 key."""
    return ApnsKey(key_id, team_id, public_key_pem(private_key_pem), tuple(bundle_ids))


def fcm_account_from_service_account(info: Mapping[str, Any]) -> FcmAccount:
    """The `FcmAccount` for an uploaded service-account JSON."""
    return FcmAccount(
        client_email=str(info["client_email"]),
        key_id=str(info["private_key_id"]),
        project_id=str(info["project_id"]),
        public_key_pem=public_key_pem(str(info["private_key"])),
    )


def _random_id(length: int = 10) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def generate_apns_credential(
    directory: InMemoryCredentials, *, bundle_id: str = "com.example.app"
) -> ApnsCredential:
    """A fresh EC P-256 .p8 key with a key id and team id, registered in `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    credential = ApnsCredential(_random_id(), _random_id(), bundle_id, private_pem)
    directory.add_apns_key(
        apns_key_from_private(credential.key_id, credential.team_id, private_pem, (bundle_id,))
    )
    return credential


def generate_fcm_service_account(
    directory: InMemoryCredentials,
    *,
    token_uri: str,
    project_id: str | None = None,
    private_key_pem: str | None = None,
) -> dict[str, str]:
    """A fresh service-account JSON (RSA-2048) whose `token_uri` is `token_uri`, registered.

    `private_key_pem` reuses an RSA key instead of generating one (generating takes ~0.1-0.5 s).
    """
    project = project_id or f"emulator-{secrets.token_hex(4)}"
    private_pem = private_key_pem or rsa_private_key_pem()
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": private_pem,
        "client_email": f"emulator-{secrets.token_hex(4)}@{project}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)).rjust(21, "1"),
        "token_uri": token_uri,
    }
    directory.add_fcm_account(fcm_account_from_service_account(info))
    return info


def rsa_private_key_pem() -> str:
    """A new RSA-2048 private key, PKCS#8 PEM (as in a service-account JSON)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def generate_hms_credential(directory: InMemoryCredentials) -> HmsCredential:
    """A fresh HMS app id, OAuth client id (the app id, as on AppGallery) and secret, registered."""
    app_id = str(100_000_000 + secrets.randbelow(900_000_000))
    credential = HmsCredential(app_id=app_id, client_id=app_id, client_secret=secrets.token_hex(32))
    directory.add_hms_app(HmsApp(credential.client_id, credential.client_secret, credential.app_id))
    return credential


def signature_valid(token: str, public_key_pem: str, algorithm: str) -> bool:
    """Whether the JWT is signed by the key; its claims are the caller's to check, with
    each provider's own error for each one."""
    try:
        jwt.decode(
            token,
            key=public_key_pem,
            algorithms=[algorithm],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except (jwt.PyJWTError, ValueError):
        return False
    return True
