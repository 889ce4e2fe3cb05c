"""Partner look-up by secret, cached briefly so that the hot path rarely touches the store.

Entries live `ttl` seconds, so `partners update` reaches a running server within
seconds. Unknown secrets are cached too (a flood of bad keys costs no queries);
the cache is cleared whole when it grows past its bound.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable

from pushgate import keys
from pushgate.store.models import Partner
from pushgate.store.partners import KeyKind

Lookup = Callable[[KeyKind, str], Awaitable[Partner | None]]


class PartnerCache:
    def __init__(self, lookup: Lookup, ttl: float = 2.0, max_entries: int = 10_000) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[tuple[KeyKind, bytes], tuple[float, Partner | None]] = {}

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
