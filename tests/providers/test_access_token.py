"""Access-token answers and the cache's validity window."""

from __future__ import annotations

import pytest

from pushgate.providers.access_token import (
    AccessToken,
    AccessTokenCache,
    TokenResponseError,
    parse_token_response,
)

T0 = 1_800_000_000.0


def test_a_token_is_used_until_five_minutes_before_it_expires() -> None:
    cache = AccessTokenCache()
    cache.store(AccessToken("a", 3600), obtained_at=T0)
    assert cache.get(T0) == "a"
    assert cache.get(T0 + 3600 - 300 - 0.001) == "a"
    assert cache.get(T0 + 3600 - 300) is None


def test_a_short_lived_token_is_used_for_half_its_life() -> None:
    cache = AccessTokenCache()
    cache.store(AccessToken("a", 120), obtained_at=T0)
    assert cache.get(T0 + 59) == "a"
    assert cache.get(T0 + 60) is None


def test_invalidating_a_stale_token_keeps_a_fresher_one() -> None:
    cache = AccessTokenCache()
    cache.store(AccessToken("old", 3600), obtained_at=T0)
    cache.store(AccessToken("new", 3600), obtained_at=T0 + 1)
    cache.invalidate("old")
    assert cache.get(T0 + 2) == "new"
    cache.invalidate("new")
    assert cache.get(T0 + 2) is None


def test_a_token_answer_is_parsed() -> None:
    token = parse_token_response(
        b'{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}'
    )
    assert token == AccessToken("ya29.x", 3599.0, "Bearer")
    assert parse_token_response(b'{"access_token":"t","expires_in":"3600"}').expires_in == 3600


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        b'{"expires_in":3600}',
        b'{"access_token":"t","expires_in":0}',
        b'{"access_token":"t","expires_in":true}',
        b'{"access_token":"t","expires_in":3600,"token_type":"mac"}',
    ],
)
def test_an_unusable_token_answer_is_refused(body: bytes) -> None:
    with pytest.raises(TokenResponseError):
        parse_token_response(body)
