"""Glue between the service and its built-in provider emulators (`--emulate`).

Emulator credentials are real keys (an ES256 .p8 key, an RSA service account,
an HMS app secret) stored like uploaded ones; the emulators check signatures
against whatever the database holds, so uploaded credentials work too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pushgate.api.types import Receive, Scope, Send
from pushgate.crypto import SecretBox
from pushgate.emulators.ca import LocalCA
from pushgate.emulators.control import ControlApp
from pushgate.emulators.credentials import (
    ApnsCertificate,
    ApnsKey,
    FcmAccount,
    HmsApp,
    InMemoryCredentials,
    fcm_account_from_service_account,
    generate_apns_credential,
    generate_fcm_service_account,
    generate_hms_credential,
    public_key_pem,
    rsa_private_key_pem,
)
from pushgate.emulators.runner import Emulators
from pushgate.jobs import EMULATOR, Credential
from pushgate.store import credentials as creds
from pushgate.store import partners as partner_ops
from pushgate.store.backend import ClosableDb, connect_sync
from pushgate.store.db import Db
from pushgate.store.models import PLATFORMS

log = logging.getLogger("pushgate.emulation")

EMULATED_BUNDLE_ID = "com.pushgate.emulated"
# Emulator service accounts point here; the sender substitutes the running
# emulator's token URL, whose port changes from run to run.
EMULATOR_TOKEN_URI = "emulator:fcm-token"
_RSA_META_KEY = creds.EMULATOR_RSA_META


def _shared_rsa_key(conn: Db, box: SecretBox) -> str:
    """One RSA key per data dir for emulator service accounts: generating one per
    partner costs a few hundred milliseconds, and these keys guard nothing real."""
    sealed = partner_ops.get_meta(conn, _RSA_META_KEY)
    if sealed is not None:
        return box.open(bytes.fromhex(sealed), creds.EMULATOR_RSA_CONTEXT).decode()
    pem = rsa_private_key_pem()
    partner_ops.set_meta(
        conn, _RSA_META_KEY, box.seal(pem.encode(), creds.EMULATOR_RSA_CONTEXT).hex()
    )
    return pem


def emulator_records(conn: Db, box: SecretBox) -> dict[str, tuple[dict[str, Any], str]]:
    """Fresh emulator credentials per platform, with their refs."""
    scratch = InMemoryCredentials()
    apns = generate_apns_credential(scratch, bundle_id=EMULATED_BUNDLE_ID)
    account = generate_fcm_service_account(
        scratch, token_uri=EMULATOR_TOKEN_URI, private_key_pem=_shared_rsa_key(conn, box)
    )
    hms = generate_hms_credential(scratch)
    return {
        "ios": (
            {
                "type": "apns_token",
                "key_id": apns.key_id,
                "team_id": apns.team_id,
                "bundle_id": apns.bundle_id,
                "private_key": apns.private_key_pem,
            },
            creds.apns_ref(apns.key_id, apns.team_id),
        ),
        "android": ({**account}, creds.fcm_ref(account["client_email"], account["private_key_id"])),
        "huawei": (
            {
                "type": "huawei",
                "app_id": hms.app_id,
                "client_id": hms.client_id,
                "client_secret": hms.client_secret,
            },
            creds.hms_ref(hms.client_id),
        ),
    }


def install_emulator_credentials(conn: Db, box: SecretBox, partner_id: int) -> None:
    """Validated emulator credentials for every platform the partner has none for."""
    have = {
        p
        for (p,) in conn.execute(
            "SELECT platform FROM credentials WHERE partner_id = ?", (partner_id,)
        )
    }
    missing = [p for p in PLATFORMS if p not in have]
    if not missing:
        return
    records = emulator_records(conn, box)
    for platform in missing:
        record, ref = records[platform]
        creds.put(conn, box, partner_id, platform, EMULATOR, record, ref=ref, validated=True)


EMULATE_META_KEY = "emulate"


def mark_emulated(conn: Db, box: SecretBox) -> None:
    """Remember that this data dir is served with emulators (later `partners create` then
    installs emulator credentials), and give every partner emulator credentials for the
    platforms it has none for."""
    partner_ops.set_meta(conn, EMULATE_META_KEY, "1")
    for partner in partner_ops.list_partners(conn):
        install_emulator_credentials(conn, box, partner.id)


def is_emulated(conn: Db) -> bool:
    return partner_ops.get_meta(conn, EMULATE_META_KEY) == "1"


class StoredCredentials:
    """The emulators' view of the credentials in the database (a CredentialDirectory).

    Looked up synchronously on the emulator's event loop with a connection of its
    own (SQLite's WAL readers never wait for the writer); answers are cached briefly.
    """

    def __init__(self, conn: ClosableDb, box: SecretBox, ttl: float = 5.0) -> None:
        self._conn = conn
        self._box = box
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[Credential]]] = {}
        self._certificate_refs: list[str] = []
        self._certificates: tuple[ApnsCertificate, ...] = ()

    def close(self) -> None:
        self._conn.close()

    def _find(self, ref: str) -> list[Credential]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(ref)
            if hit is not None and hit[0] > now:
                return hit[1]
            found = creds.by_ref(self._conn, self._box, ref)
            self._cache[ref] = (now + self._ttl, found)
            return found

    def apns_key(self, key_id: str, team_id: str) -> ApnsKey | None:
        for c in self._find(creds.apns_ref(key_id, team_id)):
            bundles = () if c.kind == EMULATOR else (str(c.record["bundle_id"]),)
            return ApnsKey(key_id, team_id, public_key_pem(str(c.record["private_key"])), bundles)
        return None

    def apns_certificates(self) -> Sequence[ApnsCertificate]:
        """The uploaded push certificates. Asked at every TLS handshake: the refs (the
        certificates' fingerprints) are read each time, so an upload counts at once, and the
        records opened only when they change."""
        with self._lock:
            refs = creds.refs_with_prefix(self._conn, creds.APNS_CERT_REF_PREFIX)
            if refs != self._certificate_refs:
                found: dict[str, ApnsCertificate] = {}
                for ref in refs:
                    for c in creds.by_ref(self._conn, self._box, ref):
                        try:
                            certificate = ApnsCertificate.from_pem(str(c.record["certificate"]))
                        except (KeyError, ValueError):
                            continue
                        found[certificate.fingerprint] = certificate
                self._certificate_refs, self._certificates = refs, tuple(found.values())
            return self._certificates

    def fcm_account(self, client_email: str, key_id: str) -> FcmAccount | None:
        for c in self._find(creds.fcm_ref(client_email, key_id)):
            return fcm_account_from_service_account(c.record)
        return None

    def hms_app(self, client_id: str) -> HmsApp | None:
        for c in self._find(creds.hms_ref(client_id)):
            return HmsApp(
                str(c.record["client_id"]), str(c.record["client_secret"]), str(c.record["app_id"])
            )
        return None


class StandaloneEmulators:
    """`pushgate emulate`: the three emulators, with their control routes as an ASGI app.

    With a data dir, credentials stored there (uploaded or generated for partners) are
    accepted, so a `pushgate serve` pointed at these emulators can deliver to them.
    """

    def __init__(
        self,
        data_dir: Path | None,
        host: str = "127.0.0.1",
        ports: tuple[int, int, int] = (0, 0, 0),
        apns_sandbox_port: int = 0,
        ca: LocalCA | None = None,
        database_url: str | None = None,
    ):
        self.data_dir = data_dir
        self.database_url = database_url  # with a data dir: where its credentials are
        self.host = host
        self.ports = ports
        self.apns_sandbox_port = apns_sandbox_port
        self.ca = ca  # None: a new one (emulators/ca.py)
        self.stored: StoredCredentials | None = None
        self.emulators: Emulators | None = None
        self.control: ControlApp | None = None

    async def start(self) -> Emulators:
        ca_dir = None
        if self.data_dir is not None:
            conn = connect_sync(self.data_dir, self.database_url)
            try:
                box = creds.sealing_box(conn, self.data_dir)
            except BaseException:
                conn.close()
                raise
            self.stored = StoredCredentials(conn, box)
            ca_dir = self.data_dir / "emulator-ca"
        self.emulators = Emulators(self.stored, ca=self.ca, ca_dir=ca_dir)
        apns_port, fcm_port, hms_port = self.ports
        await self.emulators.start(
            self.host,
            apns_port=apns_port,
            fcm_port=fcm_port,
            hms_port=hms_port,
            apns_sandbox_port=self.apns_sandbox_port,
        )
        self.control = self.emulators.control_app()
        log.info("provider emulators: %s", self.emulators.urls())
        return self.emulators

    async def stop(self) -> None:
        if self.emulators is not None:
            await self.emulators.stop()
        if self.stored is not None:
            self.stored.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif self.control is not None:
            await self.control(scope, receive, send)


def serve_standalone(app: StandaloneEmulators, port: int, log_level: str, log_format: str) -> None:
    """Run `app` with its control routes on `port` until SIGINT or SIGTERM."""
    import uvicorn

    from pushgate import logs

    logs.configure(log_level, log_format)
    uvicorn.run(
        app,
        host=app.host,
        port=port,
        lifespan="on",
        access_log=False,
        log_level=log_level,
        log_config=logs.uvicorn_log_config(),
    )
