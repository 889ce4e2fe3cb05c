"""The JSON error body most endpoints answer with."""

from __future__ import annotations

import msgspec


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`{"error": "<snake_case_code>", "message": "<text>"}` (insider-ecosystem.md §1), or the
    user data API's and the credential uploads' `{"error": "<text>"}` with no message."""

    error: str
    message: str | None = None
