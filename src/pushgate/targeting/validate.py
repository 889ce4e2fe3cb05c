"""Validation of a Targeted Push API request beyond what the schema checks.

`decode` turns the body into a typed request, keeping a schema error for later
so that a bad API key is reported before a malformed body (the spec: with a
wrong key no operation is executed, and the caller learns that first).
`validate` applies the rules of the spec and returns normalised `Push`es.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import msgspec

from pushgate.targeting import errors, timing
from pushgate.targeting.errors import ApiError
from pushgate.targeting.push import (
    MAX_TTL_SECONDS,
    AdvancedItem,
    AdvancedPush,
    AndroidPush,
    Identifier,
    IosPush,
    Push,
)
from pushgate.targeting.schema import (
    AdvancedPushPayload,
    Notification,
    TargetedPushRequest,
)

MAX_NOTIFICATIONS = 20
MAX_IDENTIFIERS = 50
MAX_INT = 2**63 - 1  # what every store and provider field can hold
STANDARD_IDENTIFIERS = frozenset({"email", "phone_number", "uuid"})
ADVANCED_PUSH_TYPES = frozenset({"carousel", "slider"})
# Keys a provider reserves in the data it carries: APNs' `aps`, and FCM's.
RESERVED_DEEPLINK_KEYS = frozenset({"aps", "from", "notification", "message_type"})
RESERVED_DEEPLINK_PREFIXES = ("google", "gcm")
HTTPS_DEEPLINK_KEYS = frozenset({"ins_dl_internal", "ins_dl_external"})
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")

_DECODER = msgspec.json.Decoder(TargetedPushRequest)
_RAW_DECODER = msgspec.json.Decoder()
_ENCODE = msgspec.json.encode
_MISSING = re.compile(r"^Object missing required field `([^`]+)`(?: - at `\$(.*)`)?$")
_EXPECTED = re.compile(r"^Expected `([^`]+)`, got `([^`]+)`(?: - at `\$(.*)`)?$")


class Decoded(msgspec.Struct, frozen=True):
    """A decoded body: the request when it matched the schema, else the error to report
    once the API key (read from the untyped body) has been checked."""

    api_key: str | None
    request: TargetedPushRequest | None
    error: ApiError | None


def decode(body: bytes) -> Decoded:
    _refuse_nul(body)
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raw = parse_json(body)
        if not isinstance(raw, dict):
            raise errors.invalid_type("the request body must be a JSON object", "") from None
        api_key = raw.get("api_key")
        return Decoded(api_key if isinstance(api_key, str) else None, None, schema_error(str(exc)))
    except _UNDECODABLE as exc:
        raise _invalid_json(exc) from None
    return Decoded(request.api_key, request, None)


# msgspec reports bad UTF-8 inside strings as UnicodeDecodeError, and very deep
# nesting as RecursionError: both are malformed input, not server faults.
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _invalid_json(exc: BaseException) -> ApiError:
    if isinstance(exc, RecursionError):
        return errors.invalid_json("nesting is too deep")
    if isinstance(exc, UnicodeDecodeError):
        return errors.invalid_json("strings must be valid UTF-8")
    return errors.invalid_json(str(exc))


_NUL_ESCAPE = b"\\u0000"


def _refuse_nul(body: bytes | str) -> None:
    """A JSON string may spell the NUL character (`\\u0000`), but no text column can hold it
    (PostgreSQL refuses it; SQLite would keep it and some clients would cut the text there), so
    it is malformed input for every endpoint. Found with a substring search; an escaped
    backslash before `u0000` is text, not a NUL."""
    raw = body.encode() if isinstance(body, str) else body
    at = raw.find(_NUL_ESCAPE)
    while at != -1:
        backslashes = len(raw[:at]) - len(raw[:at].rstrip(b"\\"))
        if backslashes % 2 == 0:
            raise errors.invalid_json("strings must not contain the NUL character (\\u0000)")
        at = raw.find(_NUL_ESCAPE, at + 1)


def parse_json(body: bytes | str) -> Any:
    """Untyped JSON, with every way input can be malformed reported as `invalid_json`."""
    _refuse_nul(body)
    try:
        return _RAW_DECODER.decode(body)
    except _UNDECODABLE as exc:
        raise _invalid_json(exc) from None


def schema_error(text: str) -> ApiError:
    """Map a msgspec validation message onto the documented error shape."""
    if m := _MISSING.match(text):
        return errors.missing_field(m.group(1), _path(m.group(2)))
    if m := _EXPECTED.match(text):
        expected = m.group(1).replace("| null", "").strip(" |")
        path = _path(m.group(3))
        if (form := _TIMING_FORMS.get(path.rpartition(".")[2])) is not None:
            return errors.invalid_send_at(f"'{path}' must be {form}")
        return errors.invalid_type(f"expected {expected}, got {m.group(2)}", path)
    return errors.invalid_type(text.split(" - at ")[0], "")


_TIMING_FORMS = {
    "send_at": "an RFC 3339 date-time with offset, or Unix seconds",
    "local_time": 'a time of day as "HH:MM"',
}


def _path(path: str | None) -> str:
    return (path or "").lstrip(".")


class ContentCache:
    """Validated notification content by `content_key`, bounded (cleared when full).

    Requests of one campaign differ only in their identifiers; the rest is checked
    once. Only successes are kept: invalid content is checked again each time.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self.entries: dict[bytes, Push] = {}

    def push(self, index: int, n: Notification, identifiers: tuple[Identifier, ...]) -> Push:
        # Timing left out: a campaign's content is shared by requests that send it at
        # different times.
        untimed = _UNTIMED if _has_timing(n) else {}
        key = _ENCODE(msgspec.structs.replace(n, identifiers=None, **untimed))
        template = self.entries.get(key)
        if template is None:
            template = msgspec.structs.replace(
                _push(0, n, ()), identifiers_sent={}, content_key=key
            )
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
            self.entries[key] = template
        return msgspec.structs.replace(
            template, index=index, identifiers_sent=n.identifiers or {}, identifiers=identifiers
        )


