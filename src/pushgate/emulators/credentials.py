"""The credentials the emulators accept, and fresh emulator credentials for each platform.

The emulators never hold credentials of their own: they ask a `CredentialDirectory` (synchronously)
for the public half of whatever a client presents. pushgate passes one backed by its database (the
credentials partners uploaded); `InMemoryCredentials` holds the generated emulator credentials;
`CombinedCredentials` asks several in turn.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pushgate.emulators.ca import LocalCA

_ALNUM = string.ascii_uppercase + string.digits

# Apple's push certificates: which environments one may be used on, by the extensions Apple
# puts in them (node-apn reads the same two), else by the subject's common name.
APPLE_PUSH_SANDBOX_OID: Final = x509.ObjectIdentifier("1.2.840.113635.100.6.3.1")
APPLE_PUSH_PRODUCTION_OID: Final = x509.ObjectIdentifier("1.2.840.113635.100.6.3.2")
SANDBOX_ONLY_CN: Final = "Apple Development IOS Push Services"
PRODUCTION_ONLY_CN: Final = "Apple Production IOS Push Services"
UNIVERSAL_CN: Final = "Apple Push Services"
ApnsEnvironment = Literal["production", "sandbox"]
CertificateKind = Literal["universal", "sandbox", "production"]
_BOTH: Final[frozenset[ApnsEnvironment]] = frozenset({"production", "sandbox"})


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


@dataclass(frozen=True, slots=True)
class ApnsCertificate:
    """An APNs push certificate (certificate auth) the APNs emulator accepts as a TLS client
    certificate: the public certificate only."""

    der: bytes
    fingerprint: str
    """SHA-256 of `der`, lower-case hex."""
    bundle_id: str | None
    """The subject's UID: the app the certificate pushes to (None: it names none)."""
    environments: frozenset[ApnsEnvironment]
    """Where it may be used: both for Apple's universal certificates."""

    @classmethod
    def from_der(cls, der: bytes) -> ApnsCertificate:
        return cls.parse(x509.load_der_x509_certificate(der))

    @classmethod
    def from_pem(cls, pem: str | bytes) -> ApnsCertificate:
        data = pem.encode() if isinstance(pem, str) else pem
        return cls.parse(x509.load_pem_x509_certificate(data))

    @classmethod
    def parse(cls, certificate: x509.Certificate) -> ApnsCertificate:
        der = certificate.public_bytes(serialization.Encoding.DER)
        return cls(
            der=der,
            fingerprint=hashlib.sha256(der).hexdigest(),
            bundle_id=_name_value(certificate.subject, NameOID.USER_ID),
            environments=_environments(certificate),
        )


def _name_value(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


def _environments(certificate: x509.Certificate) -> frozenset[ApnsEnvironment]:
    found: set[ApnsEnvironment] = set()
    for extension in certificate.extensions:
        if extension.oid == APPLE_PUSH_SANDBOX_OID:
            found.add("sandbox")
        elif extension.oid == APPLE_PUSH_PRODUCTION_OID:
            found.add("production")
    if found:
        return frozenset(found)
    common_name = _name_value(certificate.subject, NameOID.COMMON_NAME) or ""
    if common_name.startswith(SANDBOX_ONLY_CN):
        return frozenset({"sandbox"})
    if common_name.startswith(PRODUCTION_ONLY_CN):
        return frozenset({"production"})
    return _BOTH


class CredentialDirectory(Protocol):
    """What the emulators ask to verify the credentials a client presents."""

    def apns_key(self, key_id: str, team_id: str) -> ApnsKey | None: ...

    def apns_certificates(self) -> Sequence[ApnsCertificate]:
        """Every push certificate accepted as a TLS client certificate. Asked at every TLS
        handshake with the APNs emulator: answer from memory or a cheap look-up."""
        ...

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
class ApnsPushCertificate:
    """A generated APNs push certificate with its key, as the `.p12` Apple's tools export."""

    bundle_id: str
    p12: bytes
    password: str
    certificate_pem: str
    private_key_pem: str

    @property
    def certificate(self) -> ApnsCertificate:
        return ApnsCertificate.from_pem(self.certificate_pem)

    def as_upload(self) -> dict[str, str]:
        """The body of `POST /v1/settings/certificate/apns` (certificate auth)."""
        return {
            "p12": base64.b64encode(self.p12).decode(),
            "password": self.password,
            "bundle_id": self.bundle_id,
        }

    def identity_pem(self) -> str:
        """Key and certificate in one PEM (what aioapns' `client_cert` and `openssl` take)."""
        return self.private_key_pem + self.certificate_pem

    def write_identity(self, path: str | os.PathLike[str]) -> Path:
        """`identity_pem()` in a file readable by its owner only."""
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.identity_pem())
        return target


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
        self._certificates: dict[str, ApnsCertificate] = {}

    def add_apns_key(self, key: ApnsKey) -> None:
        self._apns[(key.key_id, key.team_id)] = key

    def add_apns_certificate(self, certificate: ApnsCertificate) -> None:
        self._certificates[certificate.fingerprint] = certificate

    def apns_certificates(self) -> Sequence[ApnsCertificate]:
        return tuple(self._certificates.values())

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

    def generate_apns_certificate(
        self, bundle_id: str = "com.example.app", **options: Any
    ) -> ApnsPushCertificate:
        """See `generate_apns_certificate`."""
        return generate_apns_certificate(self, bundle_id=bundle_id, **options)

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

    def apns_certificates(self) -> Sequence[ApnsCertificate]:
        return tuple(c for directory in self.directories for c in directory.apns_certificates())

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


