"""Verdict helpers: header lookup, and which kinds are permanent."""

from __future__ import annotations

from pushgate.jobs import VerdictKind
from pushgate.providers.verdict import Verdict, header


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
