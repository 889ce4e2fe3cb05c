"""Rows of a user import file as user documents, checked by the user API's and the SDK
session's own validators (pure; the column mapping is documented in docs/cli.md).

A document is the user API's user (`identifiers`, `insider_id`, `attributes`, `events`,
`append`, `not_append`) plus `devices`: SDK-session device objects. A row is stored as an
upsert of its attributes and events, then one session per device, exactly as the two
endpoints would store them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pushgate import attributes as attrs
from pushgate.targeting.errors import ApiError
from pushgate.targeting.users import (
    Session,
    UserData,
    parse_identifiers,
    validate_session,
    validate_users,
)

IDENTIFIER_COLUMNS = ("email", "phone_number", "uuid")
DEVICE_FIELDS = frozenset(attrs.DEVICE_ATTRIBUTES)
DEVICE_ALIASES = {"token": "device_token"}
_DEVICE_TYPES = {
    "push_optin": "bool",
    "location_optin": "bool",
    "screen_width": "int",
    "screen_height": "int",
}
# Insider's default attributes whose values are not text (insider-ecosystem.md §4).
_ATTRIBUTE_TYPES = {
    "age": "int",
    "email_optin": "bool",
    "sms_optin": "bool",
    "whatsapp_optin": "bool",
    "gdpr_optin": "bool",
}
LIST_SEPARATOR = ";"
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})
_USER_KEYS = ("identifiers", "insider_id", "attributes", "events", "append", "not_append")


class HeaderError(ValueError):
    """The CSV header cannot be mapped: the whole file is refused before anything is stored."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a row was rejected: `rule` names the field and rule (the user API's rule keys,
    without `users.N.`), so that the summary can count rows per rule."""

    rule: str
    message: str

    def text(self) -> str:
        return f"{self.rule}: {self.message}"


Target = Literal["identifier", "custom_identifier", "insider_id", "device", "attribute"]


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    target: Target
    key: str  # identifier kind, custom identifier name, device field or attribute name
    kind: str  # str | int | float | bool | list | json


def _typed(name: str) -> tuple[str, str | None]:
    """`score:int` -> ("score", "int"); a name without a type -> (name, None)."""
    base, colon, kind = name.rpartition(":")
    if not colon:
        return name, None
    if kind not in _CONVERTERS:
        raise HeaderError(
            f"column {name!r}: unknown type {kind!r} (one of {', '.join(_CONVERTERS)})"
        )
    return base, kind


def parse_header(names: Sequence[str]) -> list[Column]:
    """Map each header cell to where its values go (docs/cli.md, "CSV columns")."""
    columns: list[Column] = []
    seen: set[tuple[str, str]] = set()
    for raw in names:
        header = raw.strip()
        if not header:
            raise HeaderError("the header has an empty column name")
        name, kind = _typed(header)
        lower = name.lower()
        column: Column
        if lower in IDENTIFIER_COLUMNS:
            column = Column(header, "identifier", lower, "str")
        elif lower == "insider_id":
            column = Column(header, "insider_id", lower, "str")
        elif lower.startswith("identifier."):
            ident = name.split(".", 1)[1]
            target: Target = "identifier" if ident in IDENTIFIER_COLUMNS else "custom_identifier"
            column = Column(header, target, ident, "str")
        elif lower.startswith("device."):
            field = DEVICE_ALIASES.get(name.split(".", 1)[1], name.split(".", 1)[1])
            if field not in DEVICE_FIELDS:
                raise HeaderError(
                    f"column {header!r}: unknown device field (one of token,"
                    f" {', '.join(sorted(DEVICE_FIELDS))})"
                )
            column = Column(header, "device", field, _DEVICE_TYPES.get(field, "str"))
        else:
            attribute = name.split(".", 1)[1] if lower.startswith("attribute.") else name
            column = Column(
                header, "attribute", attribute, kind or _ATTRIBUTE_TYPES.get(attribute, "str")
            )
        if kind is not None and column.target != "attribute":
            raise HeaderError(f"column {header!r}: only attribute columns take a :type")
        if (column.target, column.key) in seen:
            raise HeaderError(f"column {header!r} appears twice")
        seen.add((column.target, column.key))
        columns.append(column)
    if not any(c.target in ("identifier", "custom_identifier", "insider_id") for c in columns):
        raise HeaderError(
            "no identifier column: name one of email, phone_number, uuid, insider_id"
            " or identifier.<name>"
        )
    return columns


def _int(text: str) -> int:
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _bool(text: str) -> bool:
    lower = text.lower()
    if lower in _TRUE:
        return True
    if lower in _FALSE:
        return False
    raise ValueError(text)


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]


def _json(text: str) -> Any:
    return json.loads(text)


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "list": _list,
    "json": _json,
}
_KIND_TEXT = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "json": "JSON",
}


def csv_document(
    columns: Sequence[Column], cells: Sequence[str]
) -> tuple[dict[str, Any], list[Reason]]:
    """One CSV record as a user document; empty cells are left out (a CSV import never
    clears a value)."""
    reasons: list[Reason] = []
    if len(cells) != len(columns):
        return {}, [Reason("row.columns", f"{len(cells)} cells, the header has {len(columns)}")]
    identifiers: dict[str, Any] = {}
    custom: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    device: dict[str, Any] = {}
    doc: dict[str, Any] = {}
    for column, cell in zip(columns, cells, strict=True):
        text = cell.strip()
        if not text:
            continue
        if "\0" in text:  # as the endpoints refuse it: no text column can hold it
            reasons.append(Reason("row.nul", f"column {column.header!r} holds the NUL character"))
            continue
        try:
            value = _CONVERTERS[column.kind](text)
        except ValueError:
            where = "attributes" if column.target == "attribute" else column.target
            reasons.append(
                Reason(
                    f"{where}.{column.key}.type({column.kind})",
                    f"not {_KIND_TEXT[column.kind]}: {text}",
                )
            )
            continue
        if column.target == "identifier":
            identifiers[column.key] = value
        elif column.target == "custom_identifier":
            custom[column.key] = value
        elif column.target == "insider_id":
            doc["insider_id"] = value
        elif column.target == "device":
            device[column.key] = value
        else:
            attributes[column.key] = value
    if custom:
        identifiers["custom"] = custom
    if identifiers:
        doc["identifiers"] = identifiers
    if attributes:
        doc["attributes"] = attributes
    if device:
        doc["devices"] = [device]
    return doc, reasons


def json_document(value: Any) -> tuple[dict[str, Any], list[Reason]]:
    """One JSON-lines record: the user API's user plus `device` (an object) or `devices`."""
    if not isinstance(value, Mapping):
        return {}, [Reason("row.type(object)", "a line must hold a JSON object")]
    doc = {k: value[k] for k in _USER_KEYS if k in value and value[k] is not None}
    devices: list[Any] = []
    if value.get("device") is not None:
        devices.append(value["device"])
    more = value.get("devices")
    if more is not None:
        if not isinstance(more, list):
            return {}, [Reason("devices.type(array)", "devices must be an array of objects")]
        devices += more
    if devices:
        doc["devices"] = devices
    return doc, []


