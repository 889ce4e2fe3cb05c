"""How profile and device data become `INSIDER.*` report attributes (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "INSIDER."
# Insider's default profile attributes; any other name is a custom attribute,
# stored and reported under its own name.
DEFAULT_PROFILE_ATTRIBUTES = frozenset(
    {
        "name",
        "surname",
        "gender",
        "age",
        "birthday",
        "email_optin",
        "sms_optin",
        "whatsapp_optin",
        "gdpr_optin",
        "language",
        "city",
        "country",
    }
)
# What the mobile SDK reports about a device (contract.md), plus last_ip when it sends one.
DEVICE_ATTRIBUTES = (
    "platform",
    "device_token",
    "environment",
    "udid",
    "push_optin",
    "location_optin",
    "app_version",
    "os_version",
    "model",
    "carrier",
    "sdk_version",
    "timezone",
    "device_language",
    "package_name",
    "screen_width",
    "screen_height",
    "idfa",
    "last_ip",
)
IDENTIFIER_ATTRIBUTES = {"email": "email", "phone_number": "phone_number", "uuid": "uuid"}


def profile_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Upsert/session attributes as stored: defaults prefixed, `custom` flattened."""
    out: dict[str, Any] = {}
    for name, value in (attributes or {}).items():
        if name == "custom" and isinstance(value, dict):
            out.update(value)
        elif name.startswith(PREFIX):
            out[name] = value
        elif name in DEFAULT_PROFILE_ATTRIBUTES:
            out[PREFIX + name] = value
        else:
            out[name] = value
    return out


def identifier_attributes(identifiers: Mapping[str, str]) -> dict[str, Any]:
    """Standard identifiers as report attributes, values as the user gave them."""
    return {
        PREFIX + kind: value for kind, value in identifiers.items() if kind in IDENTIFIER_ATTRIBUTES
    }


def device_attributes(device: Mapping[str, Any]) -> dict[str, Any]:
    return {PREFIX + name: device[name] for name in DEVICE_ATTRIBUTES if name in device}


def merge(
    existing: Mapping[str, Any], incoming: Mapping[str, Any], append_arrays: bool
) -> dict[str, Any]:
    """New values win; arrays append (keeping order, no repeats) unless told not to."""
    out = dict(existing)
    for name, value in incoming.items():
        old = out.get(name)
        if append_arrays and isinstance(old, list) and isinstance(value, list):
            out[name] = old + [v for v in value if v not in old]
        else:
            out[name] = value
    return out