# The timing fields at their defaults.
_UNTIMED: dict[str, Any] = {"send_at": None, "local_time": None, "ignore_quiet_hours": False}


def _has_timing(n: Notification) -> bool:
    return n.send_at is not None or n.local_time is not None or n.ignore_quiet_hours


def _timed(push: Push, n: Notification, now: float | None) -> Push:
    if not _has_timing(n):
        return push
    where = f"notifications[{push.index}]"
    if n.send_at is not None and n.local_time is not None:
        raise errors.invalid_send_at(f"'{where}' may have 'send_at' or 'local_time', not both")
    return msgspec.structs.replace(
        push,
        send_at=timing.parse_send_at(n.send_at, time.time() if now is None else now),
        local_time=timing.parse_local_time(n.local_time),
        ignore_quiet_hours=n.ignore_quiet_hours,
    )


def validate(
    request: TargetedPushRequest, cache: ContentCache | None = None, now: float | None = None
) -> list[Push]:
    """`now`: what `send_at` is measured against (the clock's time when not given)."""
    notifications = request.notifications
    if not notifications:
        raise errors.EMPTY_NOTIFICATIONS
    if len(notifications) > MAX_NOTIFICATIONS:
        raise errors.TOO_MANY_NOTIFICATIONS
    per_notification = [_identifiers(n.identifiers, i) for i, n in enumerate(notifications)]
    if sum(len(ids) for ids in per_notification) > MAX_IDENTIFIERS:
        raise errors.TOO_MANY_IDENTIFIERS
    make = cache.push if cache is not None else _push
    return [
        _timed(make(i, n, ids), n, now)
        for i, (n, ids) in enumerate(zip(notifications, per_notification, strict=True))
    ]


def normalise_identifier(key: str, value: str) -> Identifier | None:
    kind = key[len("INSIDER.") :] if key.startswith("INSIDER.") else key
    if kind.lower() in STANDARD_IDENTIFIERS:
        kind = kind.lower()
    value = value.strip()
    if not kind or not value:
        return None
    if kind == "email":
        value = value.lower()
    return Identifier(kind, value)


def _identifiers(sent: dict[str, Any] | None, index: int) -> tuple[Identifier, ...]:
    found: dict[Identifier, None] = {}
    for key, value in (sent or {}).items():
        where = f"notifications[{index}].identifiers.{key}"
        if key == "custom" and isinstance(value, dict):
            pairs = list(value.items())
        elif isinstance(value, str):
            pairs = [(key, value)]
        else:
            raise errors.invalid_type("identifier values must be strings", where)
        for name, inner in pairs:
            if not isinstance(inner, str):
                raise errors.invalid_type("identifier values must be strings", f"{where}.{name}")
            if ident := normalise_identifier(name, inner):
                found[ident] = None
    if not found:
        raise errors.EMPTY_IDENTIFIERS
    return tuple(found)