@dataclass(frozen=True, slots=True)
class Checked:
    """A document that passed every rule, as the store takes it (`user`, `sessions`) and as
    the HTTP endpoints take it (`record`, `session_bodies`)."""

    user: UserData | None
    sessions: tuple[Session, ...]
    record: dict[str, Any] | None
    session_bodies: tuple[dict[str, Any], ...]


def check(doc: Mapping[str, Any]) -> Checked | list[Reason]:
    """The user API's rules for identifiers, attributes and events, and the SDK session's for
    each device; the reasons of a rejected row."""
    problems: dict[str, list[str]] = {}
    ids = parse_identifiers(doc.get("identifiers"), "identifiers", problems)
    if not isinstance(doc.get("identifiers"), Mapping | None):
        problems.setdefault("identifiers.type(object)", []).append("identifiers must be an object")
    if problems:
        return _reasons(problems, "")
    insider_id = doc.get("insider_id")
    if not ids.identifiers and not isinstance(insider_id, str):
        # Unlike an app's session, an imported row must say whose it is.
        return [
            Reason("identifiers.required", "a user needs at least one identifier or an insider_id")
        ]
    devices = doc.get("devices") or []
    has_profile_data = doc.get("attributes") is not None or doc.get("events") is not None
    if not has_profile_data and not devices:
        return [
            Reason(
                "required(attributes|events|device)", "a user needs attributes, events or a device"
            )
        ]
    user: UserData | None = None
    record: dict[str, Any] | None = None
    if has_profile_data:
        record = {k: doc[k] for k in _USER_KEYS if k in doc}
        valid, problems, _ = validate_users({"users": [record]})
        if problems:
            return _reasons(problems, "users.0.")
        user = valid[0]
    sessions: list[Session] = []
    bodies: list[dict[str, Any]] = []
    for index, device in enumerate(devices):
        body = {"device": device, "identifiers": doc.get("identifiers")}
        if isinstance(insider_id, str):
            body["insider_id"] = insider_id
        where = "device" if len(devices) == 1 else f"devices.{index}"
        try:
            sessions.append(validate_session(body))
        except ApiError as error:
            # The session's messages name the field: "'device.platform' must be one of ..."
            field = error.message.split("'")[1] if error.message.count("'") >= 2 else ""
            suffix = field.removeprefix("device").lstrip(".")
            return [Reason(f"{where}.{suffix}" if suffix else where, error.message)]
        bodies.append(body)
    if user is not None and sessions and user.append_arrays and not user.events:
        # The SDK session takes attributes too, merged the same way (arrays append): one
        # session stores the whole row in about half the statements of an upsert and a
        # session, with the same result.
        sessions[0] = replace(sessions[0], attributes=user.attributes)
        bodies[0] = {**bodies[0], "attributes": doc["attributes"]}
        user = record = None
    return Checked(user, tuple(sessions), record, tuple(bodies))


def _reasons(problems: Mapping[str, list[str]], prefix: str) -> list[Reason]:
    return [
        Reason(rule.removeprefix(prefix), message)
        for rule, messages in problems.items()
        for message in messages
    ]
