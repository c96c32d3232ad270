"""The one way a browser becomes signed in: a new NiceGUI browser id, then the session id.

NiceGUI's user storage is keyed by the browser id in its signed session cookie. If a
sign-in only wrote the session id into the storage of the id the browser already had, a
copy of that cookie taken earlier (planted by someone else, or saved along the way) would
be signed in too: session fixation. So every sign-in ends in a plain HTTP request that
gives the browser a fresh id and drops the old one's storage.

Password sign-in, sign-up and invite acceptance happen in NiceGUI event handlers, which
cannot set cookies. They call `hand_over(session, next)` and navigate to the URL it
returns: `/auth/session?ticket=...`, where the ticket is random, single-use, expires in
a minute and maps to the session id server-side (the session id never appears in a URL).
The OIDC callback is already an HTTP request and calls `start_browser_session` directly.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass

from nicegui import app
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ui.session import DEFAULT_LANDING, flash_login_error, remember, safe_next

HANDOFF_PATH = "/auth/session"
TICKET_TTL_S = 60.0
_MAX_PENDING = 10_000
_STATE_ATTR = "crewcanvas_sign_in_handoffs"


@dataclass(frozen=True)
class _Pending:
    session: str
    target: str
    expires: float


class Handoffs:
    """Single-use tickets from an event handler's sign-in to the HTTP request that finishes it."""

    def __init__(self, ttl_s: float = TICKET_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._pending: dict[str, _Pending] = {}

    def issue(self, session: str, target: str) -> str:
        now = time.monotonic()
        self._pending = {k: v for k, v in self._pending.items() if v.expires > now}
        if len(self._pending) >= _MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))
        ticket = secrets.token_urlsafe(32)
        self._pending[ticket] = _Pending(session, safe_next(target), now + self._ttl_s)
        return ticket

    def redeem(self, ticket: str) -> _Pending | None:
        pending = self._pending.pop(ticket, None)
        if pending is None or pending.expires <= time.monotonic():
            return None
        return pending


def _handoffs() -> Handoffs:
    handoffs = getattr(app.state, _STATE_ATTR, None)
    if not isinstance(handoffs, Handoffs):
        raise RuntimeError("ui.sign_in.register() was not called")
    return handoffs


def hand_over(session: str, target: str = DEFAULT_LANDING) -> str:
    """The URL that signs this browser in with `session` and lands on `target` (for event handlers)."""
    return f"{HANDOFF_PATH}?ticket={_handoffs().issue(session, target)}"


async def start_browser_session(request: Request, session: str) -> None:
    """Give the browser a fresh NiceGUI id, then store `session` in its (new, empty) user storage."""
    app.storage.user.clear()
    fresh = str(uuid.uuid4())
    request.session["id"] = fresh
    # What NiceGUI's request middleware does for a browser it has not seen; there is no public hook.
    await app.storage._create_user_storage(fresh)
    remember(session)


async def _finish(request: Request) -> Response:
    pending = _handoffs().redeem(request.query_params.get("ticket", ""))
    if pending is None:
        flash_login_error(request, "that sign-in has expired or was finished already; sign in again")
        return RedirectResponse("/login", status_code=303)
    await start_browser_session(request, pending.session)
    return RedirectResponse(pending.target, status_code=303)


def register() -> None:
    """Add the hand-over route and its ticket store (once per app)."""
    if any(getattr(route, "path", None) == HANDOFF_PATH for route in app.routes):
        return  # (the route, not the state, says whether this app has it: tests reset NiceGUI's routes)
    setattr(app.state, _STATE_ATTR, Handoffs())
    app.add_route(HANDOFF_PATH, _finish, methods=["GET"], name="sign_in_handoff", include_in_schema=False)
