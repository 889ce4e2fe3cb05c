"""The local CA: a server certificate for the loopback names, trusted through the CA PEM only."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from cryptography import x509

from pushgate.emulators import LocalCA


def test_the_server_certificate_names_every_loopback_address() -> None:
    ca = LocalCA.generate()

    cert = x509.load_pem_x509_certificate(ca.server_cert_pem.encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


def test_the_server_certificate_is_issued_by_the_ca() -> None:
    ca = LocalCA.generate()

    cert = x509.load_pem_x509_certificate(ca.server_cert_pem.encode())
    root = x509.load_pem_x509_certificate(ca.ca_pem.encode())

    cert.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_written_files_hold_the_ca_and_a_private_server_key(tmp_path: Path) -> None:
    ca = LocalCA.generate()

    files = ca.write(tmp_path / "tls")

    assert files.ca_cert.read_text() == ca.ca_pem
    assert files.server_key.stat().st_mode & 0o077 == 0
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "pushgate emulator CA"),),)


def test_each_generated_ca_is_distinct() -> None:
    assert LocalCA.generate().ca_pem != LocalCA.generate().ca_pem
