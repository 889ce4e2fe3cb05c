"""The per-key GCRA request limiter (targeted-push-api.txt: 10000 requests per minute)."""

from __future__ import annotations

import pytest

from pushgate.limits.rate import PERIOD, GcraLimiter

T0 = 1_000.0


def burst(limiter: GcraLimiter, key: str, per_minute: int, count: int, now: float) -> int:
    """How many of `count` simultaneous requests are allowed."""
    return sum(1 for _ in range(count) if limiter.hit(key, per_minute, now) == 0)


def test_first_request_is_allowed() -> None:
    assert GcraLimiter().hit("k", 10, T0) == 0


@pytest.mark.parametrize("per_minute", [1, 3, 7, 10, 60, 1_000, 10_000])
def test_burst_allows_the_whole_per_minute_allowance(per_minute: int) -> None:
    limiter = GcraLimiter()
    assert burst(limiter, "k", per_minute, per_minute, T0) == per_minute


@pytest.mark.parametrize("per_minute", [1, 60, 1_000])
def test_request_beyond_the_allowance_is_refused(per_minute: int) -> None:
    limiter = GcraLimiter()
    burst(limiter, "k", per_minute, per_minute, T0)
    assert limiter.hit("k", per_minute, T0) > 0


def test_refusal_returns_the_wait_until_the_next_request_is_allowed() -> None:
    limiter = GcraLimiter()
    burst(limiter, "k", 60, 60, T0)
    assert limiter.hit("k", 60, T0) == pytest.approx(1.0)
    assert limiter.hit("k", 60, T0 + 0.25) == pytest.approx(0.75)


def test_refused_requests_do_not_use_up_allowance() -> None:
    limiter = GcraLimiter()
    burst(limiter, "k", 60, 60, T0)
    for _ in range(100):
        assert limiter.hit("k", 60, T0) > 0
    assert limiter.hit("k", 60, T0 + 1.0) == 0


def test_after_the_burst_requests_are_held_to_the_steady_rate() -> None:
    limiter = GcraLimiter()
    burst(limiter, "k", 60, 60, T0)
    allowed = []
    for tick in range(1, 11):
        now = T0 + tick * 1.0  # one interval per tick
        allowed.append(limiter.hit("k", 60, now) == 0)
        assert limiter.hit("k", 60, now) > 0  # a second one in the same interval is refused
    assert allowed == [True] * 10


def test_allowance_refills_completely_after_a_quiet_minute() -> None:
    limiter = GcraLimiter()
    burst(limiter, "k", 60, 60, T0)
    assert burst(limiter, "k", 60, 61, T0 + PERIOD) == 60


def test_keys_are_limited_independently() -> None:
    limiter = GcraLimiter()
    burst(limiter, "a", 5, 5, T0)
    assert limiter.hit("a", 5, T0) > 0
    assert limiter.hit("b", 5, T0) == 0


@pytest.mark.parametrize("per_minute", [0, -5])
def test_zero_or_negative_allowance_refuses_everything(per_minute: int) -> None:
    assert GcraLimiter().hit("k", per_minute, T0) == PERIOD
