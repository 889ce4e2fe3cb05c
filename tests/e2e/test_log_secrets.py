"""Secrets and personal data stay out of the logs, and secrets out of the database in clear.

One full scenario (module fixture `transcript`) runs against a real `pushgate serve --emulate`
at log level INFO, on each backend, with its stdout and stderr captured: a partner created,
provider credentials uploaded (APNs .p8, FCM service account, HMS secret; one FCM account whose
token endpoint is unreachable), SDK sessions with emails, phone numbers and tokens, pushes
through the emulators (delivered, a token APNs calls `Unregistered`, a token FCM refuses, HMS
failing with 503 until the push expires, an async request), app events, user data upsert, read
and delete, statistics, Message Center, campaign list and report, dashboard sign-in and out,
bad keys on every family (near misses of the real ones), and the keys rotated. Then none of the
keys (old and new), emails, phone numbers, device tokens, provider credentials or provider
access tokens may appear in the captured output.

Sources: docs/security.md ("Log leakage", "Credentials at rest"), contract.md ("Keys": stored
only as a hash), docs/delivery.md (credentials sealed at rest).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pushgate.crypto import box_for
from pushgate.emulators.credentials import (
    InMemoryCredentials,
    generate_apns_credential,
    generate_fcm_service_account,
    generate_hms_credential,
)
from pushgate.store import credentials as stored_credentials
from tests.support.emulated import Control, device_token, notification, rows, wait_jobs_final
from tests.support.keys import CALLS, call, near_miss
from tests.support.server import Partner, Server, new_backend_env
from tests.support.stats_api import event, get_statistics, message_center, report, send_events

PLATFORMS = ("ios", "android", "huawei")


@dataclass
class Transcript:
    server: Server
    partner: Partner
    log: str = ""
    keys: list[str] = field(default_factory=list)  # every key the partner had, and near misses
    personal: list[str] = field(default_factory=list)  # emails, phone numbers, device tokens
    credentials: list[str] = field(default_factory=list)  # private key lines, client secrets
    access_tokens: list[str] = field(default_factory=list)  # what the emulators were sent
    uploaded: dict[str, dict[str, str]] = field(default_factory=dict)  # platform -> record
    async_bodies: list[bytes] = field(default_factory=list)  # as stored, before being sent


# A copy of every stored async request body, which the server deletes once it is sent.
AUDIT_SQLITE = (
    "CREATE TABLE async_audit (body BLOB)",
    "CREATE TRIGGER async_audit AFTER INSERT ON async_requests"
    " BEGIN INSERT INTO async_audit (body) VALUES (NEW.body); END",
)
AUDIT_POSTGRES = (
    "CREATE TABLE async_audit (body BYTEA)",
    "CREATE FUNCTION async_audit_copy() RETURNS trigger LANGUAGE plpgsql AS"
    " $f$ BEGIN INSERT INTO async_audit (body) VALUES (NEW.body); RETURN NEW; END $f$",
    "CREATE TRIGGER async_audit AFTER INSERT ON async_requests"
    " FOR EACH ROW EXECUTE FUNCTION async_audit_copy()",
)


def audit_async_bodies(server: Server) -> None:
    postgres = "PUSHGATE_DATABASE_URL" in server.backend_env
    with contextlib.closing(server.db()) as conn:
        for sql in AUDIT_POSTGRES if postgres else AUDIT_SQLITE:
            conn.execute(sql)


def pem_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM: each is a piece of the key whatever a log's escaping."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def upload(partner: Partner, provider: str, body: dict[str, Any]) -> int:
    r = partner.server.client.post(
        f"/v1/settings/certificate/{provider}", json=body, headers={"X-API-KEY": partner.api_key}
    )
    return r.status_code


def sign_in_and_out(partner: Partner) -> str:
    """The dashboard session of the partner's key, used and ended; returns its token."""
    client = partner.server.client
    r = client.post("/dashboard/session", json={"api_key": partner.api_key})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"].split(";", 1)[0]
    assert client.get("/dashboard/api/campaigns", headers={"Cookie": cookie}).status_code == 200
    assert client.get("/dashboard/api/campaigns/31/report", headers={"Cookie": cookie}).is_success
    assert client.delete("/dashboard/session", headers={"Cookie": cookie}).status_code == 200
    return cookie.split("=", 1)[1]