_COMMON_NAMES: Final[dict[CertificateKind, str]] = {
    "universal": UNIVERSAL_CN,
    "sandbox": SANDBOX_ONLY_CN,
    "production": PRODUCTION_ONLY_CN,
}
_KIND_OIDS: Final[dict[CertificateKind, tuple[x509.ObjectIdentifier, ...]]] = {
    "universal": (APPLE_PUSH_SANDBOX_OID, APPLE_PUSH_PRODUCTION_OID),
    "sandbox": (APPLE_PUSH_SANDBOX_OID,),
    "production": (APPLE_PUSH_PRODUCTION_OID,),
}
_DER_NULL: Final = b"\x05\x00"


def generate_apns_certificate(
    directory: InMemoryCredentials | None,
    *,
    bundle_id: str = "com.example.app",
    kind: CertificateKind = "universal",
    ca: LocalCA | None = None,
    password: str = "",
    private_key_pem: str | None = None,
    uid: str | None = "",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> ApnsPushCertificate:
    """A push certificate shaped like Apple's, with its key in a `.p12`; registered in
    `directory` (so that the APNs emulator accepts it) unless that is None.

    Subject: CN "Apple Push Services: <bundle>" (`kind="universal"`, both environments),
    "Apple Development IOS Push Services: <bundle>" (`"sandbox"`) or "Apple Production IOS
    Push Services: <bundle>" (`"production"`), UID = the bundle id (`uid`: another UID, or
    None for none), OU a team id; Apple's environment extensions; client-auth usage. Issued
    by `ca` (the emulators' local CA) or self-signed: node-apn's own check of a `.p12` (with
    node-forge) reads RSA-signed certificates only, and the local CA signs with EC. An
    RSA-2048 key as Apple issues, unless `private_key_pem` gives one (generating RSA keys
    takes a few hundred milliseconds).
    """
    key: Any
    if private_key_pem is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    attributes = []
    if uid is not None:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, uid or bundle_id))
    attributes += [
        x509.NameAttribute(NameOID.COMMON_NAME, f"{_COMMON_NAMES[kind]}: {bundle_id}"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _random_id()),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pushgate emulator"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ]
    subject = x509.Name(attributes)
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = subject, key
    if ca is not None:
        issuer_name = x509.load_pem_x509_certificate(ca.ca_pem.encode()).subject
        issuer_key = serialization.load_pem_private_key(ca.ca_key_pem.encode(), password=None)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    for oid in _KIND_OIDS[kind]:
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, _DER_NULL), critical=False)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    # The certificate alone, as Keychain Access exports it (no issuer chain).
    p12 = pkcs12.serialize_key_and_certificates(
        bundle_id.encode(), key, certificate, None, encryption
    )
    generated = ApnsPushCertificate(
        bundle_id=bundle_id,
        p12=p12,
        password=password,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
    if directory is not None:
        directory.add_apns_certificate(generated.certificate)
    return generated


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
