"""New users of a `pushgate users import` batch, stored set-based: a few statements for the
whole batch instead of about ten per row.

The per-row path (`profiles.upsert_user`, then `profiles.record_session` per device) looks
each row's user up, and on PostgreSQL every statement is a round trip. Most rows of an import
are users nothing knows yet: a row qualifies here when every key the per-row path would look
it up by (its identifiers, its insider_id, each device's udid and platform + token) matches
nothing stored and no other row of the batch, which a few searches per batch tell. For such a
row the per-row path can only create one profile, attach the identifiers, fold the attributes
in, append the events and insert each device as new; `insert_new` writes exactly those rows,
with the same values, for many rows at once. Every other row is the per-row path's
(toolbox/sinks.py keeps the file's order).

Plain functions of a `Db`, in the SQL SQLite and PostgreSQL share.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from pushgate.store import profiles
from pushgate.store.db import Db, insert_rows
from pushgate.targeting.users import Session, UserData

_encode = msgspec.json.encode
# Values per search statement: a default batch of 1,000 rows takes one per kind of key.
_SEARCH_VALUES = 1024
# Value lists are padded to a multiple of this, so that search texts come in few shapes:
# the connection caches every distinct one (postgres.translate).
_STEP = 64

# What the per-row path finds a row's profile or devices by: ("identifier", kind, value),
# ("insider_id", "", id), ("udid", "", udid) or ("token", platform, token).
Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Entry:
    """A checked row as the store takes it (toolbox/rows.py `Checked`)."""

    user: UserData | None
    sessions: Sequence[Session]


def select_new(conn: Db, partner_id: int, entries: Sequence[Entry]) -> list[bool]:
    """Which entries are new users that share no key with any other entry or stored row."""
    examined = [_examine(e) for e in entries]
    seen = Counter(k for keys, _ in examined for k in keys)
    candidates = [
        keys if plain and all(seen[k] == 1 for k in keys) else None for keys, plain in examined
    ]
    stored = _stored(conn, partner_id, (k for keys in candidates if keys for k in keys))
    return [keys is not None and stored.isdisjoint(keys) for keys in candidates]


def _examine(entry: Entry) -> tuple[list[Key], bool]:
    """Every key the per-row path would look the row up by, or store for it (of any row: one
    that goes per row may still meet a new user's key, as a device without identifiers is
    found by its token); and whether the set-based path may take the row should its keys be
    free. It may not take one without identifiers (the per-row path would look for its
    device's profile), nor one whose devices share a key (the second session updates the
    first one's device), nor one with an empty udid (stored, but never looked up by), nor one
    whose parts name different users (a guard: they come from one document)."""
    parts = ([entry.user.identifiers] if entry.user else []) + [
        s.identifiers for s in entry.sessions
    ]
    keys: list[Key] = [("identifier", i.kind, i.value) for p in parts for i in p.identifiers]
    keys += [("insider_id", "", p.insider_id) for p in parts if p.insider_id is not None]
    devices: list[Key] = []
    for session in entry.sessions:
        platform, token, udid = profiles.device_key(session.device)
        if udid is not None:
            devices.append(("udid", "", str(udid)))
        devices.append(("token", platform, token))
    plain = (
        bool(parts)
        and bool(parts[0].identifiers)
        and all(p == parts[0] for p in parts[1:])
        and len(set(devices)) == len(devices)
        and all(s.device.get("udid") != "" for s in entry.sessions)
    )
    return list(dict.fromkeys(keys)) + devices, plain


# Per key tag: whether a stored row holds the value `v.column1`, and whether the search takes
# the kind, or platform, as a bound variable. Each is an equality on every column of an index
# (identifiers' primary key, profiles' insider_id, devices_udid, devices_token).
_SEARCHES = {
    "identifier": (
        "SELECT 1 FROM identifiers WHERE partner_id = ? AND kind = ? AND value = v.column1",
        True,
    ),
    "insider_id": ("SELECT 1 FROM profiles WHERE partner_id = ? AND insider_id = v.column1", False),
    "udid": ("SELECT 1 FROM devices WHERE partner_id = ? AND udid = v.column1", False),
    "token": (
        "SELECT 1 FROM devices WHERE partner_id = ? AND platform = ? AND token = v.column1",
        True,
    ),
}


def _stored(conn: Db, partner_id: int, keys: Iterable[Key]) -> set[Key]:
    """The keys some stored row holds: one statement per kind of key (and per
    `_SEARCH_VALUES` values), usually six for a batch.

    Each value is looked up by a subquery of its own in the select list, which both databases
    run as one index lookup per value whatever they know of the tables. `value IN (...)`, or
    an EXISTS (which PostgreSQL may turn into one hash of the table), leaves the choice to the
    planner, and PostgreSQL without statistics (a table filling faster than autovacuum
    analyzes it, or autovacuum off) reads every identifier of the kind instead.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for tag, kind, value in keys:
        groups.setdefault((tag, kind), []).append(value)
    found: set[Key] = set()
    for (tag, kind), values in groups.items():
        search, with_kind = _SEARCHES[tag]
        fixed = [partner_id, *([kind] if with_kind else [])]
        for start in range(0, len(values), _SEARCH_VALUES):
            chunk = values[start : start + _SEARCH_VALUES]
            # Padded with its last value to a multiple of _STEP: a repeat finds nothing more.
            size = -(-len(chunk) // _STEP) * _STEP
            padded = [*chunk, *[chunk[-1]] * (size - len(chunk))]
            rows = conn.execute(
                f"SELECT v.column1, ({search} LIMIT 1)"
                f" FROM (VALUES {', '.join(['(?)'] * size)}) AS v",
                [*fixed, *padded],
            )
            found.update((tag, kind, str(value)) for value, held in rows if held is not None)
    return found


def insert_new(conn: Db, partner_id: int, entries: Sequence[Entry], now: float) -> list[int]:
    """Store entries that `select_new` chose, as the per-row path would create them, in
    their order (ids rise in that order, as they would row by row); their profile ids."""
    if not entries:
        return []
    ids = _insert_profiles(conn, partner_id, entries, now)
    pairs = list(zip(entries, ids, strict=True))
    insert_rows(
        conn,
        "INSERT INTO identifiers (partner_id, kind, value, profile_id)",
        [(partner_id, kind, value, pid) for e, pid in pairs for kind, value in _idents(e)],
    )
    insert_rows(
        conn,
        f"INSERT INTO devices ({profiles.NEW_DEVICE_COLUMNS})",
        [
            profiles.new_device_values(partner_id, pid, s.device, now)
            for e, pid in pairs
            for s in e.sessions
        ],
    )
    insert_rows(
        conn,
        "INSERT INTO events (profile_id, event_name, timestamp, params)",
        [_event(pid, event) for e, pid in pairs for event in _events(e)],
    )
    return ids


def _insert_profiles(conn: Db, partner_id: int, entries: Sequence[Entry], now: float) -> list[int]:
    """The profiles, and their ids read back by their random insider_ids from the range of
    ids the inserts took (ids only rise: toolbox/sinks.py counts on it too)."""
    insider_ids = [profiles.new_insider_id() for _ in entries]
    (low,) = conn.execute(_TOP).fetchone()
    insert_rows(
        conn,
        "INSERT INTO profiles (partner_id, insider_id, attributes, created_at, updated_at,"
        " last_active_at)",
        [
            (partner_id, insider_id, _attributes(e), now, now, now if e.sessions else 0.0)
            for e, insider_id in zip(entries, insider_ids, strict=True)
        ],
    )
    (high,) = conn.execute(_TOP).fetchone()
    # A concurrent writer's profiles may be in the range: the insider_id tells ours apart.
    # Both bounds, so that PostgreSQL takes the range from the index with or without
    # statistics (one bound alone may be guessed to be a third of the table).
    found = {str(i): int(pid) for pid, i in conn.execute(_RANGE, (low, high))}
    return [found[i] for i in insider_ids]


_TOP = "SELECT COALESCE(max(id), 0) FROM profiles"
_RANGE = "SELECT id, insider_id FROM profiles WHERE id > ? AND id <= ?"


def _attributes(entry: Entry) -> str:
    """The upsert's merge, then each session's, from an empty profile: the text the per-row
    path leaves, since it is the same function on the same values in the same order."""
    stored = "{}"
    if entry.user is not None:
        user = entry.user
        incoming = {**user.identifiers.attributes, **user.attributes}
        stored = profiles.merged_attributes(stored, incoming, user.append_arrays)
    for session in entry.sessions:
        incoming = {**session.identifiers.attributes, **session.attributes}
        stored = profiles.merged_attributes(stored, incoming, True)
    return stored


def _idents(entry: Entry) -> list[tuple[str, str]]:
    """Each identifier once (two spellings may normalise to one, which the per-row path's
    ON CONFLICT DO NOTHING would skip)."""
    ids = entry.user.identifiers if entry.user else entry.sessions[0].identifiers
    return list(dict.fromkeys((i.kind, i.value) for i in ids.identifiers))


def _events(entry: Entry) -> list[dict[str, Any]]:
    return entry.user.events if entry.user else []


def _event(profile_id: int, event: dict[str, Any]) -> tuple[Any, ...]:
    return (
        profile_id,
        event["event_name"],
        event.get("timestamp"),
        _encode(event.get("event_params") or {}).decode(),
    )
