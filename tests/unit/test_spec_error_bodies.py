"""The documented error bodies of tests/support/spec.py: copied exactly and completely from the spec,
their wire form, and pushgate's encoding of its own constants to those bytes.

The server tests (tests/integration/test_error_bytes.py, test_push_errors.py) compare each
answer's raw bytes with `Documented.wire`.
"""

from __future__ import annotations

import pytest

from pushgate.api.push import error_response
from pushgate.targeting import errors
from tests.support import spec
from tests.support.spec import DOCUMENTED, Documented, compact

needs_spec = pytest.mark.skipif(
    not (spec.SPEC_DIR / spec.TARGETED_PUSH).is_file()
    or not (spec.SPEC_DIR / spec.ECOSYSTEM).is_file(),
    reason=f"the spec is not at {spec.SPEC_DIR} (set PUSHGATE_SPEC_DIR)",
)


def key(d: Documented) -> tuple[str, int, str, bool]:
    return d.source, d.status, d.text, d.json


@needs_spec
def test_the_copies_are_exactly_the_error_bodies_the_spec_documents() -> None:
    in_spec = sorted(map(key, spec.spec_error_bodies()))
    copied = sorted(map(key, DOCUMENTED.values()))

    missing = [d for d in in_spec if d not in copied]
    stale = [d for d in copied if d not in in_spec]
    assert (missing, stale) == ([], [])
    assert in_spec == copied  # no body documented twice and copied once, or the reverse


@needs_spec
@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_copy_stands_verbatim_in_its_spec_file(name: str) -> None:
    documented = DOCUMENTED[name]

    assert documented.text in spec.spec_text(documented.source)


def test_the_spec_readers_find_blocks_and_inline_bodies() -> None:
    """The readers themselves, on a made-up page: a wrong reader would make the comparison
    with the spec vacuous."""
    txt = (
        '200 OK\n\n{\n    "successes": [],\n    "errors": {}\n}\n\n'
        '400 Bad Request\n\nWhen so.\n\n{\n  "error": "a",\n  "message": "b \'c\'"\n}\n\n'
        '401 Unauthorized\n\n{\n    "error": "d"\n}\n'
    )
    md = (
        'Answer 202 `{"message": "ok"}`; bad 400 `{"error": "e"}`, gone\n'
        '  404 `{"error": "f"}`; code 400 `not_a_body`.\n\n'
        "Errors are plain text: wrong → 400 `g h.`; bad key → 401.\n"
    )

    assert [(d.status, d.wire) for d in spec.targeted_push_errors(txt)] == [
        (400, b'{"error":"a","message":"b \'c\'"}'),
        (401, b'{"error":"d"}'),
    ]
    assert [(d.status, d.wire) for d in spec.ecosystem_errors(md)] == [
        (400, b'{"error":"e"}'),
        (404, b'{"error":"f"}'),
        (400, b"g h."),
    ]


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ('{\n  "error": "x",\n  "message": "y"\n}', b'{"error":"x","message":"y"}'),
        ('{"error": "a b" , "message":"c\\td"}', b'{"error":"a b","message":"c\\td"}'),
        ('{"e": "quote \\" and : , { in a string"}', b'{"e":"quote \\" and : , { in a string"}'),
        (
            '{"e": "\\u0027 stays escaped", "f": "\' stays bare"}',
            b'{"e":"\\u0027 stays escaped","f":"\' stays bare"}',
        ),
        ('{"e": "ends in a backslash \\\\", "f": 1}', b'{"e":"ends in a backslash \\\\","f":1}'),
        ("[1, 2]", b"[1,2]"),
    ],
)
def test_the_wire_form_drops_only_the_whitespace_between_tokens(text: str, wire: bytes) -> None:
    assert compact(text) == wire


def test_a_sample_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        compact('{"error": "x",}')


def test_a_plain_text_body_is_its_text() -> None:
    assert spec.MESSAGE_CENTER_BAD_LIMIT.wire == b"limit should be between 1 and 100."


# ---- pushgate's constants, encoded as the server encodes them ----


OWN_CONSTANTS = [
    ("EMPTY_IDENTIFIERS", errors.EMPTY_IDENTIFIERS),
    ("EMPTY_NOTIFICATIONS", errors.EMPTY_NOTIFICATIONS),
    ("TOO_MANY_NOTIFICATIONS", errors.TOO_MANY_NOTIFICATIONS),
    ("BLACKLISTED_APS", errors.blacklisted_deeplink("aps")),
    ("NEGATIVE_INTEGER", errors.NEGATIVE_INTEGER),
    ("INVALID_ADVANCED_PUSH_TYPE", errors.INVALID_ADVANCED_PUSH_TYPE),
    ("INVALID_CERTIFICATE", errors.INVALID_CERTIFICATE),
    ("BAD_API_KEY", errors.BAD_API_KEY),
    ("TOO_MANY_IDENTIFIERS", errors.TOO_MANY_IDENTIFIERS),
]


@pytest.mark.parametrize(
    ("name", "error"), [pytest.param(name, error, id=name) for name, error in OWN_CONSTANTS]
)
def test_the_targeted_push_errors_encode_to_the_documented_bytes(
    name: str, error: errors.ApiError
) -> None:
    documented = DOCUMENTED[name]

    response = error_response(error)

    assert (response.status, response.body) == (documented.status, documented.wire)
    assert response.content_type == b"application/json"
