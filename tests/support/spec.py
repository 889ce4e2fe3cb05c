"""What Insider's documentation gives literally: its error bodies, as the bytes a client gets,
and its request samples (`sample_request`), read from the spec itself, so that no test keeps a
copy of its own.

Sources: targeted-push-api.txt (the request errors of the Targeted Push API, pretty-printed
blocks) and insider-ecosystem.md (its neighbours' errors, inline; §1's `too_many_identifiers`
is pushgate's decision in the same shape). Each body below is copied from its document as
written there; tests/unit/test_spec_error_bodies.py extracts them from the documents again and
checks that the copies are exact and complete, so they cannot drift from the spec.

What a server must send is `Documented.wire`: the sample with the whitespace *between* JSON
tokens removed, every other byte kept: the key order, each string exactly as the spec spells it
(escapes included, none added, e.g. `'` stays `'`), no other keys, nothing after the closing
brace. The whitespace between tokens is taken as layout because the documents themselves do
not agree on it (4- and 2-space indents in one file, `", "` and `": "` inline in the other);
the compact form is what pushgate sends.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEC_DIR = Path(os.environ.get("PUSHGATE_SPEC_DIR", "/work/shared/spec"))
TARGETED_PUSH = "targeted-push-api.txt"
ECOSYSTEM = "insider-ecosystem.md"


@dataclass(frozen=True)
class Documented:
    source: str  # the spec file it is copied from
    status: int
    text: str  # the sample as the spec writes it
    json: bool = True  # False: a plain-text body (Message Center)

    @property
    def wire(self) -> bytes:
        return compact(self.text) if self.json else self.text.encode()

    @property
    def value(self) -> Any:
        return json.loads(self.text) if self.json else self.text

    def __str__(self) -> str:
        return f"{self.status} {self.text!r} ({self.source})"


def compact(text: str) -> bytes:
    """`text` (one JSON value) without whitespace between its tokens; strings are kept
    byte for byte, escapes and all."""
    json.loads(text)  # a sample must be JSON to begin with
    out: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif char not in " \t\r\n":
            out.append(char)
    return "".join(out).encode()


# ---- targeted-push-api.txt: 400 and 401 of POST /api/v2/notification/user ----

EMPTY_IDENTIFIERS = Documented(
    TARGETED_PUSH,
    400,
    """{
    "error": "empty_insider_identifiers",
    "message": "'insider_identifiers' object need to have at least one identifier"
}""",
)
EMPTY_NOTIFICATIONS = Documented(
    TARGETED_PUSH,
    400,
    """{
  "error": "invalid_notifications",
  "message": "'notifications' is empty, add some notification objects"
}""",
)
TOO_MANY_NOTIFICATIONS = Documented(
    TARGETED_PUSH,
    400,
    """{
  "error": "invalid_notifications",
  "message": "'notifications' can't have more than 20 objects"
}""",
)
BLACKLISTED_APS = Documented(
    TARGETED_PUSH,
    400,
    """{
  "error": "blacklisted_deeplink",
  "message": "deepLink can't contain 'aps' key"
}""",
)
NEGATIVE_INTEGER = Documented(  # the unbalanced quote is the spec's
    TARGETED_PUSH,
    400,
    """{
  "error": "negative_integer",
  "message": "camp_id' and/or 'channel_id' must be greater than zero"
}""",
)
INVALID_ADVANCED_PUSH_TYPE = Documented(
    TARGETED_PUSH,
    400,
    """{
  "error": "invalid_advanced_push_type",
  "message": "'advanced_push_type' must be either Carousel or Slider"
}""",
)
INVALID_CERTIFICATE = Documented(
    TARGETED_PUSH,
    400,
    """{
  "error": "invalid_certificate",
  "message": "You do not have a validated certificate. Please check Certificate section under \
Insider's Settings."
}""",
)
BAD_API_KEY = Documented(
    TARGETED_PUSH,
    401,
    """{
    "error": "bad_api_key",
    "message": "'api_key' is either empty or wrong. You can get your API key from Insider \
Dashboard"
}""",
)

# ---- insider-ecosystem.md ----

TOO_MANY_IDENTIFIERS = Documented(  # §1, a decision in the same shape
    ECOSYSTEM,
    400,
    '{"error": "too_many_identifiers", "message": "a request can target at most 50 user'
    ' identifiers"}',
)
STATISTICS_BAD_KEY = Documented(ECOSYSTEM, 401, '{"error": "Bad Api Key."}')  # §2
MESSAGE_CENTER_BAD_PAYLOAD = Documented(ECOSYSTEM, 400, "bad payload", json=False)  # §3
MESSAGE_CENTER_BAD_LIMIT = Documented(
    ECOSYSTEM, 400, "limit should be between 1 and 100.", json=False
)  # §3
USERS_MISSING = Documented(ECOSYSTEM, 400, '{"error": "users must be defined: bad request"}')
USERS_RATE_LIMITED = Documented(ECOSYSTEM, 429, '{"error": "rejected: too many requests"}')
USERS_NO_PROFILE = Documented(
    ECOSYSTEM, 404, '{"error": "no such user for these identifiers: no data"}'
)  # §4
CERTIFICATE_NO_KEY = Documented(ECOSYSTEM, 400, '{"error": "No api key provided"}')  # §5
CERTIFICATE_WRONG_KEY = Documented(ECOSYSTEM, 403, '{"error": "Invalid api key"}')  # §5

DOCUMENTED: dict[str, Documented] = {
    name: value for name, value in globals().items() if isinstance(value, Documented)
}


# ---- reading them from the spec ----

_STATUS_LINE = re.compile(r"^(\d{3}) [A-Z][A-Za-z ]+$")
# A status, then an inline code span: `400 `{"error": ...}``, `400 `bad payload``.
_INLINE = re.compile(r"\b([45]\d\d)\s+`([^`]+)`")


def spec_text(name: str) -> str:
    return (SPEC_DIR / name).read_text(encoding="utf-8")


def targeted_push_errors(text: str) -> list[Documented]:
    """The JSON blocks of targeted-push-api.txt that are error bodies, each with the status
    line above it ("400 Bad Request")."""
    found: list[Documented] = []
    status: int | None = None
    block: list[str] | None = None
    for line in text.splitlines():
        if block is not None:
            block.append(line)
            if line == "}":
                sample = "\n".join(block)
                if "error" in json.loads(sample):
                    assert status is not None, sample
                    found.append(Documented(TARGETED_PUSH, status, sample))
                block = None
        elif line == "{":
            block = [line]
        elif match := _STATUS_LINE.match(line):
            status = int(match.group(1))
    return found


def ecosystem_errors(text: str) -> list[Documented]:
    """The error bodies insider-ecosystem.md gives inline after their status: JSON objects
    with an `error`, and the plain-text ones of the paragraph that says "Errors are plain
    text" (the Message Center's)."""
    found: list[Documented] = []
    for paragraph in re.split(r"\n\s*\n", text):
        plain = "Errors are plain text" in paragraph
        for match in _INLINE.finditer(paragraph):
            status, sample = int(match.group(1)), match.group(2)
            if sample.startswith("{"):
                if "error" in json.loads(sample):
                    found.append(Documented(ECOSYSTEM, status, sample))
            elif plain:
                found.append(Documented(ECOSYSTEM, status, sample, json=False))
    return found


def json_blocks(text: str) -> list[str]:
    """The pretty-printed JSON objects of targeted-push-api.txt: from a line `{` to a line `}`."""
    found: list[str] = []
    block: list[str] | None = None
    for line in text.splitlines():
        if block is not None:
            block.append(line)
            if line == "}":
                found.append("\n".join(block))
                block = None
        elif line == "{":
            block = [line]
    return found


@functools.cache
def _request_samples() -> tuple[str, ...]:
    samples = [b for b in json_blocks(spec_text(TARGETED_PUSH)) if "notifications" in json.loads(b)]
    assert len(samples) == 2, f"targeted-push-api.txt has {len(samples)} request samples, not 2"
    return tuple(samples)


def sample_request(advanced: bool = False) -> dict[str, Any]:
    """A new copy of targeted-push-api.txt's first request sample ("Sample Body"), or, with
    `advanced`, of its second (the advanced push payload)."""
    return dict(json.loads(_request_samples()[1 if advanced else 0]))


def spec_error_bodies() -> list[Documented]:
    return targeted_push_errors(spec_text(TARGETED_PUSH)) + ecosystem_errors(spec_text(ECOSYSTEM))