def _push(index: int, n: Notification, identifiers: tuple[Identifier, ...]) -> Push:
    where = f"notifications[{index}]"
    channel_id = n.android.channel_id if n.android else None
    if n.camp_id <= 0 or (channel_id is not None and channel_id <= 0):
        raise errors.NEGATIVE_INTEGER
    _check_max(n.camp_id, f"{where}.camp_id")
    ttl = MAX_TTL_SECONDS if n.ttl is None else n.ttl
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise errors.invalid_ttl(ttl, MAX_TTL_SECONDS)

    android = AndroidPush()
    if n.android:
        _check_max(channel_id, f"{where}.android.channel_id")
        android = AndroidPush(
            sound=n.android.sound,
            deep_links=_deep_links(n.android.deep_link, f"{where}.android.deep_link"),
            channel_id=None if channel_id is None else str(channel_id),
        )
    ios = IosPush()
    silent = bool(n.deliver_silently or n.delivery_silently)
    if n.ios:
        badge = n.ios.badge
        if badge is not None and not 0 <= badge <= MAX_INT:
            raise errors.invalid_value(
                "'badge' must be a non-negative integer", f"{where}.ios.badge"
            )
        thread = n.ios.thread_id_dash if n.ios.thread_id_dash is not None else n.ios.thread_id
        silent = silent or bool(n.ios.deliver_silently or n.ios.delivery_silently)
        ios = IosPush(
            sound=n.ios.sound,
            deep_links=_deep_links(n.ios.deep_link, f"{where}.ios.deep_link"),
            thread_id=None if thread is None else str(thread),
            badge=badge,
            content_available=bool(n.ios.content_available),
            mutable_content=bool(n.ios.mutable_content),
        )
    if n.android:
        silent = silent or bool(n.android.deliver_silently or n.android.delivery_silently)

    return Push(
        index=index,
        identifiers_sent=n.identifiers or {},
        identifiers=identifiers,
        camp_id=n.camp_id,
        camp_name=n.camp_name,
        title=n.title,
        message=n.message,
        image_url=n.image_url,
        ttl=ttl,
        check_optin=n.check_optin,
        send_single_user=n.send_single_user,
        gfc_enabled=n.GFC_enabled,
        silent=silent,
        android=android,
        ios=ios,
        advanced=_advanced(n.advanced_push_payload, f"{where}.advanced_push_payload"),
    )


def _check_max(value: int | None, where: str) -> None:
    if value is not None and value > MAX_INT:
        raise errors.invalid_value(f"integers must be at most {MAX_INT}", where)


def _advanced(payload: AdvancedPushPayload | None, where: str) -> AdvancedPush | None:
    if payload is None:
        return None
    kind = (payload.advanced_push_type or payload.preferred_type or "").strip().lower()
    if kind not in ADVANCED_PUSH_TYPES:
        raise errors.INVALID_ADVANCED_PUSH_TYPE
    if payload.advanced_push_items is None:
        raise errors.missing_field("advanced_push_items", where)
    if not payload.advanced_push_items:
        raise errors.invalid_advanced_push_items("'advanced_push_items' must not be empty")
    items = []
    for i, item in enumerate(payload.advanced_push_items):
        _check_max(abs(item.id), f"{where}.advanced_push_items[{i}].id")
        items.append(
            AdvancedItem(
                id=item.id,
                headline=item.headline,
                description=item.description,
                image_url=item.image_url,
                deep_links=_deep_links(
                    item.deep_links, f"{where}.advanced_push_items[{i}].deep_links"
                ),
            )
        )
    return AdvancedPush(kind, tuple(items))


def _deep_links(links: dict[str, Any] | None, where: str) -> dict[str, str]:
    if not links:
        return {}
    out: dict[str, str] = {}
    for key, value in links.items():
        if key in RESERVED_DEEPLINK_KEYS or key.startswith(RESERVED_DEEPLINK_PREFIXES):
            raise errors.blacklisted_deeplink(key)
        out[key] = _deep_link_value(key, value, where)
    return out


def _deep_link_value(key: str, value: Any, where: str) -> str:
    if key == "ins_dl_json":
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if isinstance(value, str):
            try:
                parsed = _RAW_DECODER.decode(value)  # strict JSON: no NaN or Infinity
            except _UNDECODABLE:
                parsed = None
            if isinstance(parsed, dict):
                return value
        raise errors.invalid_deeplink(key, "must be a JSON object or a string holding one")
    if not isinstance(value, str):
        raise errors.invalid_deeplink(key, f"must be a string (at {where}.{key})")
    if key in HTTPS_DEEPLINK_KEYS:
        if not _is_https_url(value):
            raise errors.invalid_deeplink(key, "must be a URL that starts with https://")
    elif key == "ins_dl_url_scheme" and not _URL_SCHEME.match(value):
        raise errors.invalid_deeplink(key, "must be a URL of the form scheme://...")
    return value


def _is_https_url(value: str) -> bool:
    if not value.lower().startswith("https://"):
        return False
    try:
        return bool(urlsplit(value).netloc)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
