"""The one Retry-After reading (pushgate/retry_after.py), for provider answers and the client."""

from __future__ import annotations

import pytest

from pushgate.retry_after import parse_retry_after

NOW = 1792567660.0  # 2026-10-21 07:27:40 GMT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 20.0),
        ("Wed, 21 Oct 2026 07:00:00 GMT", 0.0),  # in the past: retry now
        ("Wednesday, 21-Oct-26 07:28:00 GMT", 20.0),  # RFC 850, obsolete but allowed
        ("Wed Oct 21 07:28:00 2026", 20.0),  # asctime: no zone, GMT all the same
        ("", None),
        (None, None),
    ],
)
def test_delay_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1.5", 2.0), ("0.2", 1.0), ("3.0", 3.0), (" 2.25 ", 3.0)],
)
def test_a_fraction_is_rounded_up_never_waiting_less_than_asked(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    "value", ["-5", "+5", "1e3", "1.", ".5", "inf", "nan", "soon", "٣", "Wed, 99 Oct 2026"]
)
def test_anything_else_is_as_if_absent(value: str) -> None:
    assert parse_retry_after(value, NOW) is None
