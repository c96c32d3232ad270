"""SSRF guard: a tenant's LLM endpoint may only reach public addresses, unless the operator allows more.

Every address the host name resolves to is checked (a name with one public and one
private address is refused). The check runs when a provider is saved and again before
calls, with a short cache. Caveat: the HTTP client resolves the name once more, so a
DNS server that answers differently within the cache time is not caught here; operators
who need that guarantee route outbound traffic through an egress proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from core.llm.types import UnsafeEndpoint

_CACHE_S = 30.0


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class EndpointGuard:
    """Refuses base URLs that resolve to loopback, private, link-local or other non-public addresses."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._checked: dict[str, float] = {}

    async def check(self, url: str) -> None:
        """Raise `UnsafeEndpoint` unless `url` is http(s) and every address of its host is public."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UnsafeEndpoint(f"base URL {url!r} must be an http:// or https:// URL with a host name")
        if self.allow_private:
            return
        host = parts.hostname
        if self._checked.get(host, 0.0) > time.monotonic():
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UnsafeEndpoint(f"base URL {url!r} has an invalid port") from exc
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnsafeEndpoint(f"the host of base URL {url!r} does not resolve: {exc.strerror or exc}") from exc
        addresses = sorted({str(info[4][0]) for info in infos})
        blocked = [a for a in addresses if not _is_public(a)]
        if blocked or not addresses:
            raise UnsafeEndpoint(
                f"base URL {url!r} resolves to non-public address(es) {', '.join(blocked) or 'none'}; "
                "tenants may not reach loopback, private or link-local networks. An operator can allow "
                "it with LLM_ALLOW_PRIVATE_ENDPOINTS=true"
            )
        self._checked[host] = time.monotonic() + _CACHE_S
