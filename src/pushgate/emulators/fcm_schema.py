"""FCM v1 `messages:send` bodies checked the way fcm.googleapis.com checks them.

The schema is Google's own: the FCM v1 discovery document (`schemas/fcm.v1.json`, vendored from
google-api-python-client with its licence). Google refuses a body in two layers, and so does
this module:

1. The JSON-to-proto parse of Google's API front end (proto3 JSON mapping,
   https://protobuf.dev/programming-guides/json/): every name must be a field of the message,
   spelled as its lowerCamelCase JSON name or its original snake_case proto name; values must
   have the field's JSON type (strings, booleans, 32/64-bit integers as numbers or decimal
   strings, floats, objects, arrays, string maps such as `data`); enums take a value name
   (lower case is upper-cased first, as Google's parser does for firebase-admin's `"high"`) or
   its number; `google-duration` is `"<seconds>[.<up to 9 digits>]s"`; `google-datetime` is
   RFC 3339; at most one member of the `target` oneof (token, topic, condition, fid). A refusal
   carries only a `google.rpc.BadRequest` detail, every problem as one field violation, the
   message text being the descriptions joined by newlines.
2. FCM's own checks of the parsed message (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode):
   a recipient is set, `data` keys are not reserved (`from`, `message_type`, `google*`,
   `gcm*`), a ttl lies within 0..4 weeks, the message fits 4096 bytes. A refusal carries the
   `FcmError` INVALID_ARGUMENT detail, plus a BadRequest naming the field where there is one.

Field paths and messages follow Google's answers: proto (snake_case) names joined by dots,
list and map entries by index (`message.data[0].value`), e.g.
`Invalid value at 'message.data[0].value' (TYPE_STRING), 12` (Google's own example,
https://firebase.google.com/docs/cloud-messaging/error-codes) and
`Invalid JSON payload received. Unknown name "foo" at 'message': Cannot find field.`
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Final

__all__ = [
    "BAD_REQUEST_TYPE",
    "FCM_ERROR_TYPE",
    "MAX_MESSAGE_BYTES",
    "MAX_TTL_SECONDS",
    "FcmSchema",
    "FieldViolation",
    "Rejection",
    "check_send_request",
    "invalid_json",
    "invalid_token",
    "message_size",
    "no_recipient",
    "schema",
    "target_of",
]

FCM_ERROR_TYPE: Final = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE: Final = "type.googleapis.com/google.rpc.BadRequest"
MAX_MESSAGE_BYTES: Final = 4096
MAX_TTL_SECONDS: Final = 2_419_200
"""FCM stores a message at most 4 weeks (ErrorCode: "Invalid TTL")."""
SCHEMA_FILE: Final = "fcm.v1.json"
ROOT: Final = "SendMessageRequest"
MESSAGE: Final = "Message"
TARGETS: Final = ("token", "topic", "condition", "fid")
"""The members of the Message `target` oneof."""
RESERVED_DATA_KEYS: Final = frozenset({"from", "message_type"})
RESERVED_DATA_PREFIXES: Final = ("google", "gcm")
INVALID_TOKEN: Final = "The registration token is not a valid FCM registration token"
NO_RECIPIENT: Final = "Recipient of the message is not set."
INVALID_ARGUMENT: Final = "Request contains an invalid argument."

_PACKAGE: Final = "google.firebase.fcm.v1"
_TYPE_URL: Final = "type.googleapis.com/"
_DURATION_TYPE: Final = _TYPE_URL + "google.protobuf.Duration"
_TIMESTAMP_TYPE: Final = _TYPE_URL + "google.protobuf.Timestamp"
_STRUCT_TYPE: Final = _TYPE_URL + "google.protobuf.Struct"
# Proto enum types named in Google's "Invalid value" text; the discovery document inlines enums.
_ENUM_TYPES: Final[dict[str, str]] = {
    "priority": "AndroidMessagePriority",
    "notificationPriority": "NotificationPriority",
    "visibility": "AndroidNotification.Visibility",
    "proxy": "AndroidNotification.Proxy",
}
_MAX_DURATION_SECONDS: Final = 315_576_000_000  # google.protobuf.Duration's range
_DURATION = re.compile(r"([+-]?[0-9]+)?(?:\.([0-9]*))?")
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_INT_RANGES: Final[dict[str, tuple[int, int]]] = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_INT_STRING = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One `google.rpc.BadRequest.FieldViolation`: the field's path ("" for none) and why."""

    field: str
    description: str

    def as_json(self) -> dict[str, str]:
        # proto3 JSON leaves out an empty string, as Google does for a violation without a field.
        if not self.field:
            return {"description": self.description}
        return {"field": self.field, "description": self.description}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A 400 INVALID_ARGUMENT answer."""

    message: str
    violations: tuple[FieldViolation, ...] = ()
    fcm_error: bool = False
    """True: refused by FCM itself (an `FcmError` detail); False: by the JSON parse."""

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.fcm_error:
            details.append({"@type": FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"})
        if self.violations:
            details.append(
                {
                    "@type": BAD_REQUEST_TYPE,
                    "fieldViolations": [v.as_json() for v in self.violations],
                }
            )
        error: dict[str, Any] = {"code": 400, "message": self.message, "status": "INVALID_ARGUMENT"}
        if details:
            error["details"] = details
        return {"error": error}


def _parse_error(violations: list[FieldViolation]) -> Rejection:
    return Rejection("\n".join(v.description for v in violations), tuple(violations))


def _fcm_rejection(message: str, path: str | None = None) -> Rejection:
    violations = () if path is None else (FieldViolation(path, message),)
    return Rejection(message, violations, fcm_error=True)


def invalid_json(detail: str) -> Rejection:
    """A body that is not JSON at all."""
    return _parse_error([FieldViolation("", f"Invalid JSON payload received. {detail}")])


def invalid_token(target: str = "token") -> Rejection:
    """A malformed registration token: the only INVALID_ARGUMENT that names `message.token`
    (how a client tells a dead token from a bad payload)."""
    return _fcm_rejection(INVALID_TOKEN, f"message.{target}")


def no_recipient() -> Rejection:
    """A message with no token, topic, condition or fid."""
    return _fcm_rejection(NO_RECIPIENT, "message")


def proto_name(json_name: str) -> str:
    """The proto field name behind a lowerCamelCase JSON name (`androidV2` -> `android_v2`)."""
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), json_name)


@dataclass(frozen=True, slots=True)
class _Field:
    json_name: str
    proto_name: str
    spec: Mapping[str, Any]


@dataclass(slots=True)
class _Message:
    id: str
    by_name: dict[str, _Field] = field(default_factory=dict)
    """Each field under both of its spellings."""

    @property
    def type_url(self) -> str:
        # Discovery ids of nested messages carry the package as a prefix.
        name = self.id.removeprefix("GoogleFirebaseFcmV1")
        return f"{_TYPE_URL}{_PACKAGE}.{name}"


def _render(value: Any) -> str:
    """A JSON value as Google quotes it in "Invalid value" texts: strings in double quotes,
    numbers and booleans bare."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Checker:
    """One pass over a body, collecting every parse violation (Google reports them all)."""

    def __init__(self, messages: Mapping[str, _Message]) -> None:
        self.messages = messages
        self.violations: list[FieldViolation] = []

    def add(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(path, description))

    def invalid_value(self, path: str, kind: str, detail: str) -> None:
        self.add(path, f"Invalid value at '{path}' ({kind}), {detail}")

    def unknown_name(self, parent: str, name: str, why: str) -> None:
        where = f" at '{parent}'" if parent else ""
        self.add(parent, f'Invalid JSON payload received. Unknown name "{name}"{where}: {why}')

    def message(self, value: Mapping[str, Any], message: _Message, path: str) -> None:
        oneof_set: str | None = None
        for name, item in value.items():
            spec = message.by_name.get(name)
            if spec is None:
                self.unknown_name(path, name, "Cannot find field.")
                continue
            if item is None:
                continue  # proto3 JSON: null is the field's default, i.e. not set
            if message.id == MESSAGE and spec.proto_name in TARGETS:
                if oneof_set is not None:
                    self.add(
                        path,
                        "Invalid value (oneof), oneof field 'target' is already set. "
                        f"Cannot set '{spec.proto_name}'",
                    )
                    continue
                oneof_set = spec.proto_name
            self.field(item, spec, path, name)

    def field(self, value: Any, spec: _Field, parent: str, sent_name: str) -> None:
        path = _join(parent, spec.proto_name)
        kind = spec.spec
        if kind.get("type") == "array":
            if not isinstance(value, list):
                # Google's parser has no text of its own for this: a scalar or object for a list.
                self.add(
                    path, f"Invalid value at '{path}' (list), {_render(value)}: expected a list"
                )
                return
            for index, item in enumerate(value):
                if item is None:
                    self.invalid_value(f"{path}[{index}]", _scalar_kind(kind["items"]), "null")
                    continue
                self.value(item, kind["items"], f"{path}[{index}]", parent, spec, sent_name)
            return
        if isinstance(value, list):
            self.unknown_name(parent, sent_name, "Proto field is not repeating, cannot start list.")
            return
        self.value(value, kind, path, parent, spec, sent_name)

    def value(
        self,
        value: Any,
        kind: Mapping[str, Any],
        path: str,
        parent: str,
        spec: _Field,
        sent_name: str,
    ) -> None:
        ref = kind.get("$ref")
        if ref is not None:
            message = self.messages[ref]
            if isinstance(value, dict):
                self.message(value, message, path)
            else:
                self.invalid_value(path, message.type_url, _render(value))
            return
        if kind.get("type") == "object":
            values = kind.get("additionalProperties", {})
            if values.get("type") == "any":
                if not isinstance(value, dict):
                    self.invalid_value(path, _STRUCT_TYPE, _render(value))
                return
            if not isinstance(value, dict):
                entry = spec.json_name[:1].upper() + spec.json_name[1:] + "Entry"
                self.invalid_value(path, f"{_TYPE_URL}{_PACKAGE}.{entry}", _render(value))
                return
            for index, item in enumerate(value.values()):
                entry_path = f"{path}[{index}]"
                if isinstance(item, list):
                    self.unknown_name(
                        entry_path, "value", "Proto field is not repeating, cannot start list."
                    )
                elif item is not None:
                    self.scalar(item, values, f"{entry_path}.value", entry_path, "value")
            return
        if isinstance(value, dict):
            where = f"Invalid value at '{parent}'" if parent else "Invalid value"
            self.add(parent, f"{where} ({spec.proto_name}), Starting an object on a scalar field")
            return
        self.scalar(value, kind, path, parent, sent_name)

    def scalar(
        self, value: Any, kind: Mapping[str, Any], path: str, parent: str, sent_name: str
    ) -> None:
        if isinstance(value, dict):
            where = f"Invalid value at '{parent}'" if parent else "Invalid value"
            name = path.rsplit(".", 1)[-1]
            self.add(parent, f"{where} ({name}), Starting an object on a scalar field")
            return
        type_ = kind.get("type")
        fmt = kind.get("format")
        if "enum" in kind:
            self.enum(value, kind, path, sent_name)
        elif fmt == "google-duration":
            self.duration(value, path, sent_name)
        elif fmt == "google-datetime":
            self.timestamp(value, path, sent_name)
        elif fmt in _INT_RANGES:
            self.integer(value, fmt, path)
        elif type_ == "string":
            if not isinstance(value, str):
                self.invalid_value(path, "TYPE_STRING", _render(value))
        elif type_ == "boolean":
            if not isinstance(value, bool):
                self.invalid_value(path, "TYPE_BOOL", _render(value))
        elif type_ == "number":
            self.number(value, fmt, path)
        elif type_ == "any":
            return
        else:  # a schema this checker does not know: fail loudly rather than pass anything
            raise ValueError(f"unsupported schema at {path}: {dict(kind)}")

    def enum(self, value: Any, kind: Mapping[str, Any], path: str, sent_name: str) -> None:
        names: list[str] = list(kind["enum"])
        json_name = json_name_of(sent_name)
        type_url = f"{_TYPE_URL}{_PACKAGE}.{_ENUM_TYPES.get(json_name, proto_type(json_name))}"
        if isinstance(value, str):
            # Google's parser upper-cases a value it does not find (firebase-admin sends "high").
            if value in names or value.upper() in names:
                return
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and float(value).is_integer()
            and 0 <= value < len(names)
        ):
            return  # the value's number (the discovery document lists them in number order)
        self.invalid_value(path, type_url, _render(value))

    def duration(self, value: Any, path: str, sent_name: str) -> None:
        problem = duration_problem(value)
        if problem is not None:
            self.invalid_value(path, _DURATION_TYPE, f"Field '{sent_name}', {problem}")

    def timestamp(self, value: Any, path: str, sent_name: str) -> None:
        problem = timestamp_problem(value)
        if problem is not None:
            self.invalid_value(path, _TIMESTAMP_TYPE, f"Field '{sent_name}', {problem}")

    def integer(self, value: Any, fmt: str, path: str) -> None:
        low, high = _INT_RANGES[fmt]
        # proto3 JSON: a number with no fraction, or the decimal string 64-bit values need.
        whole = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
        decimal = isinstance(value, str) and _INT_STRING.fullmatch(value) is not None
        if not (whole or decimal) or not low <= int(value) <= high:
            self.invalid_value(path, f"TYPE_{fmt.upper()}", _render(value))

    def number(self, value: Any, fmt: str | None, path: str) -> None:
        kind = "TYPE_FLOAT" if fmt == "float" else "TYPE_DOUBLE"
        if isinstance(value, int | float) and not isinstance(value, bool):
            return
        if isinstance(value, str):
            if value in ("NaN", "Infinity", "-Infinity"):
                return
            try:
                if math.isfinite(float(value)):
                    return
            except ValueError:
                pass
        self.invalid_value(path, kind, _render(value))