def run_scenario(t: Transcript, control: Control) -> None:
    p, server = t.partner, t.server
    fcm_token_url = control.info()["fcm"]["token_url"]

    # Credentials: a refused one first, then a usable one per platform.
    unreachable = generate_fcm_service_account(
        InMemoryCredentials(), token_uri="https://127.0.0.1:1/token"
    )
    assert upload(p, "firebase", unreachable) == 406
    t.credentials += pem_lines(unreachable["private_key"])
    apns = generate_apns_credential(InMemoryCredentials(), bundle_id="com.example.app")
    fcm = generate_fcm_service_account(InMemoryCredentials(), token_uri=fcm_token_url)
    hms = generate_hms_credential(InMemoryCredentials())
    for provider, platform, body in [
        ("apns", "ios", apns.as_upload()),
        ("firebase", "android", fcm),
        ("huawei", "huawei", hms.as_upload()),
    ]:
        assert upload(p, provider, body) == 200
        t.uploaded[platform] = body
    t.credentials += pem_lines(apns.private_key_pem) + pem_lines(fcm["private_key"])
    t.credentials.append(hms.client_secret)

    # Users with personal data, one device each.
    users: list[tuple[str, str, str, str]] = []  # (email, phone, platform, token)
    for n, platform in enumerate([*PLATFORMS, "ios", "android", "huawei"]):
        tag = os.urandom(4).hex()
        email, phone = f"Secret.{tag}@example.com", f"+4479{n}{int(tag, 16) % 10**7:07d}"
        token = device_token(platform)
        p.session(
            {"email": email, "phone_number": phone, "uuid": f"log-{tag}"},
            platform,
            token,
            udid=f"UDID-{tag}",
            idfa=f"IDFA-{tag}",
        )
        users.append((email, phone, platform, token))
        t.personal += [email, email.lower(), phone, token]
    (_, _, _, unregistered), (_, _, _, refused), _ = users[3:]
    control.token_outcome("ios", unregistered, "Unregistered")
    control.token_outcome("android", refused, "INVALID_ARGUMENT")

    # Pushes: by email and phone, with report attributes; HMS failing until its push expires.
    control.fault("huawei", status=503, rate=1.0, retry_after=1)
    body = {
        "report_attributes": ["INSIDER.email", "INSIDER.phone_number", "INSIDER.device_token"],
        "notifications": [
            {
                **notification("x", camp_id=31, ttl=2),
                "identifiers": {"email": e, "phone_number": ph},
            }
            for e, ph, _, _ in users
        ],
    }
    r = p.push(body)
    assert r.status_code == 200 and len(r.json()["successes"]) == len(users), r.text
    audit_async_bodies(server)
    r = p.push(
        {
            "async": True,
            "notifications": [
                {**notification("x", camp_id=32), "identifiers": {"email": users[0][0]}}
            ],
        }
    )
    assert r.status_code == 202, r.text
    wait_jobs_final(p, len(users) + 1, timeout=30)
    t.async_bodies = [bytes(r["body"]) for r in rows(server, "SELECT body FROM async_audit")]
    control.fault("huawei")
    t.access_tokens += sorted(
        {
            str(d["headers"]["authorization"]).split(" ", 1)[1]
            for d in control.deliveries()
            if d["token"] in {u[3] for u in users}
        }
    )

    # App events, user data, reads.
    insider_id = p.session({"email": users[0][0]}, "ios", users[0][3])
    assert send_events(p, insider_id, [event("push_delivered", 31)]).status_code == 200
    extra_email, extra_phone = f"upsert.{os.urandom(3).hex()}@example.com", "+447700900123"
    t.personal += [extra_email, extra_phone]
    r = p.user_api(
        "upsert",
        {
            "users": [
                {
                    "identifiers": {"email": extra_email, "phone_number": extra_phone},
                    "attributes": {"name": "Ada", "email_optin": True},
                }
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert p.user_api("profile", {"identifiers": {"email": extra_email}}).status_code == 200
    assert (
        p.user_api(
            "upsert",
            {"users": [{"identifiers": {"email": "not-an-email"}, "attributes": {"a": 1}}]},
        ).status_code
        == 200
    )
    assert p.user_api("delete", {"identifiers": {"phone_number": extra_phone}}).json() == {}
    assert get_statistics(p).status_code == 200
    assert message_center(p, {"identifiers": {"Email": users[0][0]}}).status_code == 200
    assert message_center(p, {"identifiers": {"Phone": users[1][1]}}).status_code == 200
    assert report(p, 31).status_code == 200
    t.keys.append(sign_in_and_out(p))

    # Bad keys: near misses of the real ones on every family, and a malformed body.
    for name, (kind, _) in CALLS.items():
        wrong = near_miss(getattr(p, kind))
        t.keys.append(wrong)
        assert call(name, p, wrong).status_code in (401, 403)
    r = server.client.post(
        "/api/v2/notification/user",
        content=b'{"api_key": "%s", "notifications": [{"identifiers": {"email": "%s"'
        % (p.api_key.encode(), users[0][0].encode()),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400

    # The keys rotated: the old and the new ones are secrets alike.
    out = server.cli("partners", "rotate-keys", p.name, "--data-dir", str(server.data_dir))
    rotated = json.loads(out.stdout)
    t.keys += [p.api_key, p.request_token, p.sdk_key]
    t.keys += [rotated["api_key"], rotated["request_token"], rotated["sdk_key"]]


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Transcript]:
    data_dir = tmp_path_factory.mktemp("logs") / "data"
    server = Server(
        data_dir, backend_env=new_backend_env(backend), env={"PUSHGATE_LOG_LEVEL": "info"}
    )
    server.start()
    control = Control(server.base_url)
    t = Transcript(server, server.create_partner())
    try:
        run_scenario(t, control)
    finally:
        control.close()
        server.stop()  # its last lines are written, and the database left for the reads here
    assert server.log_path is not None
    t.log = server.log_path.read_text(errors="replace")
    yield t


def leaks(log: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s and s in log]


def test_the_log_is_captured_at_info(transcript: Transcript) -> None:
    """The other assertions mean something only if INFO lines reach the capture."""
    assert "Application startup complete" in transcript.log, transcript.log[:2000]


def test_no_key_appears_in_the_log(transcript: Transcript) -> None:
    assert len(transcript.keys) >= 3 + 3 + 10 + 1
    assert leaks(transcript.log, transcript.keys) == []


def test_no_email_phone_number_or_device_token_appears_in_the_log(transcript: Transcript) -> None:
    assert leaks(transcript.log, transcript.personal) == []


def test_no_provider_credential_or_access_token_appears_in_the_log(transcript: Transcript) -> None:
    assert transcript.access_tokens, "the emulators saw no authorised request"
    assert leaks(transcript.log, transcript.credentials + transcript.access_tokens) == []


# ---- at rest ----


def test_provider_credentials_are_sealed_in_the_database(transcript: Transcript) -> None:
    t = transcript
    found = rows(
        t.server,
        "SELECT c.platform, c.data, c.ref, c.detail FROM credentials c JOIN partners p"
        " ON p.id = c.partner_id WHERE p.name = ?",
        t.partner.name,
    )
    assert sorted(r["platform"] for r in found) == sorted(PLATFORMS)
    box = box_for(t.server.data_dir)
    for row in found:
        raw = b"".join(
            bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row.values()
        )
        assert leaks(raw.decode("latin-1"), t.credentials) == [], row["platform"]
        sealed = bytes(row["data"])
        assert sealed[:1] == b"\x01" and b"private_key" not in sealed and b"secret" not in sealed
        # Sealed, not merely encoded: the data dir's key opens it, bound to partner and platform.
        with contextlib.closing(t.server.db()) as conn:
            pid = conn.execute(
                "SELECT id FROM partners WHERE name = ?", (t.partner.name,)
            ).fetchone()[0]
            record = stored_credentials.get(conn, box, int(pid), row["platform"])
        assert record is not None
        for name, value in t.uploaded[row["platform"]].items():
            opened = record.record[name]
            assert (
                pem_lines(opened) == pem_lines(value) if name == "private_key" else opened == value
            )


def test_an_async_request_is_stored_without_its_api_key(transcript: Transcript) -> None:
    (stored,) = transcript.async_bodies
    body = json.loads(stored)

    assert [n["camp_id"] for n in body["notifications"]] == [32]
    assert leaks(stored.decode(), transcript.keys) == []
    assert body.get("api_key") is None


def test_no_key_or_credential_is_in_the_sqlite_files_in_clear(
    transcript: Transcript, backend: str
) -> None:
    """The whole database file as bytes, deleted rows included (an async request's stored body
    is deleted once sent): keys are stored as hashes only, credentials sealed."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL's files belong to its server; its rows are read above")
    data = b"".join(
        path.read_bytes() for path in Path(transcript.server.data_dir).glob("pushgate.sqlite3*")
    ).decode("latin-1")
    assert leaks(data, transcript.keys + transcript.credentials) == []
