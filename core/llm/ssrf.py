"""SSRF guard: a tenant's LLM endpoint may only reach public addresses, unless the operator allows more.

Every address the host name resolves to is checked (a name with one public and one
private address is refused). The check runs when a provider is saved and again before
calls, with a short cache. An operator may trust named hosts (`host` or `host:port`)
while everything else private stays refused. Calls never follow redirects (see
`http.py`), so the URL checked is the URL reached. Caveat: the HTTP client resolves the
name once more, so a DNS server that answers differently within the cache time is not
caught here; operators who need that guarantee route outbound traffic through an egress
proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from core.llm.types import UnsafeEndpoint

_CACHE_S = 30.0


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class EndpointGuard:
    """Refuses base URLs that resolve to loopback, private, link-local or other non-public addresses.

    `allow_private` lets every address through (a single-team install); `allowed_hosts`
    lets only the named hosts through, each as `host` (any port) or `host:port`
    (`[::1]:8000` for IPv6).
    """

    def __init__(self, allow_private: bool, allowed_hosts: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowed_hosts = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self._checked: dict[str, float] = {}

    async def check(self, url: str) -> None:
        """Raise `UnsafeEndpoint` unless `url` is http(s) and every address of its host is public."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UnsafeEndpoint(f"base URL {url!r} must be an http:// or https:// URL with a host name")
        if self.allow_private:
            return
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UnsafeEndpoint(f"base URL {url!r} has an invalid port") from exc
        with_port = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if host in self.allowed_hosts or with_port in self.allowed_hosts:
            return
        if self._checked.get(host, 0.0) > time.monotonic():
            return
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
