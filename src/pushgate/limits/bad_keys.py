"""Repeated bad keys from one client address are slowed down.

Keys are 256-bit random tokens, so guessing one is hopeless; this limit bounds what a client
that keeps presenting keys that match nothing costs the service (each unknown key is one store
query), and makes any guessing slower still. After `limit` failed key checks within `window`
seconds from one address, every request from that address that carries a key is answered 429
(`Retry-After`: the rest of the window), good keys included and without looking the key up:
a good key answered differently would tell a guesser that it had found one. Other addresses are
unaffected. A request without any key is a client's mistake, not a guess, and is not counted.
Addresses in PUSHGATE_BAD_KEY_EXEMPT (default: loopback) are not counted either: this host's own
tools and tests, and a proxy on it whose clients are not told apart (set
PUSHGATE_FORWARDED_ALLOW_IPS so that they are).

A window opens at an address's first failure and lasts `window` seconds, so an address gets at
most `limit` guesses per window. IPv6 addresses count per /64, the block one host is usually
given, so that walking through it does not escape the count.

Embedded: a bounded dict in memory, or with several API processes a table in a file they all
map (limits/shared_table.py), counted as with Redis. With Redis (PUSHGATE_REDIS_URL) the count is shared by every
API process (limits/redis.py: one Lua script per failure); each process remembers the windows it
has learnt, so the check before a lookup costs no round trip. A process that has not yet seen a
failure from a blocked address learns of the block at that address's next failure there.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pushgate.targeting import errors

if TYPE_CHECKING:
    from pushgate.config import Settings
    from pushgate.limits.shared_table import SharedTable

# Room for this many addresses with an open window (~100 bytes each); past it the window that
# ends soonest is forgotten. Only an attacker with more addresses than this gets more guesses.
MAX_CLIENTS = 10_000
_MAX_ADDRESS_CHARS = 64
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_bucket(address: str | None) -> str:
    """The unit failures are counted in: the address, or its /64 for IPv6."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # only a trusted proxy's X-Forwarded-For can bring one
        return address[:_MAX_ADDRESS_CHARS]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class Window:
    ends: float  # time.monotonic()
    failures: int


class Windows:
    """Failure counts per client in windows that open at the client's first failure.

    Every window lasts as long, so the dict's insertion order is (nearly) the order in which
    windows end: expired ones are dropped from the front, and at the bound the front goes."""

    def __init__(self, window: float, max_clients: int = MAX_CLIENTS) -> None:
        self.window = window
        self.max_clients = max_clients
        self._open: dict[str, Window] = {}

    def __len__(self) -> int:
        return len(self._open)

    def get(self, client: str, now: float) -> Window | None:
        found = self._open.get(client)
        return found if found is not None and found.ends > now else None

    def add_failure(self, client: str, now: float) -> Window:
        found = self.get(client, now)
        if found is None:
            found = self.put(client, Window(now + self.window, 0), now)
        found.failures += 1
        return found

    def put(self, client: str, window: Window, now: float) -> Window:
        self._open.pop(client, None)
        while self._open:
            first = next(iter(self._open))
            if self._open[first].ends > now and len(self._open) < self.max_clients:
                break
            del self._open[first]
        self._open[client] = window
        return window


class SharedCounter(Protocol):
    """Failures counted where every API process sees them (limits/redis.py)."""

    async def add_failure(self, client: str, window: float) -> tuple[int, float]:
        """Count one failure; the failures in the client's window and the seconds it has left."""
        ...

    async def aclose(self) -> None: ...


class BadKeys:
    """The check before a key lookup, and the count after a failed one."""

    def __init__(
        self,
        limit: int,
        window: float,
        shared: SharedCounter | None = None,
        exempt: Sequence[Network] = (),
    ) -> None:
        self.limit = limit
        self.windows = Windows(window)
        self.shared = shared
        self.exempt = tuple(exempt)

    def _counts(self, address: str | None) -> bool:
        if self.limit <= 0:
            return False
        if not self.exempt or address is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return True
        return not any(ip in network for network in self.exempt)

    async def check(self, address: str | None) -> None:
        """Raise 429 while the address is over its allowance."""
        if not self._counts(address):
            return
        now = time.monotonic()
        found = self.windows.get(client_bucket(address), now)
        if found is not None and found.failures >= self.limit:
            raise errors.too_many_requests(found.ends - now)

    async def failed(self, address: str | None) -> None:
        """Count a failed key check; raise 429 when it goes over the allowance (with several
        processes, or concurrent requests, failures can arrive after the check let them in)."""
        if not self._counts(address):
            return
        client = client_bucket(address)
        now = time.monotonic()
        if self.shared is None:
            found = self.windows.add_failure(client, now)
        else:
            failures, left = await self.shared.add_failure(client, self.windows.window)
            found = self.windows.put(client, Window(now + left, failures), now)
        if found.failures > self.limit:
            raise errors.too_many_requests(found.ends - now)

    async def aclose(self) -> None:
        if self.shared is not None:
            await self.shared.aclose()


def from_settings(settings: Settings, table: SharedTable | None = None) -> BadKeys:
    """Counted in Redis when there is one, else in `table` (the API processes of one `serve`
    share it), else in this process's memory."""
    shared: SharedCounter | None = None
    if settings.redis_url and settings.bad_key_limit > 0:
        from pushgate.limits.redis import RedisBadKeyCounter

        shared = RedisBadKeyCounter(settings.redis_url, settings.redis_prefix)
    elif table is not None:
        from pushgate.limits.shared_table import TableBadKeyCounter

        shared = TableBadKeyCounter(table)
    return BadKeys(
        settings.bad_key_limit,
        settings.bad_key_window,
        shared,
        exempt_networks(settings.bad_key_exempt),
    )


def exempt_networks(text: str) -> list[Network]:
    """`127.0.0.0/8,::1` -> the networks whose bad keys are not counted."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    ]
