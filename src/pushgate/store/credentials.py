"""Provider credentials per partner and platform, sealed at rest.

`record` is the credential as a JSON object (a .p8 key with its ids, a
service account, an HMS app); it is stored encrypted, bound to its partner and
platform. `ref` is the public name a provider knows it by (APNs key id and
team, service-account email and key id, HMS client id), kept in clear so the
emulators can find the key that signed a token.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag

from pushgate.crypto import SecretBox, box_for, wrong_key
from pushgate.jobs import Credential
from pushgate.providers import apns, fcm
from pushgate.store.db import Db

# The meta row holding the emulators' RSA key (emulation.py), sealed like a credential.
EMULATOR_RSA_META = "emulator_rsa_key"
EMULATOR_RSA_CONTEXT = b"emulator-rsa"
# Fail-record names of answers about the partner's configuration. Earlier versions retired
# devices on some of them (status 'invalid'); a new credential must bring those back.
CONFIGURATION_REASONS = apns.CONFIGURATION_REASONS | fcm.CONFIGURATION_REASONS


def apns_ref(key_id: str, team_id: str) -> str:
    return f"apns:{key_id}:{team_id}"


APNS_CERT_REF_PREFIX = "apns-cert:"


def apns_cert_ref(fingerprint: str) -> str:
    """An APNs push certificate, by the SHA-256 of its DER (what the APNs emulator trusts)."""
    return APNS_CERT_REF_PREFIX + fingerprint


def fcm_ref(client_email: str, key_id: str) -> str:
    return f"fcm:{client_email}:{key_id}"


def hms_ref(client_id: str) -> str:
    return f"hms:{client_id}"


def _context(partner_id: int, platform: str) -> bytes:
    return f"credential:{partner_id}:{platform}".encode()


def put(
    conn: Db,
    box: SecretBox,
    partner_id: int,
    platform: str,
    kind: str,
    record: dict[str, Any],
    *,
    ref: str | None,
    validated: bool,
    detail: str | None = None,
) -> None:
    sealed = box.seal(msgspec.json.encode(record), _context(partner_id, platform))
    conn.execute(
        "INSERT INTO credentials (partner_id, platform, kind, data, validated, detail, ref, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (partner_id, platform) DO UPDATE SET kind = excluded.kind,"
        " data = excluded.data, validated = excluded.validated, detail = excluded.detail,"
        " ref = excluded.ref, updated_at = excluded.updated_at",
        (partner_id, platform, kind, sealed, int(validated), detail, ref, time.time()),
    )
    if validated:
        revive_misconfigured_devices(conn, partner_id, platform)


def sealing_box(conn: Db, data_dir: Path) -> SecretBox:
    """The box of PUSHGATE_SECRET_KEY (or the data dir's key), once it has opened something
    this database holds sealed: a key that does not is a ConfigError (crypto.wrong_key), raised
    before anything is sealed with it or changed."""
    row = conn.execute("SELECT partner_id, platform, data FROM credentials LIMIT 1").fetchone()
    if row is not None:
        sealed, context = bytes(row[2]), _context(int(row[0]), str(row[1]))
    else:
        meta = conn.execute("SELECT value FROM meta WHERE key = ?", (EMULATOR_RSA_META,)).fetchone()
        if meta is None:
            return box_for(data_dir)  # nothing sealed yet: any key will do
        sealed, context = bytes.fromhex(str(meta[0])), EMULATOR_RSA_CONTEXT
    box = box_for(data_dir, create=False)  # a key made now could not open them
    try:
        box.open(sealed, context)
    except InvalidTag:
        raise wrong_key(data_dir) from None
    return box


def revive_misconfigured_devices(conn: Db, partner_id: int, platform: str) -> int:
    """Devices retired for a configuration answer are used again; returns how many."""
    reasons = sorted(CONFIGURATION_REASONS)
    marks = ", ".join("?" * len(reasons))
    cursor = conn.execute(
        "UPDATE devices SET status = 'active', status_reason = NULL"
        " WHERE partner_id = ? AND platform = ? AND status = 'invalid'"
        f" AND status_reason IN ({marks})",
        (partner_id, platform, *reasons),
    )
    return int(cursor.rowcount or 0)


def _credential(box: SecretBox, row: tuple[Any, ...]) -> Credential:
    partner_id, platform, kind, data, validated, detail = row
    record = msgspec.json.decode(box.open(bytes(data), _context(partner_id, platform)))
    return Credential(partner_id, platform, kind, record, bool(validated), detail)


_COLUMNS = "partner_id, platform, kind, data, validated, detail"


def get(conn: Db, box: SecretBox, partner_id: int, platform: str) -> Credential | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM credentials WHERE partner_id = ? AND platform = ?",
        (partner_id, platform),
    ).fetchone()
    return None if row is None else _credential(box, tuple(row))


def by_ref(conn: Db, box: SecretBox, ref: str) -> list[Credential]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM credentials WHERE ref = ?", (ref,)).fetchall()
    return [_credential(box, tuple(row)) for row in rows]


def refs_with_prefix(conn: Db, prefix: str) -> list[str]:
    """Every stored ref starting with `prefix` (letters, digits, `-` and `:` only), sorted.

    LIKE rather than a range: PostgreSQL's collations may order punctuation unlike bytes.
    """
    rows = conn.execute(
        "SELECT DISTINCT ref FROM credentials WHERE ref LIKE ? ORDER BY ref", (prefix + "%",)
    ).fetchall()
    return sorted(str(row[0]) for row in rows)


def mark_invalid(conn: Db, partner_id: int, platform: str, detail: str | None) -> None:
    conn.execute(
        "UPDATE credentials SET validated = 0, detail = ? WHERE partner_id = ? AND platform = ?",
        (detail, partner_id, platform),
    )


def list_public(conn: Db, partner_name: str | None = None) -> list[dict[str, Any]]:
    """What `pushgate certs list` shows: every credential's state and public name, never
    the sealed record (nothing here needs the sealing key)."""
    where, params = (
        ("WHERE lower(p.name) = lower(?)", (partner_name,)) if partner_name else ("", ())
    )
    rows = conn.execute(
        "SELECT p.name, c.platform, c.kind, c.validated, c.detail, c.ref, c.updated_at"
        f" FROM credentials c JOIN partners p ON p.id = c.partner_id {where}"
        " ORDER BY p.name, c.platform",
        params,
    ).fetchall()
    names = ("partner", "platform", "kind", "validated", "detail", "ref", "updated_at")
    return [{**dict(zip(names, row, strict=True)), "validated": bool(row[3])} for row in rows]
