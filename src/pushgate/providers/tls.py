"""TLS settings for the provider connections.

The senders are configured with an `ssl.SSLContext` (what to trust: the system store, or the
emulators' CA added to it), because httpx, which fetches access tokens, takes one. libcurl, which
carries the pushes, cannot use a Python context: `CurlTls.from_context` reads out of it what
libcurl needs (the trusted certificates, the verification switches, the TLS versions), and a
client identity (APNs certificate auth) is handed over as PEM, since a context cannot give back
the key it was loaded with.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

__all__ = ["CurlTls", "copy_trust", "make_ssl_context"]


def make_ssl_context(ca_pem: str | None = None) -> ssl.SSLContext:
    """A client TLS context trusting `ca_pem` (e.g. the emulators' local CA), or else the
    system store."""
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    return context


def copy_trust(context: ssl.SSLContext) -> ssl.SSLContext:
    """A new client context trusting what `context` trusts (its loaded CA certificates plus the
    system store), with the same verification settings: for a second client (httpx) that must
    not share, and mutate, the first one's context."""
    copy = ssl.create_default_context()
    cas = context.get_ca_certs(binary_form=True)
    if cas:
        copy.load_verify_locations(cadata=b"".join(cas))
    copy.check_hostname = context.check_hostname
    copy.verify_mode = context.verify_mode
    return copy


@dataclass(frozen=True, slots=True)
class CurlTls:
    """What libcurl needs to know about TLS for one origin.

    `ca_pem`: the certificates to trust, PEM; None means the system store. `client_pem`: the
    client identity as PEM, the private key plus the certificate and any chain certificates
    (APNs certificate auth). `min_version`/`max_version`: as `ssl.SSLContext` has them.
    """

    ca_pem: bytes | None = None
    verify_peer: bool = True
    verify_host: bool = True
    client_pem: bytes | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.MINIMUM_SUPPORTED
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED

    @classmethod
    def from_context(
        cls, context: ssl.SSLContext | None, client_pem: bytes | None = None
    ) -> CurlTls:
        """Read once, when a client is built: later changes to `context` do not reach it.

        A context's loaded CA certificates are what it trusts, the system store's included
        when it was made by `ssl.create_default_context()` (Debian's store is one file, which
        OpenSSL loads whole), so they are handed to libcurl as they are. A context holding none
        trusts the system store through a directory, which libcurl is then pointed at."""
        if context is None:
            return cls(client_pem=client_pem)
        cas = context.get_ca_certs(binary_form=True)
        return cls(
            ca_pem=b"".join(ssl.DER_cert_to_PEM_cert(der).encode() for der in cas) or None,
            verify_peer=context.verify_mode != ssl.CERT_NONE,
            verify_host=context.check_hostname,
            client_pem=client_pem,
            min_version=context.minimum_version,
            max_version=context.maximum_version,
        )


def system_ca_locations() -> tuple[str | None, str | None]:
    """The system store as OpenSSL (and Python) find it: a bundle file and a hashed directory,
    each None where absent. The libcurl inside the pycurl wheel was built for another
    distribution's path, so it is never left to its own default."""
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile if paths.cafile and os.path.isfile(paths.cafile) else None
    capath = paths.capath if paths.capath and os.path.isdir(paths.capath) else None
    return cafile, capath
