"""Who a push reaches: its identifiers resolved to profiles and their devices, in one statement
(the send's hot read; store.py runs it inside the send's unit of work)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from pushgate.store.db import Db
from pushgate.targeting.decide import DeviceView, ProfileView
from pushgate.targeting.push import Identifier

_decode = msgspec.json.decode


def device_view(
    device_id: int,
    platform: str,
    token: str,
    environment: str,
    push_optin: Any,
    status: str,
    last_active_at: float,
    attributes: str | bytes,
) -> DeviceView:
    """A `devices` row (from `platform` on, in the table's order) as the rules see it."""
    return DeviceView(
        id=device_id,
        platform=platform,
        token=token,
        environment=environment,
        push_optin=bool(push_optin),
        live=status == "active",
        last_active_at=last_active_at,
        attributes=_decode(attributes),
    )


def resolve(
    conn: Db, partner_id: int, identifiers: Iterable[Identifier]
) -> tuple[dict[Identifier, list[int]], dict[int, ProfileView]]:
    """Profiles (with their devices) per identifier, in one statement.

    One `kind = ? AND value IN (...)` search of the primary key per identifier kind,
    joined by UNION ALL (an OR of such terms would make SQLite scan the partner's
    identifiers).
    """
    by_kind: dict[str, list[str]] = {}
    for ident in dict.fromkeys(identifiers):
        by_kind.setdefault(ident.kind, []).append(ident.value)
    matches: dict[Identifier, list[int]] = {}
    profiles: dict[int, ProfileView] = {}
    if not by_kind:
        return matches, profiles
    searches: list[str] = []
    params: list[Any] = []
    for kind, values in by_kind.items():
        searches.append(
            "SELECT kind, value, profile_id FROM identifiers WHERE partner_id = ? AND kind = ?"
            f" AND value IN ({','.join('?' * len(values))})"
        )
        params += (partner_id, kind, *values)
    rows = conn.execute(
        f"WITH m AS ({' UNION ALL '.join(searches)})"
        " SELECT m.kind, m.value, p.id, p.insider_id, p.attributes, p.last_active_at,"
        " d.id, d.platform, d.token, d.environment, d.push_optin, d.status, d.last_active_at,"
        " d.attributes FROM m JOIN profiles p ON p.id = m.profile_id"
        " LEFT JOIN devices d ON d.profile_id = p.id",
        params,
    )
    devices: dict[int, dict[int, DeviceView]] = {}
    for kind, value, pid, insider_id, attributes, last_active, did, *device in rows:
        ident = Identifier(kind, value)
        found = matches.setdefault(ident, [])
        if pid not in found:
            found.append(pid)
        if pid not in profiles:
            devices[pid] = {}
            profiles[pid] = ProfileView(
                id=pid,
                insider_id=insider_id,
                last_active_at=last_active,
                attributes=_decode(attributes),
                devices=[],
            )
        if did is not None and did not in devices[pid]:
            view = device_view(did, *device)
            devices[pid][did] = view
            profiles[pid].devices.append(view)  # type: ignore[attr-defined]
    return matches, profiles
