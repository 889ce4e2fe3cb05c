"""When a failed send is tried again (delivery/backoff.py `next_attempt`).

providers.md / contract.md: transient answers are retried "with backoff, honouring
`Retry-After`, until the notification's TTL runs out". So: the delay grows with the attempts
up to a cap, is jittered, is never shorter than the provider's Retry-After (which the cap does
not cut), and a retry that would come at or after the push's expiry is not scheduled at all
(None: the caller expires the job now).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushgate.delivery.backoff import next_attempt

# The schedule, written out here rather than read from the module, so that a change to it
# fails these tests: 1 s after the first try, doubling, at most 5 minutes.
FIRST_CEILING = 1.0
CAP = 300.0
# Jobs told the same Retry-After are spread over a tenth of it beyond that time.
SPREAD = 0.1
NOW = 1_800_000_000.0
FAR = NOW + 10 * 365 * 86400.0  # an expiry that never matters

SETTINGS = settings(max_examples=300, deadline=None)
attempts_st = st.integers(min_value=0, max_value=200)
retry_after_st = st.floats(min_value=0.0, max_value=86_400.0, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32)


class Edge(random.Random):
    """An rng whose every draw is the lower (`high=False`) or upper end of its range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


LOW, HIGH = Edge(high=False), Edge(high=True)


def delay(attempts: int, retry_after: float | None = None, rng: random.Random = HIGH) -> float:
    at = next_attempt(attempts, NOW, FAR, retry_after, rng)
    assert at is not None
    return at - NOW


def ceiling(attempts: int) -> float:
    """The longest wait after `attempts` tries, by the schedule above."""
    return min(CAP, FIRST_CEILING * 2.0 ** max(0, attempts - 1))


# ---- growth and the cap ----


@pytest.mark.parametrize(
    ("attempts", "longest"),
    [
        (0, 1.0),
        (1, 1.0),
        (2, 2.0),
        (3, 4.0),
        (5, 16.0),
        (9, 256.0),
        (10, 300.0),  # 512 s would pass the cap
        (11, 300.0),
        (40, 300.0),
    ],
)
def test_the_wait_doubles_with_each_attempt_up_to_five_minutes(
    attempts: int, longest: float
) -> None:
    assert delay(attempts, rng=HIGH) == longest
    assert delay(attempts, rng=LOW) == longest / 2


@SETTINGS
@given(attempts=attempts_st, seed=seeds)
def test_the_wait_is_jittered_within_the_upper_half_of_its_ceiling(
    attempts: int, seed: int
) -> None:
    wait = delay(attempts, rng=random.Random(seed))

    assert ceiling(attempts) / 2 <= wait <= ceiling(attempts)
    assert wait <= CAP


@SETTINGS
@given(attempts=st.integers(min_value=1, max_value=60), seed=seeds)
def test_a_later_attempt_never_waits_less_at_the_same_draw(attempts: int, seed: int) -> None:
    """Growth: with the same random draw, one more attempt waits as long or longer (twice as
    long until the cap)."""
    now_wait = delay(attempts, rng=random.Random(seed))
    next_wait = delay(attempts + 1, rng=random.Random(seed))

    assert next_wait >= now_wait
    if ceiling(attempts + 1) < CAP:
        assert next_wait == pytest.approx(2 * now_wait)


def test_the_jitter_spreads_jobs_that_failed_together() -> None:
    rng = random.Random(7)
    waits = [delay(6, rng=rng) for _ in range(200)]

    assert min(waits) >= 16.0 and max(waits) <= 32.0
    assert len(set(waits)) == len(waits)
    # Both halves of the range are used: not a constant offset.
    assert min(waits) < 20.0 and max(waits) > 28.0


def test_without_an_rng_the_module_random_is_used_within_the_same_bounds() -> None:
    for _ in range(50):
        at = next_attempt(4, NOW, FAR)
        assert at is not None and 4.0 <= at - NOW <= 8.0


@SETTINGS
@given(attempts=st.integers(min_value=0, max_value=100_000), seed=seeds)
def test_the_cap_holds_for_any_number_of_attempts(attempts: int, seed: int) -> None:
    wait = delay(attempts, rng=random.Random(seed))

    assert CAP / 2 <= wait <= CAP or attempts < 10


# ---- the provider's Retry-After ----


@SETTINGS
@given(attempts=attempts_st, retry_after=retry_after_st, seed=seeds)
def test_a_retry_after_is_never_undercut(attempts: int, retry_after: float, seed: int) -> None:
    wait = delay(attempts, retry_after, rng=random.Random(seed))

    assert wait >= retry_after
    # ... and the job waits no longer than the longer of its backoff and the spread window.
    assert wait <= max(ceiling(attempts), retry_after * (1 + SPREAD))


@pytest.mark.parametrize("retry_after", [600.0, 3600.0, 86_400.0])
def test_a_retry_after_beyond_the_cap_is_honoured(retry_after: float) -> None:
    """The cap bounds pushgate's own backoff, not the provider's instruction."""
    assert delay(40, retry_after, rng=LOW) == retry_after
    assert delay(40, retry_after, rng=HIGH) == pytest.approx(retry_after * (1 + SPREAD))


def test_a_short_retry_after_does_not_shorten_the_backoff() -> None:
    assert delay(9, retry_after=1.0, rng=LOW) == 128.0
    assert delay(9, retry_after=1.0, rng=HIGH) == 256.0


def test_jobs_told_the_same_retry_after_come_back_spread_over_a_tenth_of_it() -> None:
    rng = random.Random(3)
    waits = [delay(1, retry_after=100.0, rng=rng) for _ in range(200)]

    assert all(100.0 <= w <= 110.0 for w in waits)
    assert max(waits) - min(waits) > 8.0  # spread, not bunched at 100 s


# ---- expiry ----


def test_a_retry_due_before_the_expiry_is_scheduled() -> None:
    assert next_attempt(1, NOW, NOW + 1.001, rng=HIGH) == NOW + 1.0


@pytest.mark.parametrize("expires_in", [1.0, 0.999, 0.0, -5.0])
def test_a_retry_due_at_or_after_the_expiry_gives_up(expires_in: float) -> None:
    assert next_attempt(1, NOW, NOW + expires_in, rng=HIGH) is None


def test_a_retry_after_past_the_expiry_gives_up_though_the_backoff_would_fit() -> None:
    assert next_attempt(1, NOW, NOW + 30.0, rng=LOW) == NOW + 0.5
    assert next_attempt(1, NOW, NOW + 30.0, retry_after=60.0, rng=LOW) is None


def test_the_cap_does_not_keep_a_job_past_its_expiry() -> None:
    assert next_attempt(40, NOW, NOW + 200.0, rng=LOW) == NOW + 150.0
    assert next_attempt(40, NOW, NOW + 200.0, rng=HIGH) is None


@SETTINGS
@given(
    attempts=attempts_st,
    retry_after=st.none() | retry_after_st,
    expires_in=st.floats(min_value=-100.0, max_value=100_000.0, allow_nan=False),
    seed=seeds,
)
def test_a_retry_is_scheduled_exactly_when_it_comes_before_the_expiry(
    attempts: int, retry_after: float | None, expires_in: float, seed: int
) -> None:
    expires_at = NOW + expires_in
    at = next_attempt(attempts, NOW, expires_at, retry_after, random.Random(seed))
    # The same draw with no expiry in sight: when the retry would have been.
    wanted = next_attempt(attempts, NOW, FAR, retry_after, random.Random(seed))
    assert wanted is not None

    if wanted < expires_at:
        assert at == wanted
        assert NOW < at < expires_at
    else:
        assert at is None
