"""OAuth2 access tokens (FCM, HMS): the pure parts, shared by both providers.

- `parse_token_response`: the token endpoint's JSON answer.
- `AccessTokenCache`: when a fetched token may still be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

# A token is used until this long before it expires, so that a request never carries a
# token that expires on the way (and clocks may disagree a little).
SAFETY_MARGIN_S = 300.0


class TokenResponseError(ValueError):
    """The token endpoint answered 2xx with something that is not a usable token."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_in: float  # seconds, as granted
    token_type: str = "Bearer"


def parse_token_response(body: bytes) -> AccessToken:
    """`{"access_token", "expires_in", "token_type"}` as an AccessToken."""
    try:
        data: Any = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise TokenResponseError("token endpoint answer is not JSON") from exc
    if not isinstance(data, dict):
        raise TokenResponseError("token endpoint answer is not a JSON object")
    value = data.get("access_token")
    if not isinstance(value, str) or not value:
        raise TokenResponseError("token endpoint answer has no access_token")
    expires_in = data.get("expires_in", 3600)
    if isinstance(expires_in, str) and expires_in.isdigit():  # some servers send a string
        expires_in = int(expires_in)
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
        raise TokenResponseError("token endpoint answer has no valid expires_in")
    token_type = data.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenResponseError(f"unsupported token_type {token_type!r}")
    return AccessToken(value=value, expires_in=float(expires_in), token_type=token_type)


class AccessTokenCache:
    """One credential's current access token and until when it may be used.

    Valid until `expires_in` minus the safety margin after it was obtained; a token that
    lives shorter than twice the margin is used for half its life instead.
    """

    def __init__(self, margin: float = SAFETY_MARGIN_S) -> None:
        self.margin = margin
        self._value: str | None = None
        self._use_until = 0.0

    def get(self, now: float) -> str | None:
        """The cached token if it may still be used at `now`, else None."""
        if self._value is not None and now < self._use_until:
            return self._value
        return None

    def store(self, token: AccessToken, obtained_at: float) -> str:
        """Keep a token fetched at `obtained_at` (take the time before the request)."""
        lifetime = token.expires_in
        usable = lifetime - self.margin if lifetime > 2 * self.margin else lifetime / 2
        self._value = token.value
        self._use_until = obtained_at + usable
        return token.value

    @property
    def use_until(self) -> float | None:
        return self._use_until if self._value is not None else None

    def invalidate(self, value: str | None = None) -> None:
        """Forget the token (after the provider refused it).

        With `value`, only if it is still the cached one: a concurrent send may already
        have replaced it with a fresh token, which must not be thrown away.
        """
        if value is None or value == self._value:
            self._value = None
            self._use_until = 0.0
