"""The bad-key limit's pure parts (limits/bad_keys.py): what an address counts as, windows, the
memory bound. The limit on a running server: tests/e2e/test_bad_key_limit.py."""

from __future__ import annotations

import pytest

from pushgate.config import Settings
from pushgate.limits.bad_keys import BadKeys, Windows, client_bucket, exempt_networks, from_settings
from pushgate.targeting.errors import ApiError


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
        ("", "unknown"),
        ("not-an-address" * 10, ("not-an-address" * 10)[:64]),
    ],
)
def test_an_address_counts_alone_and_ipv6_by_its_64(address: str | None, bucket: str) -> None:
    assert client_bucket(address) == bucket


def test_defaults_are_twenty_failures_per_sixty_seconds() -> None:
    settings = Settings()
    assert (settings.bad_key_limit, settings.bad_key_window) == (20, 60)


def test_a_window_opens_at_the_first_failure_and_ends_after_its_length() -> None:
    windows = Windows(60)
    first = windows.add_failure("a", 100.0)
    windows.add_failure("a", 159.0)

    assert (first.ends, first.failures) == (160.0, 2)
    assert windows.get("a", 160.0) is None
    assert windows.add_failure("a", 160.0).failures == 1


def test_windows_never_hold_more_clients_than_their_bound() -> None:
    windows = Windows(60, max_clients=100)
    for n in range(1000):
        windows.add_failure(f"10.0.{n // 256}.{n % 256}", 100.0 + n * 0.001)

    assert len(windows) == 100
    assert windows.get("10.0.3.231", 101.0) is not None  # the newest stay
    assert windows.get("10.0.0.0", 101.0) is None


def test_expired_windows_are_dropped_as_new_ones_open() -> None:
    windows = Windows(1)
    for n in range(50):
        windows.add_failure(f"c{n}", float(n))

    assert len(windows) <= 2


async def test_the_limit_blocks_after_its_count_and_only_that_client() -> None:
    guard = BadKeys(limit=3, window=60)
    for _ in range(3):
        await guard.check("198.51.100.1")
        await guard.failed("198.51.100.1")

    with pytest.raises(ApiError) as blocked:
        await guard.check("198.51.100.1")
    assert (blocked.value.status, blocked.value.code) == (429, "too_many_requests")
    assert 59 <= (blocked.value.retry_after or 0) <= 60
    await guard.check("198.51.100.2")


async def test_a_failure_past_the_limit_is_answered_429() -> None:
    guard = BadKeys(limit=1, window=60)
    await guard.failed("198.51.100.1")
    with pytest.raises(ApiError):
        await guard.failed("198.51.100.1")


async def test_a_limit_of_zero_counts_nothing() -> None:
    guard = BadKeys(limit=0, window=60)
    for _ in range(100):
        await guard.failed("198.51.100.1")
    await guard.check("198.51.100.1")
    assert len(guard.windows) == 0


async def test_exempt_addresses_are_never_counted_nor_blocked() -> None:
    guard = BadKeys(limit=1, window=60, exempt=exempt_networks("127.0.0.0/8,::1"))
    for address in ("127.0.0.1", "127.9.9.9", "::1"):
        for _ in range(5):
            await guard.failed(address)
        await guard.check(address)
    assert len(guard.windows) == 0
    await guard.failed("198.51.100.1")
    with pytest.raises(ApiError):
        await guard.failed("198.51.100.1")


def test_the_default_exempts_loopback_only() -> None:
    guard = from_settings(Settings())
    assert [str(n) for n in guard.exempt] == ["127.0.0.0/8", "::1/128"]
    assert from_settings(Settings(bad_key_exempt="")).exempt == ()


class FakeShared:
    """What Redis answers: the count so far and the window's seconds left."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def add_failure(self, client: str, window: float) -> tuple[int, float]:
        self.failures += 1
        return self.failures, 42.0

    async def aclose(self) -> None:
        pass


async def test_a_shared_count_blocks_locally_once_learnt() -> None:
    guard = BadKeys(limit=20, window=60, shared=FakeShared(failures=19))
    await guard.failed("198.51.100.1")  # the 20th, counted elsewhere too

    with pytest.raises(ApiError) as blocked:
        await guard.check("198.51.100.1")
    assert blocked.value.retry_after == 42
