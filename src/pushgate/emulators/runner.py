"""Run the three emulators together, sharing one state and one local CA.

    emulators = Emulators()              # or Emulators(credentials=<pushgate's directory>)
    await emulators.start()              # free ports on 127.0.0.1, TLS with the local CA
    emulators.info()                     # the body of GET /emulator/v1/info
    app = emulators.control_app()        # the control routes (ASGI)
    await emulators.stop()

Every server speaks HTTP/2 (ALPN `h2`, or prior knowledge without ALPN) and HTTP/1.1 on the same
port. With `tls=False` they serve cleartext instead (h2c with prior knowledge, and HTTP/1.1).

APNs listens twice, as Apple's two hosts: production (`apns_url`) and sandbox (`apns_sandbox_url`).
Both ask for a TLS client certificate (certificate auth) and accept the push certificates the
credential directory lists, including those made by `generate_apns_certificate`.
With `hms_http2=False` the HMS server speaks HTTP/1.1 only (ALPN `http/1.1`; the HTTP/2 preface
is refused), which is what a client must expect of a server that does not select `h2`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from pushgate.emulators import apns, fcm, hms
from pushgate.emulators.apns import ApnsEmulator
from pushgate.emulators.ca import ClientCertificateTrust, LocalCA
from pushgate.emulators.control import ControlApp
from pushgate.emulators.credentials import (
    ApnsCredential,
    ApnsPushCertificate,
    CredentialDirectory,
    HmsCredential,
    generate_apns_certificate,
    generate_apns_credential,
    generate_fcm_service_account,
    generate_hms_credential,
)
from pushgate.emulators.fcm import FcmEmulator
from pushgate.emulators.hms import HmsEmulator
from pushgate.emulators.server import HttpServer
from pushgate.emulators.state import EmulatorState


class Emulators:
    def __init__(
        self,
        credentials: CredentialDirectory | None = None,
        *,
        state: EmulatorState | None = None,
        ca: LocalCA | None = None,
        ca_dir: str | os.PathLike[str] | None = None,
        tls: bool = True,
        clock: Callable[[], float] | None = None,
        hms_http2: bool = True,
    ) -> None:
        """`credentials`: a directory asked besides the generated credentials (pushgate's own).

        `state`: share an existing `EmulatorState` (then give it the credentials and clock).

        `ca_dir`: where to write the CA and server certificate as files (`ca_file` then points at
        the CA PEM, for `REQUESTS_CA_BUNDLE` or `SSL_CERT_FILE`); otherwise they stay in memory.
        """
        if state is not None and (credentials is not None or clock is not None):
            raise ValueError("pass credentials and clock to the EmulatorState, not beside it")
        if state is None:
            state = (
                EmulatorState(credentials)
                if clock is None
                else EmulatorState(credentials, clock=clock)
            )
        self.state = state
        self.ca = ca or LocalCA.generate()
        self.ca_file: Path | None = self.ca.write(ca_dir).ca_cert if ca_dir is not None else None
        self.tls = tls
        self.apns = ApnsEmulator(self.state)
        self.fcm = FcmEmulator(self.state)
        self.hms = HmsEmulator(self.state)
        context = self.ca.server_context() if tls else None
        self.apns_trust = (
            ClientCertificateTrust(self.ca, self._accepted_certificates) if tls else None
        )
        apns_context = self.apns_trust.context if self.apns_trust is not None else None
        self.apns_server = HttpServer(
            self.apns.handler("production"),
            ssl_context=apns_context,
            initial_max_concurrent_streams=apns.INITIAL_STREAMS,
            name="apns-emulator",
        )
        self.apns_sandbox_server = HttpServer(
            self.apns.handler("sandbox"),
            ssl_context=apns_context,
            initial_max_concurrent_streams=apns.INITIAL_STREAMS,
            name="apns-sandbox-emulator",
        )
        self.fcm_server = HttpServer(self.fcm.handle, ssl_context=context, name="fcm-emulator")
        hms_context = context
        if tls and not hms_http2:
            hms_context = self.ca.server_context(alpn=("http/1.1",))
        self.hms_server = HttpServer(
            self.hms.handle, ssl_context=hms_context, name="hms-emulator", http2=hms_http2
        )
        self.started = False

    def _accepted_certificates(self) -> list[bytes]:
        return [c.der for c in self.state.credentials.apns_certificates()]

    @property
    def apns_url(self) -> str:
        """APNs production (api.push.apple.com)."""
        return self.apns_server.url

    @property
    def apns_sandbox_url(self) -> str:
        """APNs sandbox (api.sandbox.push.apple.com)."""
        return self.apns_sandbox_server.url

    @property
    def fcm_url(self) -> str:
        return self.fcm_server.url

    @property
    def fcm_token_url(self) -> str:
        return self.fcm_server.url + fcm.TOKEN_PATH

    @property
    def hms_url(self) -> str:
        return self.hms_server.url

    @property
    def hms_token_url(self) -> str:
        return self.hms_server.url + hms.TOKEN_PATH

    async def start(
        self,
        host: str = "127.0.0.1",
        *,
        apns_port: int = 0,
        fcm_port: int = 0,
        hms_port: int = 0,
        apns_sandbox_port: int = 0,
    ) -> None:
        """Listen on `host`, on free ports unless given."""
        try:
            await self.apns_server.start(host, apns_port)
            await self.apns_sandbox_server.start(host, apns_sandbox_port)
            await self.fcm_server.start(host, fcm_port)
            await self.hms_server.start(host, hms_port)
        except BaseException:
            await self.stop()
            raise
        self.fcm.token_url = self.fcm_token_url
        self.started = True

    async def stop(self) -> None:
        for server in (
            self.apns_server,
            self.apns_sandbox_server,
            self.fcm_server,
            self.hms_server,
        ):
            await server.stop()
        self.started = False

    async def __aenter__(self) -> Emulators:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def info(self) -> dict[str, Any]:
        """Where each emulator listens (the body of `GET /emulator/v1/info`)."""
        return {
            "apns": {
                "url": self.apns_url,
                "sandbox_url": self.apns_sandbox_url,
                "ca_pem": self.ca.ca_pem,
            },
            "fcm": {"url": self.fcm_url, "token_url": self.fcm_token_url},
            "hms": {"url": self.hms_url, "token_url": self.hms_token_url},
            "ca_pem": self.ca.ca_pem,
        }

    def urls(self) -> dict[str, str]:
        """Every emulator's base URL by name, for a log line."""
        return {
            "apns": self.apns_url,
            "apns_sandbox": self.apns_sandbox_url,
            "fcm": self.fcm_url,
            "hms": self.hms_url,
        }

    def control_app(self, prefix: str = "") -> ControlApp:
        return ControlApp(self.state, self.info, prefix)

    # fresh emulator credentials, registered with this state

    def generate_apns_credential(self, bundle_id: str = "com.example.app") -> ApnsCredential:
        return generate_apns_credential(self.state.generated, bundle_id=bundle_id)

    def generate_apns_certificate(
        self, bundle_id: str = "com.example.app", **options: Any
    ) -> ApnsPushCertificate:
        """A push certificate (.p12) that the APNs emulator accepts; options as
        `credentials.generate_apns_certificate` (self-signed unless `ca=emulators.ca`: the
        emulator trusts each certificate itself, not its issuer)."""
        return generate_apns_certificate(self.state.generated, bundle_id=bundle_id, **options)

    def generate_fcm_service_account(
        self, project_id: str | None = None, private_key_pem: str | None = None
    ) -> dict[str, str]:
        """A service-account JSON whose token_uri is this FCM emulator's (needs `start` first).

        `private_key_pem`: an RSA key to reuse instead of generating one.
        """
        if not self.started:
            raise RuntimeError("start the emulators first: the token URL names their port")
        return generate_fcm_service_account(
            self.state.generated,
            token_uri=self.fcm_token_url,
            project_id=project_id,
            private_key_pem=private_key_pem,
        )

    def generate_hms_credential(self) -> HmsCredential:
        return generate_hms_credential(self.state.generated)
