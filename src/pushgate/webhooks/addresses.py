"""Which URLs a webhook may point at: `https://` to public addresses only, so that a partner
cannot make the service call into its own network (server-side request forgery). Loopback,
private, link-local, multicast and reserved addresses are refused unless the operator allows
their network (`PUSHGATE_WEBHOOK_ALLOW_NETWORKS`); `http://` is then accepted for them too.

The check runs at registration and again at every connection (`resolve_allowed`), on the
addresses the connection is then made to, so a name that later resolves elsewhere is caught.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048


class RefusedUrl(ValueError):
    """A URL a webhook may not use; the message says why."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """`PUSHGATE_WEBHOOK_ALLOW_NETWORKS`: comma-separated CIDRs (ValueError on a bad one)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return address.is_global and not address.is_multicast


def allowed(address: Address, networks: Sequence[Network]) -> bool:
    return is_public(address) or any(address in network for network in networks)


def check_url(url: str, networks: Sequence[Network]) -> SplitResult:
    """The URL's parts if its form may be used (the addresses are checked by `resolve_allowed`)."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"the url is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RefusedUrl("the url must be https://host/...")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("the url may not carry a user name or password")
    if parts.fragment:
        raise RefusedUrl("the url may not carry a fragment")
    try:
        _ = parts.port
    except ValueError:
        raise RefusedUrl("the url's port is not a number from 0 to 65535") from None
    if parts.scheme == "http" and not networks:
        raise RefusedUrl("the url must be https://")
    return parts


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def allowed_url(url: str, networks: Sequence[Network]) -> tuple[SplitResult, list[str]]:
    """The URL's parts and the addresses to connect to, both checked (`check_url`, then
    `resolve_allowed`): what registration and every connection ask."""
    parts = check_url(url, networks)
    return parts, await resolve_allowed(parts, networks)


async def resolve_allowed(parts: SplitResult, networks: Sequence[Network]) -> list[str]:
    """The addresses to connect to for the URL, every one allowed; RefusedUrl otherwise (an
    `http://` URL only where each address is in an allowed network)."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = _literal(host)
    if literal is not None:
        found = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise RefusedUrl(f"the url's host does not resolve: {error.strerror}") from None
        found = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in found:
        if not allowed(address, networks):
            raise RefusedUrl(f"the url's host resolves to {address}, which is not a public address")
        if parts.scheme == "http" and not any(address in n for n in networks):
            raise RefusedUrl("the url must be https:// (http:// only for allowed networks)")
    return [str(address) for address in dict.fromkeys(found)]
