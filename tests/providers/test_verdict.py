"""Verdict helpers: Retry-After and header lookup."""

from __future__ import annotations

import pytest

from pushgate.jobs import VerdictKind
from pushgate.providers.verdict import Verdict, header, parse_retry_after

NOW = 1792567660.0  # 2026-10-21 07:27:40 GMT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 20.0),
        ("Wed, 21 Oct 2026 07:00:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_delta_seconds_or_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_headers_are_found_whatever_their_case() -> None:
    assert header({"Retry-After": "3"}, "retry-after") == "3"
    assert header({"retry-after": "4"}, "retry-after") == "4"
    assert header({}, "retry-after") is None


def test_only_ok_and_retry_are_not_permanent() -> None:
    assert Verdict("ok").ok and not Verdict("ok").permanent
    assert not Verdict("retry").permanent
    kinds: list[VerdictKind] = ["dead_token", "credential", "rejected"]
    for kind in kinds:
        assert Verdict(kind).permanent
