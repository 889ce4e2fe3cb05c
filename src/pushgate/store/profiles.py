"""Profiles, their identifiers and devices as users and the SDK change them: synchronous
operations on a connection. What a push reads to reach them is audience.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from pushgate import attributes as attrs
from pushgate.store.audience import device_view
from pushgate.store.db import Db
from pushgate.targeting.decide import DeviceView, ProfileView
from pushgate.targeting.push import Identifier
from pushgate.targeting.users import Session, UserData
from pushgate.wire.users import Profile

_encode = msgspec.json.encode
_decode = msgspec.json.decode
_CHUNK = 400  # bound variables per statement stay far below SQLite's limit


def new_insider_id() -> str:
    return secrets.token_hex(16).upper()


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def lookup(
    conn: Db, partner_id: int, identifiers: Iterable[Identifier]
) -> dict[Identifier, list[int]]:
    """Profile ids per identifier: one indexed statement per identifier kind.

    `kind = ? AND value IN (...)` walks the primary key; a row-value
    `(kind, value) IN (VALUES ...)` would scan every identifier of the partner.
    """
    by_kind: dict[str, list[str]] = {}
    for ident in dict.fromkeys(identifiers):
        by_kind.setdefault(ident.kind, []).append(ident.value)
    found: dict[Identifier, list[int]] = {}
    for kind, values in by_kind.items():
        for chunk in _chunks(values, _CHUNK):
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT value, profile_id FROM identifiers"
                f" WHERE partner_id = ? AND kind = ? AND value IN ({marks})",
                (partner_id, kind, *chunk),
            )
            for value, profile_id in rows:
                found.setdefault(Identifier(kind, value), []).append(profile_id)
    return found


def load_profiles(conn: Db, profile_ids: Iterable[int]) -> dict[int, ProfileView]:
    ids = list(dict.fromkeys(profile_ids))
    devices: dict[int, list[DeviceView]] = {}
    profiles: dict[int, ProfileView] = {}
    for chunk in _chunks(ids, _CHUNK):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            "SELECT id, profile_id, platform, token, environment, push_optin, status,"
            f" last_active_at, attributes FROM devices WHERE profile_id IN ({marks})",
            chunk,
        ):
            devices.setdefault(row[1], []).append(device_view(row[0], *row[2:]))
        for pid, insider_id, attributes, last_active in conn.execute(
            f"SELECT id, insider_id, attributes, last_active_at FROM profiles WHERE id IN ({marks})",
            chunk,
        ):
            profiles[pid] = ProfileView(
                id=pid,
                insider_id=insider_id,
                last_active_at=last_active,
                attributes=_decode(attributes),
                devices=devices.get(pid, []),
            )
    return profiles


def find_profile(conn: Db, partner_id: int, identifiers: Sequence[Identifier]) -> int | None:
    """The most recently active profile any of the identifiers points to."""
    ids = {pid for pids in lookup(conn, partner_id, identifiers).values() for pid in pids}
    if not ids:
        return None
    marks = ",".join("?" * len(ids))
    row = conn.execute(
        f"SELECT id FROM profiles WHERE id IN ({marks}) ORDER BY last_active_at DESC, id DESC",
        list(ids),
    ).fetchone()
    return None if row is None else int(row[0])


def profile_by_insider_id(conn: Db, partner_id: int, insider_id: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM profiles WHERE partner_id = ? AND insider_id = ?", (partner_id, insider_id)
    ).fetchone()
    return None if row is None else int(row[0])


def create_profile(conn: Db, partner_id: int, now: float) -> int:
    row = conn.execute(
        "INSERT INTO profiles (partner_id, insider_id, created_at, updated_at) VALUES (?, ?, ?, ?)"
        " RETURNING id",
        (partner_id, new_insider_id(), now, now),
    ).fetchone()
    return int(row[0])


def attach_identifiers(
    conn: Db, partner_id: int, profile_id: int, identifiers: Iterable[Identifier]
) -> None:
    """Give the profile every identifier that no other profile holds yet."""
    conn.executemany(
        "INSERT INTO identifiers (partner_id, kind, value, profile_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        [(partner_id, i.kind, i.value, profile_id) for i in identifiers],
    )


def update_profile(
    conn: Db,
    profile_id: int,
    incoming: Mapping[str, Any],
    now: float,
    *,
    append_arrays: bool = True,
    active: bool = False,
) -> None:
    (current,) = conn.execute(
        "SELECT attributes FROM profiles WHERE id = ?", (profile_id,)
    ).fetchone()
    merged = merged_attributes(current, incoming, append_arrays)
    if active:
        conn.execute(
            "UPDATE profiles SET attributes = ?, updated_at = ?, last_active_at = ? WHERE id = ?",
            (merged, now, now, profile_id),
        )
    else:
        conn.execute(
            "UPDATE profiles SET attributes = ?, updated_at = ? WHERE id = ?",
            (merged, now, profile_id),
        )


def merged_attributes(current: str, incoming: Mapping[str, Any], append_arrays: bool) -> str:
    """Stored attributes (JSON) with `incoming` merged in, as stored again (store/bulk_import.py
    folds a new user's merges with it, so that both paths store the same text)."""
    return _encode(attrs.merge(_decode(current), incoming, append_arrays)).decode()


def _device_row(conn: Db, partner_id: int, device: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The stored device a session speaks for: by udid, else by platform and token."""
    columns = "id, token, platform, attributes, profile_id"
    udid = device.get("udid")
    if udid:
        row = conn.execute(
            f"SELECT {columns} FROM devices WHERE partner_id = ? AND udid = ?", (partner_id, udid)
        ).fetchone()
        if row is not None:
            return tuple(row)
    row = conn.execute(
        f"SELECT {columns} FROM devices WHERE partner_id = ? AND platform = ? AND token = ?"
        " ORDER BY last_active_at DESC",
        (partner_id, str(device["platform"]).lower(), str(device["device_token"])),
    ).fetchone()
    return None if row is None else tuple(row)


def profile_of_device(conn: Db, partner_id: int, device: Mapping[str, Any]) -> int | None:
    row = _device_row(conn, partner_id, device)
    return None if row is None else int(row[4])


def device_key(device: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """What a session's device is found by, as stored: platform, token, udid."""
    return str(device["platform"]).lower(), str(device["device_token"]), device.get("udid")


def device_fields(
    device: Mapping[str, Any],
) -> tuple[str, str, str | None, str, bool, dict[str, Any]]:
    """A session's device as stored: platform, token, udid, environment, push opt-in and the
    report attributes (shared with store/bulk_import.py's inserts of new devices)."""
    return (
        *device_key(device),
        str(device.get("environment") or "production"),
        bool(device.get("push_optin", True)),
        attrs.device_attributes(device),
    )


NEW_DEVICE_COLUMNS = (
    "partner_id, profile_id, platform, token, udid, environment, push_optin,"
    " token_registered_at, last_active_at, attributes"
)


def new_device_values(
    partner_id: int, profile_id: int, device: Mapping[str, Any], now: float
) -> tuple[Any, ...]:
    """A new device's row in the order of NEW_DEVICE_COLUMNS (also store/bulk_import.py's)."""
    platform, token, udid, environment, optin, attributes = device_fields(device)
    encoded = _encode(attributes).decode()
    return (
        partner_id,
        profile_id,
        platform,
        token,
        udid,
        environment,
        int(optin),
        now,
        now,
        encoded,
    )


def upsert_device(
    conn: Db,
    partner_id: int,
    profile_id: int,
    device: Mapping[str, Any],
    now: float,
) -> int:
    """Create or update the device (matched by udid, else by token) and make it the
    profile's most recently active one. A new token revives a dead device."""
    platform, token, udid, environment, optin, attributes = device_fields(device)
    row = _device_row(conn, partner_id, device)
    if row is None:
        inserted = conn.execute(
            f"INSERT INTO devices ({NEW_DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            new_device_values(partner_id, profile_id, device, now),
        ).fetchone()
        device_id = int(inserted[0])
    else:
        device_id, old_token, old_platform, old_attributes, _ = row
        merged = attrs.merge(_decode(old_attributes), attributes, append_arrays=False)
        new_token = token != old_token or platform != old_platform
        conn.execute(
            "UPDATE devices SET profile_id = ?, platform = ?, token = ?, udid = COALESCE(?, udid),"
            " environment = ?, push_optin = ?, last_active_at = ?, attributes = ?"
            + (
                ", status = 'active', status_reason = NULL, token_registered_at = ?"
                if new_token
                else ""
            )
            + " WHERE id = ?",
            (
                profile_id,
                platform,
                token,
                udid,
                environment,
                int(optin),
                now,
                _encode(merged).decode(),
                *((now,) if new_token else ()),
                device_id,
            ),
        )
    # A token belongs to one installation: older records carrying it are stale.
    conn.execute(
        "DELETE FROM devices WHERE partner_id = ? AND platform = ? AND token = ? AND id != ?",
        (partner_id, platform, token, device_id),
    )
    return int(device_id)


def insider_id_of(conn: Db, profile_id: int) -> str:
    (insider_id,) = conn.execute(
        "SELECT insider_id FROM profiles WHERE id = ?", (profile_id,)
    ).fetchone()
    return str(insider_id)


def add_events(conn: Db, profile_id: int, events: Sequence[Mapping[str, Any]]) -> None:
    conn.executemany(
        "INSERT INTO events (profile_id, event_name, timestamp, params) VALUES (?, ?, ?, ?)",
        [
            (
                profile_id,
                e["event_name"],
                e.get("timestamp"),
                _encode(e.get("event_params") or {}).decode(),
            )
            for e in events
        ],
    )


def read_profile(conn: Db, profile_id: int) -> Profile:
    profile = load_profiles(conn, [profile_id])[profile_id]
    identifiers: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for kind, value in conn.execute(
        "SELECT kind, value FROM identifiers WHERE profile_id = ? ORDER BY kind", (profile_id,)
    ):
        if kind in attrs.IDENTIFIER_ATTRIBUTES:
            identifiers[kind] = profile.attributes.get(attrs.PREFIX + kind, value)
        else:
            custom[kind] = value
    if custom:
        identifiers["custom"] = custom
    event_count = conn.execute(
        "SELECT count(*) FROM events WHERE profile_id = ?", (profile_id,)
    ).fetchone()[0]
    return Profile(
        insider_id=profile.insider_id,
        identifiers=identifiers,
        attributes=dict(profile.attributes),
        devices=[
            {
                **d.attributes,
                "INSIDER.platform": d.platform,
                "INSIDER.device_token": d.token,
                "registered": d.live,
            }
            for d in sorted(profile.devices, key=lambda d: -d.last_active_at)
        ],
        event_count=event_count,
    )


def delete_profile(conn: Db, profile_id: int) -> None:
    """Erase the profile; identifiers, devices and events go with it (ON DELETE CASCADE)."""
    conn.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))


