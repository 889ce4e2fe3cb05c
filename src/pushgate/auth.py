"""Partner look-up by secret, cached briefly so that the hot path rarely touches the store.

Entries live `ttl` seconds, so `partners update` and `partners rotate-keys` reach a
running server within seconds (a rotated-out key keeps working for at most `ttl`).
Unknown secrets are cached too (a flood of one bad key costs no queries); the cache
is cleared whole when it grows past its bound. Entries are found by the SHA-256 of
the secret, so nothing here depends on how close a wrong key is to a real one.

Every key check goes through `admit`, which also counts failed checks per client
address (limits/bad_keys.py).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pushgate import keys
from pushgate.limits import bad_keys
from pushgate.store.models import Partner
from pushgate.store.partners import KeyKind
from pushgate.targeting import errors

Lookup = Callable[[KeyKind, str], Awaitable[Partner | None]]


class PartnerCache:
    def __init__(
        self,
        lookup: Lookup,
        ttl: float = 2.0,
        max_entries: int = 10_000,
        bad: bad_keys.BadKeys | None = None,  # None: no limit on bad keys
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[tuple[KeyKind, bytes], tuple[float, Partner | None]] = {}
        self.bad_keys = bad or bad_keys.BadKeys(0, 0)

    async def get(self, kind: KeyKind, secret: str | None) -> Partner | None:
        if not secret:
            return None
        key = (kind, keys.hash_secret(secret))
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        partner = await self._lookup(kind, secret)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (now + self._ttl, partner)
        return partner

    async def admit(
        self,
        kind: KeyKind,
        secret: str | None,
        client_ip: str | None,
        *,
        allow_list: bool = True,
    ) -> Partner | None:
        """The partner of the secret (None: no such secret), if it accepts this address.

        Raises 429 (`too_many_requests`) while the address is over its allowance of bad keys,
        before the lookup, so that a blocked client learns nothing about the key it sent; and
        403 (`ip_not_allowed`) when `allow_list` and the partner does not accept the address
        (the API key's allow list; the SDK key and the request token have none)."""
        await self.bad_keys.check(client_ip)
        partner = await self.get(kind, secret)
        if partner is None:
            if secret:
                await self.bad_keys.failed(client_ip)
            return None
        if allow_list:
            check_ip(partner, client_ip)
        return partner

    async def aclose(self) -> None:
        await self.bad_keys.aclose()


def body_api_key(body: Any) -> str | None:
    """The `api_key` of a JSON body, when it has a string one."""
    key = body.get("api_key") if isinstance(body, dict) else None
    return key if isinstance(key, str) else None


def check_ip(partner: Partner, client_ip: str | None) -> None:
    if not ip_allowed(partner, client_ip):
        raise errors.IP_NOT_ALLOWED


def ip_allowed(partner: Partner, client_ip: str | None) -> bool:
    if not partner.allow_ips:
        return True
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in partner.allow_ips)
