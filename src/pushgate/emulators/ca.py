"""A local certificate authority and the server certificate the emulators present.

The CA and its server certificate (for 127.0.0.1, localhost and ::1) are generated in memory; a
caller that needs files (``REQUESTS_CA_BUNDLE``, ``ssl.SSLContext.load_cert_chain``) asks for them
to be written under a directory of its choice.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("pushgate.emulators.ca")

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
ALPN_PROTOCOLS: tuple[str, ...] = ("h2", "http/1.1")


@dataclass(frozen=True, slots=True)
class CAFiles:
    """Where `LocalCA.write` put the PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True, slots=True)
class LocalCA:
    """A self-signed CA and one server certificate it issued (all PEM text)."""

    ca_pem: str
    ca_key_pem: str
    server_cert_pem: str
    server_key_pem: str
    hosts: tuple[str, ...]

    @classmethod
    def generate(
        cls,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        *,
        valid_days: int = 825,
        common_name: str = "pushgate emulator CA",
    ) -> LocalCA:
        now = datetime.datetime.now(datetime.UTC)
        not_before = now - datetime.timedelta(minutes=5)
        not_after = now + datetime.timedelta(days=valid_days)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )

        server_key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        server_cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "")])
            )
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
            ca_key_pem=_private_pem(ca_key),
            server_cert_pem=server_cert.public_bytes(serialization.Encoding.PEM).decode(),
            server_key_pem=_private_pem(server_key),
            hosts=tuple(hosts),
        )

    def write(self, directory: str | os.PathLike[str]) -> CAFiles:
        """Write the CA certificate and the server certificate and key under `directory`."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        files = CAFiles(
            ca_cert=folder / "emulator-ca.pem",
            server_cert=folder / "emulator-server.pem",
            server_key=folder / "emulator-server.key",
        )
        files.ca_cert.write_text(self.ca_pem)
        files.server_cert.write_text(self.server_cert_pem)
        fd = os.open(files.server_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.server_key_pem)
        return files

    def server_context(self, alpn: Sequence[str] = ALPN_PROTOCOLS) -> ssl.SSLContext:
        """A server-side TLS context presenting the server certificate.

        With ALPN offered the client gets `h2` if it supports it (else `http/1.1`); a client that
        offers no ALPN is still served (the emulator then sniffs the protocol).
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="pushgate-emulator-tls-") as tmp:
            files = self.write(tmp)
            context.load_cert_chain(files.server_cert, files.server_key)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context

    def client_context(self, alpn: Sequence[str] = ()) -> ssl.SSLContext:
        """A client-side TLS context that trusts this CA (and only it)."""
        context = ssl.create_default_context(cadata=self.ca_pem)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context


class ClientCertificateTrust:
    """Server TLS for the APNs emulator: ask for a client certificate and accept exactly the
    ones `accepted` lists (DER), as APNs does with the push certificates Apple issued.

    The certificate is optional (token-auth clients send none). One the list does not hold
    fails the handshake. Each accepted certificate is its own trust anchor (partial chains
    allowed), so neither self-signed nor locally issued ones need their issuer.

    The list is asked at every handshake, from the SNI callback (which OpenSSL calls before
    the client's certificate arrives, with or without SNI): the connection is switched to a
    context trusting exactly that list, rebuilt only when the list changes.
    """

    def __init__(
        self,
        ca: LocalCA,
        accepted: Callable[[], Iterable[bytes]],
        alpn: Sequence[str] = ALPN_PROTOCOLS,
    ) -> None:
        self.ca = ca
        self.accepted = accepted
        self.alpn = tuple(alpn)
        self._current: tuple[frozenset[bytes], ssl.SSLContext] | None = None
        self.context = self._build(frozenset())
        """The context to listen with."""
        self.context.sni_callback = self._on_client_hello

    def _build(self, anchors: frozenset[bytes]) -> ssl.SSLContext:
        context = self.ca.server_context(self.alpn)
        # The verify mode and flags stay those of the listening context after the switch;
        # the trust store is the new context's.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if anchors:
            context.load_verify_locations(cadata=b"".join(sorted(anchors)))
        return context

    def context_for(self, anchors: frozenset[bytes]) -> ssl.SSLContext:
        current = self._current
        if current is None or current[0] != anchors:
            current = (anchors, self._build(anchors))
            self._current = current
        return current[1]

    def _on_client_hello(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: object
    ) -> None:
        try:
            anchors = frozenset(self.accepted())
            ssl_object.context = self.context_for(anchors)
        except Exception:  # an exception here would fail the handshake with no clue
            log.exception("listing the accepted client certificates failed")


def _private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