def proto_type(json_name: str) -> str:
    return json_name[:1].upper() + json_name[1:]


def json_name_of(name: str) -> str:
    """The lowerCamelCase JSON name of a field sent under either spelling."""
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def _scalar_kind(kind: Mapping[str, Any]) -> str:
    if kind.get("format") == "google-duration":
        return _DURATION_TYPE
    return "TYPE_STRING" if kind.get("type") == "string" else f"TYPE_{kind.get('type')}".upper()


def duration_problem(value: Any) -> str | None:
    """Why `value` is not a google-duration JSON string (protobuf's own texts), or None."""
    if not isinstance(value, str):
        return f"Invalid data type for duration, value is {_render(value)}"
    if not value.endswith("s"):
        return "Illegal duration format; duration must end with 's'"
    match = _DURATION.fullmatch(value[:-1])
    if match is None or match.group(1) is None:
        return "Invalid duration format, failed to parse seconds"
    nanos = match.group(2)
    if nanos is not None and len(nanos) > 9:
        return "Invalid duration format, failed to parse nano seconds"
    if abs(int(match.group(1))) > _MAX_DURATION_SECONDS:
        return "Duration value exceeds limits"
    return None


def duration_seconds(value: str) -> float:
    """The seconds of a valid google-duration string."""
    return float(value[:-1])


