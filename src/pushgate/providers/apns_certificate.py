"""APNs certificate auth: the `.p12` identity (pure parts, and loading it into TLS).

Apple's push certificates name the app's bundle id in the subject's UID
(OID 0.9.2342.19200300.100.1.1); the certificate and its key are the TLS client
identity, and no `authorization` header is sent (providers.md, "Corrections and
additions").
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    pkcs12,
)
from cryptography.x509.oid import NameOID

from pushgate.providers.errors import CredentialError
from pushgate.providers.tls import copy_trust, make_ssl_context


@dataclass(frozen=True, slots=True)
class ApnsIdentity:
    """The private key and certificate of a `.p12`, with any chain certificates it carries."""

    key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def bundle_id(self) -> str | None:
        """The subject's UID, where Apple names the bundle id; None when there is none."""
        return certificate_uid(self.certificate)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (DER), lower-case hex."""
        return hashlib.sha256(self.certificate.public_bytes(Encoding.DER)).hexdigest()

    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(Encoding.PEM).decode()

    def pem(self) -> bytes:
        """Key, certificate and chain as one PEM (what `load_cert_chain` reads)."""
        key = self.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return key + b"".join(c.public_bytes(Encoding.PEM) for c in (self.certificate, *self.chain))


def certificate_uid(certificate: x509.Certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.USER_ID)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


def load_p12(p12: str, password: str) -> ApnsIdentity:
    """The identity in a base64 `.p12`. Raises `CredentialError` with a message fit for the
    partner: not base64, a wrong password, no key or no certificate inside."""
    try:
        blob = base64.b64decode("".join(p12.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CredentialError("'p12' is not base64 (send the .p12 file base64-encoded)") from None
    if not blob:
        raise CredentialError("'p12' is empty")
    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(
            blob, password.encode() if password else None
        )
    except ValueError:
        # cryptography gives one error for both: the file decrypts with the right password.
        if password:
            raise CredentialError(
                "the .p12 cannot be opened: the password is wrong or the file is damaged"
            ) from None
        raise CredentialError(
            "the .p12 cannot be opened: it needs a password, or the file is damaged"
        ) from None
    except Exception as exc:  # an unsupported algorithm inside the file
        raise CredentialError(f"the .p12 cannot be read: {type(exc).__name__}") from None
    if key is None or certificate is None:
        raise CredentialError("the .p12 must hold the private key and the certificate")
    return ApnsIdentity(key, certificate, tuple(chain or ()))


def _spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        raise CredentialError("the .p12's key type is not supported")
    data: bytes = public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return data


def check_identity(
    identity: ApnsIdentity, bundle_id: str, now: datetime.datetime | None = None
) -> None:
    """What can be checked without Apple: the key belongs to the certificate, the certificate
    is valid now, and its UID (where it has one) is `bundle_id`. Raises `CredentialError`."""
    public = getattr(identity.key, "public_key", None)
    if public is None or _spki(public()) != _spki(identity.certificate.public_key()):
        raise CredentialError("the .p12's private key does not belong to its certificate")
    moment = now or datetime.datetime.now(datetime.UTC)
    not_after = identity.certificate.not_valid_after_utc
    if not_after < moment:
        raise CredentialError(f"the certificate expired on {not_after.isoformat()}")
    not_before = identity.certificate.not_valid_before_utc
    if not_before > moment:
        raise CredentialError(f"the certificate is not valid before {not_before.isoformat()}")
    uid = identity.bundle_id
    if uid is not None and uid != bundle_id:
        raise CredentialError(
            f"the certificate is for bundle id {uid!r}, not {bundle_id!r} (its subject's UID)"
        )


def client_context(identity: ApnsIdentity, trust: ssl.SSLContext | None) -> ssl.SSLContext:
    """A new client TLS context presenting `identity`, trusting what `trust` trusts (None: the
    system store). A new one each time: the identity must not leak into a shared context.

    `ssl` loads identities from files only: the PEM exists for the length of the call, in a
    private temporary directory.
    """
    context = copy_trust(trust) if trust is not None else make_ssl_context()
    context.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory(prefix="pushgate-apns-") as directory:
        path = os.path.join(directory, "identity.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(identity.pem())
        try:
            context.load_cert_chain(path)
        except ssl.SSLError as exc:
            raise CredentialError(f"the .p12's key cannot be used for TLS: {exc.reason}") from None
    return context
