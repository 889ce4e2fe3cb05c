"""Request bodies from the wire Structs, with fields left at their default left out.

`pushgate.targeting.schema`'s Structs encode every field (`"ttl": null`, `"check_optin":
false`, ...). The server reads those as absent, but the body would not be the one the
documentation shows, and another Insider-compatible host might not; so fields still at their
default are dropped, in nested Structs too. Values inside maps and lists of plain values
(identifiers, deep links, attributes) are the caller's data and are kept as given.
"""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def _is_default(value: Any, field: msgspec.structs.FieldInfo) -> bool:
    if field.default is not msgspec.NODEFAULT:
        default = field.default
    elif field.default_factory is not msgspec.NODEFAULT:
        default = field.default_factory()
    else:
        return False  # required: always sent
    # `type` too: False == 0 in Python, but `0` is not the default of a boolean.
    return value is default or (type(value) is type(default) and bool(value == default))


def plain(value: Any) -> Any:
    """`value` with every Struct in it turned into a dict of its non-default fields."""
    if isinstance(value, msgspec.Struct):
        return {
            f.encode_name: plain(getattr(value, f.name))
            for f in msgspec.structs.fields(value)
            if not _is_default(getattr(value, f.name), f)
        }
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def encode(value: Any) -> bytes:
    return _encoder.encode(plain(value))