def timestamp_problem(value: Any) -> str | None:
    """Why `value` is not an RFC 3339 google-datetime string, or None."""
    if not isinstance(value, str):
        return f"Invalid data type for timestamp, value is {_render(value)}"
    match = _TIMESTAMP.fullmatch(value)
    if match is not None:
        year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
        try:
            datetime.datetime(year, month, day, hour, minute, second)
        except ValueError:
            pass
        else:
            return None
    return f"Invalid time format: {value}"


class FcmSchema:
    """The messages of a discovery document, ready to check request bodies against."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.revision = str(document.get("revision", ""))
        self.messages: dict[str, _Message] = {}
        for schema_id, spec in document["schemas"].items():
            message = _Message(schema_id)
            for json_name, prop in spec.get("properties", {}).items():
                entry = _Field(json_name, proto_name(json_name), prop)
                message.by_name[json_name] = entry
                message.by_name.setdefault(entry.proto_name, entry)
            self.messages[schema_id] = message

    @classmethod
    def vendored(cls) -> FcmSchema:
        text = resources.files("pushgate.emulators").joinpath("schemas", SCHEMA_FILE).read_text()
        return cls(json.loads(text))

    def parse_violations(self, body: Any) -> list[FieldViolation]:
        """What Google's JSON parse refuses in a `messages:send` body (the root being a
        SendMessageRequest)."""
        if not isinstance(body, dict):
            return [
                FieldViolation(
                    "",
                    f"Invalid JSON payload received. Expected an object, got {_render(body)}.",
                )
            ]
        checker = _Checker(self.messages)
        checker.message(body, self.messages[ROOT], "")
        return checker.violations

    def check(self, body: Any) -> Rejection | None:
        """The 400 Google answers `body` with, or None if FCM takes it."""
        violations = self.parse_violations(body)
        if violations:
            return _parse_error(violations)
        return _fcm_checks(_get(body, "message") or {})


@cache
def schema() -> FcmSchema:
    """The vendored FCM v1 schema (read once)."""
    return FcmSchema.vendored()


def check_send_request(body: Any) -> Rejection | None:
    """`FcmSchema.check` with the vendored schema."""
    return schema().check(body)


def _get(value: Mapping[str, Any], json_name: str) -> Any:
    """A field by either spelling (the body has passed the parse, so at most one is set)."""
    found = value.get(json_name)
    if found is None:
        found = value.get(proto_name(json_name))
    return found


def target_of(message: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The oneof member set (name, value), or None."""
    for name in TARGETS:
        value = message.get(name)
        if value is not None:
            return name, value
    return None


