"""Partner look-up by secret, cached briefly so that the hot path rarely touches the store.

Entries live `ttl` seconds, so `partners update` reaches a running server within
seconds. Unknown secrets are cached too (a flood of bad keys costs no queries);
the cache is cleared whole when it grows past its bound.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pushgate import keys
from pushgate.store.models import Partner
from pushgate.store.partners import KeyKind
from pushgate.targeting import errors

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

    async def admit(
        self, kind: KeyKind, secret: str | None, client_ip: str | None
    ) -> Partner | None:
        """The partner of the secret (None: no such secret), if it accepts this address."""
        partner = await self.get(kind, secret)
        if partner is not None:
            check_ip(partner, client_ip)
        return partner


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