def locate(
    conn: Db,
    partner_id: int,
    identifiers: Sequence[Identifier],
    insider_id: str | None,
) -> int | None:
    if insider_id:
        found = profile_by_insider_id(conn, partner_id, insider_id)
        if found is not None:
            return found
    return find_profile(conn, partner_id, identifiers) if identifiers else None


def upsert_user(conn: Db, partner_id: int, user: UserData, now: float) -> int:
    ids = user.identifiers
    profile_id = locate(conn, partner_id, ids.identifiers, ids.insider_id)
    if profile_id is None:
        profile_id = create_profile(conn, partner_id, now)
    attach_identifiers(conn, partner_id, profile_id, ids.identifiers)
    update_profile(
        conn,
        profile_id,
        {**ids.attributes, **user.attributes},
        now,
        append_arrays=user.append_arrays,
    )
    if user.events:
        add_events(conn, profile_id, user.events)
    return profile_id


def record_session(conn: Db, partner_id: int, session: Session, now: float) -> int:
    """An SDK session (contract.md): find or create the profile, attach the identifiers,
    merge the attributes, upsert the device as the most recently active one. Shared by
    `POST /api/sdk/v1/session` and `pushgate users import`; returns the profile id."""
    ids = session.identifiers
    profile_id = locate(conn, partner_id, ids.identifiers, ids.insider_id)
    if profile_id is None and not ids.identifiers:
        # An anonymous session stays with the profile its device already has.
        profile_id = profile_of_device(conn, partner_id, session.device)
    if profile_id is None:
        profile_id = create_profile(conn, partner_id, now)
    attach_identifiers(conn, partner_id, profile_id, ids.identifiers)
    update_profile(conn, profile_id, {**ids.attributes, **session.attributes}, now, active=True)
    upsert_device(conn, partner_id, profile_id, session.device, now)
    return profile_id