def message_size(message: Mapping[str, Any]) -> int:
    """The bytes FCM's 4096-byte limit counts: the message as compact UTF-8 JSON, without its
    target (the limit is on what is delivered, not on the address)."""
    content = {k: v for k, v in message.items() if k not in TARGETS}
    return len(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode())


def _fcm_checks(message: Mapping[str, Any]) -> Rejection | None:
    if target_of(message) is None:
        return no_recipient()
    android = _get(message, "android") or {}
    android_v2 = _get(message, "androidV2") or {}
    for where, section in (
        ("message.data", message),
        ("message.android.data", android),
        ("message.android_v2.data", android_v2),
    ):
        for key in _get(section, "data") or {}:
            if key in RESERVED_DATA_KEYS or key.startswith(RESERVED_DATA_PREFIXES):
                return _fcm_rejection(f"Invalid data payload key: {key}", where)
    for where, section in (
        ("message.android.ttl", android),
        ("message.android_v2.ttl", android_v2),
    ):
        ttl = _get(section, "ttl")
        if ttl is not None and not 0 <= duration_seconds(ttl) <= MAX_TTL_SECONDS:
            return _fcm_rejection(
                f"Invalid TTL: {ttl} is not a duration between 0s and {MAX_TTL_SECONDS}s "
                "(4 weeks).",
                where,
            )
    if message_size(message) > MAX_MESSAGE_BYTES:
        return _fcm_rejection(INVALID_ARGUMENT)
    return None
