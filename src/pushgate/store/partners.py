"""Partners (tenants) and their provider credentials: synchronous operations on a connection.

They run inside the store's writer thread, and directly from the CLI.
"""

from __future__ import annotations

import json
import time
from typing import Final, Literal

from pushgate import keys
from pushgate.store.db import Db
from pushgate.store.models import (
    DEFAULT_ADVANCED_RATE_LIMIT,
    DEFAULT_GFC_LIMIT,
    DEFAULT_GFC_WINDOW,
    DEFAULT_RATE_LIMIT,
    Partner,
    PartnerSecrets,
)

KeyKind = Literal["api_key", "request_token", "sdk_key"]
_HASH_COLUMN: dict[KeyKind, str] = {
    "api_key": "api_key_hash",
    "request_token": "request_token_hash",
    "sdk_key": "sdk_key_hash",
}
_PARTNER_COLUMNS = (
    "id, name, rate_limit, advanced_rate_limit, gfc_limit, gfc_window, allow_ips, timezone,"
    " quiet_start, quiet_end"
)
QUIET_HOURS_OFF: Final = "off"  # update_partner's quiet_hours: remove them


class PartnerExists(Exception):
    pass


class NoSuchPartner(Exception):
    pass


def _new_secrets(name: str) -> PartnerSecrets:
    return PartnerSecrets(
        partner=name,
        api_key=keys.new_secret(keys.API_KEY_PREFIX),
        request_token=keys.new_secret(keys.REQUEST_TOKEN_PREFIX),
        sdk_key=keys.new_secret(keys.SDK_KEY_PREFIX),
    )


def create_partner(conn: Db, name: str) -> PartnerSecrets:
    secrets = _new_secrets(name)
    now = time.time()
    created = conn.execute(
        "INSERT INTO partners (name, api_key_hash, request_token_hash, sdk_key_hash,"
        " rate_limit, advanced_rate_limit, gfc_limit, gfc_window, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        (
            name,
            keys.hash_secret(secrets.api_key),
            keys.hash_secret(secrets.request_token),
            keys.hash_secret(secrets.sdk_key),
            DEFAULT_RATE_LIMIT,
            DEFAULT_ADVANCED_RATE_LIMIT,
            DEFAULT_GFC_LIMIT,
            DEFAULT_GFC_WINDOW,
            now,
            now,
        ),
    ).fetchone()
    if created is None:  # names are unique regardless of case
        raise PartnerExists(name)
    return secrets


def rotate_keys(conn: Db, name: str) -> PartnerSecrets:
    """Replace all three of the partner's secrets with new ones, returned once.

    The old ones stop matching at once in the database; running servers stop accepting them
    when their partner cache entry expires (auth.py: 2 s). Dashboard sessions end too, since
    they were opened with an API key that may be the stolen one."""
    partner = partner_by_name(conn, name)
    if partner is None:
        raise NoSuchPartner(name)
    secrets = _new_secrets(partner.name)
    conn.execute(
        "UPDATE partners SET api_key_hash = ?, request_token_hash = ?, sdk_key_hash = ?,"
        " updated_at = ? WHERE id = ?",
        (
            keys.hash_secret(secrets.api_key),
            keys.hash_secret(secrets.request_token),
            keys.hash_secret(secrets.sdk_key),
            time.time(),
            partner.id,
        ),
    )
    conn.execute("DELETE FROM dashboard_sessions WHERE partner_id = ?", (partner.id,))
    return secrets


def update_partner(
    conn: Db,
    name: str,
    *,
    gfc_limit: int | None = None,
    gfc_window: int | None = None,
    rate_limit: int | None = None,
    advanced_rate_limit: int | None = None,
    allow_ips: list[str] | None = None,
    timezone: str | None = None,
    quiet_hours: tuple[int, int] | Literal["off"] | None = None,
) -> Partner:
    """Change what is given (None: leave it); `quiet_hours="off"` removes them."""
    changes: dict[str, object] = {
        "gfc_limit": gfc_limit,
        "gfc_window": gfc_window,
        "rate_limit": rate_limit,
        "advanced_rate_limit": advanced_rate_limit,
        "allow_ips": None if allow_ips is None else json.dumps(allow_ips),
        "timezone": timezone,
    }
    sets = {k: v for k, v in changes.items() if v is not None}
    if quiet_hours == QUIET_HOURS_OFF:
        sets["quiet_start"] = sets["quiet_end"] = None
    elif isinstance(quiet_hours, tuple):
        sets["quiet_start"], sets["quiet_end"] = quiet_hours
    sets["updated_at"] = time.time()
    assignments = ", ".join(f"{column} = ?" for column in sets)
    cursor = conn.execute(
        f"UPDATE partners SET {assignments} WHERE lower(name) = lower(?)", (*sets.values(), name)
    )
    if cursor.rowcount == 0:
        raise NoSuchPartner(name)
    partner = partner_by_name(conn, name)
    assert partner is not None
    return partner


def _partner(conn: Db, row: tuple[object, ...] | None) -> Partner | None:
    if row is None:
        return None
    pid, name, rate, adv_rate, gfc_limit, gfc_window, allow_ips, zone, quiet_start, quiet_end = row
    platforms = frozenset(
        p
        for (p,) in conn.execute(
            "SELECT platform FROM credentials WHERE partner_id = ? AND validated = 1", (pid,)
        )
    )
    return Partner(
        id=int(pid),  # type: ignore[call-overload]
        name=str(name),
        rate_limit=int(rate),  # type: ignore[call-overload]
        advanced_rate_limit=int(adv_rate),  # type: ignore[call-overload]
        gfc_limit=int(gfc_limit),  # type: ignore[call-overload]
        gfc_window=int(gfc_window),  # type: ignore[call-overload]
        allow_ips=tuple(json.loads(str(allow_ips))),
        validated_platforms=platforms,
        timezone=None if zone is None else str(zone),
        quiet_hours=(
            None if quiet_start is None or quiet_end is None else (int(quiet_start), int(quiet_end))  # type: ignore[call-overload]
        ),
    )


def partner_by_name(conn: Db, name: str) -> Partner | None:
    row = conn.execute(
        f"SELECT {_PARTNER_COLUMNS} FROM partners WHERE lower(name) = lower(?)", (name,)
    ).fetchone()
    return _partner(conn, row)


def partner_by_secret(conn: Db, kind: KeyKind, secret: str) -> Partner | None:
    digest = keys.hash_secret(secret)
    column = _HASH_COLUMN[kind]
    row = conn.execute(
        f"SELECT {_PARTNER_COLUMNS}, {column} FROM partners WHERE {column} = ?", (digest,)
    ).fetchone()
    if row is None or not keys.same_hash(bytes(row[-1]), digest):
        return None
    return _partner(conn, row[:-1])


def list_partners(conn: Db) -> list[Partner]:
    rows = conn.execute(f"SELECT {_PARTNER_COLUMNS} FROM partners ORDER BY id").fetchall()
    return [p for row in rows if (p := _partner(conn, row)) is not None]


def get_meta(conn: Db, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: Db, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
