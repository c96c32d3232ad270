"""Outbound HTTP for remote providers: connection pools that never follow a redirect.

The SSRF guard checks a provider's base URL, and only that: a redirect would carry the
request, and the provider's key, to an address the guard never saw. The OpenAI SDK and
LiteLLM's own HTTP handler both follow redirects by default, so every remote call gets
a client built here instead: `follow_redirects=False`, and beneath it a transport that
turns a redirect answer into `RedirectRefused` before any client could act on it (so a
client built around this transport with the wrong setting still cannot follow one).

Pools are kept per event loop: an httpx pool's connections belong to the loop that
opened them, and CrewAI may call from a worker thread with a loop of its own.
"""

from __future__ import annotations

import asyncio
import weakref
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from core.llm.types import LLMError


class RedirectRefused(LLMError):
    """A provider answered with a redirect; raised inside the HTTP client, translated into `ProviderCallFailed`."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(
            f"the provider answered with a redirect (HTTP {status}) to {location or 'an unnamed location'}; "
            "redirects are not followed: set the provider's base URL to the final address"
        )
        self.status = status
        self.location = location


def shown_location(request_url: str, location: str) -> str:
    """Where a redirect points, absolute, without credentials, query or fragment (they may hold tokens)."""
    target = urlsplit(urljoin(request_url, location))
    host = target.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = target.port
    except ValueError:  # a malformed port: show the host alone
        port = None
    netloc = f"{host}:{port}" if port else host
    shown = urlunsplit((target.scheme, netloc, target.path, "", ""))
    return shown if len(shown) <= 200 else shown[:200] + "..."


class _RefuseRedirects(httpx.AsyncBaseTransport):
    """Sends one request; a redirect answer raises `RedirectRefused` instead of reaching the client."""

    def __init__(self, pool: httpx.AsyncBaseTransport) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._pool.handle_async_request(request)
        if response.has_redirect_location:
            location = shown_location(str(request.url), response.headers["location"])
            await response.aclose()
            raise RedirectRefused(response.status_code, location)
        return response

    async def aclose(self) -> None:
        # LiteLLM closes the short-lived clients it builds around this transport (after a
        # reconnect, say); the pool underneath outlives them and is closed by `ProviderHTTP`.
        return None


class ProviderHTTP:
    """The connection pools of remote provider calls, one per event loop, never following redirects."""

    def __init__(self) -> None:
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncHTTPTransport] = (
            weakref.WeakKeyDictionary()
        )
        self._transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _RefuseRedirects] = (
            weakref.WeakKeyDictionary()
        )

    def transport(self) -> httpx.AsyncBaseTransport:
        """The running loop's transport (pooled connections, redirects refused)."""
        loop = asyncio.get_running_loop()
        transport = self._transports.get(loop)
        if transport is None:
            # trust_env: the CA bundle may come from SSL_CERT_FILE; proxies are not read
            # (neither does LiteLLM's default transport), so the guarded host is the one reached.
            pool = httpx.AsyncHTTPTransport(trust_env=True)
            self._pools[loop] = pool
            transport = self._transports[loop] = _RefuseRedirects(pool)
        return transport

    def client(self, timeout_s: float) -> httpx.AsyncClient:
        """A client on the running loop's pool; cheap, so one per call."""
        return httpx.AsyncClient(transport=self.transport(), follow_redirects=False, timeout=timeout_s, trust_env=False)

    async def aclose(self) -> None:
        """Close the running loop's pool (pools of loops that are gone went with them)."""
        loop = asyncio.get_running_loop()
        self._transports.pop(loop, None)
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.aclose()
