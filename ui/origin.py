"""Refuse NiceGUI's socket connections opened from a foreign web page.

NiceGUI drives the page over socket.io at `/_nicegui_ws`. A browser attaches cookies to
a cross-site WebSocket handshake, so without this check a page on another site could
open a socket in the user's name (cross-site WebSocket hijacking). Browsers always send
`Origin` on those handshakes; we accept it only when it names this site: the configured
`APP_BASE_URL`, or else the host the request was addressed to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

SOCKET_PATH = "/_nicegui_ws"


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, lowercased, default ports dropped; None if it has none."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


class OriginGuard:
    """ASGI middleware: socket.io requests whose `Origin` is not this site get 403."""

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {o for o in (origin_of(u) for u in allowed_origins if u) if o}

    def _acceptable(self, origin: str, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        normalized = origin_of(origin)
        if normalized is None:
            return False
        if self.allowed:
            return normalized in self.allowed
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        if not host:
            return False
        secure = scope.get("scheme") in {"https", "wss"}
        return normalized in {origin_of(f"http://{host}"), origin_of(f"https://{host}")} and (
            normalized.startswith("https://") or not secure
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and scope.get("path", "").startswith(SOCKET_PATH):
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin")
            if origin is not None and not self._acceptable(origin.decode("latin-1"), scope, headers):
                log.warning("refused a %s connection from foreign origin %r", scope["type"], origin[:100])
                await self._refuse(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": "foreign origin"})
            return
        body = b"connections from other sites are refused"
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
