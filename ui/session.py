"""Who is signed in to the browser: the one helper every page and event handler uses.

The browser's NiceGUI user storage (`app.storage.user`) holds a session id and nothing
else; the session itself lives in the control plane (`core.auth.sessions`). Every page
build *and every event handler* resolves it again, so a logout, a removal from the
workspace or a password change takes effect on the next click.

Workspace pages are protected by `ui.tenant_page.Pages.tenant_page` (session, role and
not-found in one place); `page_state` is for pages open to anyone signed in, with or
without a workspace (/workspaces). `current_context` is for handlers: it navigates to the
login page (signed out) or shows a notification (role too low) and returns None.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

from nicegui import app, ui
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core.auth.sessions import SessionState
from core.context import Role, TenantContext
from wiring.services import Services

log = logging.getLogger(__name__)

SESSION_KEY = "sid"
STATE_KEY = "crewcanvas_session_state"  # per-connection (app.storage.client), for the header
SERVICES_KEY = "crewcanvas_services"  # the header's handlers need them; frame() takes only a title
DEFAULT_LANDING = "/workspaces"
LOGIN_ERROR_KEY = "crewcanvas_login_error"  # one sentence for the login page, shown once


def safe_next(target: str | None, default: str = DEFAULT_LANDING) -> str:
    """`target` if it is a path on this site, else `default` (no open redirects)."""
    if not target or not isinstance(target, str) or len(target) > 2000:
        return default
    if any(ord(c) < 32 or c == "\\" for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def flash_login_error(request: Request, message: str) -> None:
    """Keep one sentence for the login page to show once (in the signed session cookie)."""
    request.session[LOGIN_ERROR_KEY] = message


def take_login_error(request: Request) -> str | None:
    """Why the last sign-in attempt that left the page failed, once."""
    message = request.session.pop(LOGIN_ERROR_KEY, None) if "session" in request.scope else None
    return message if isinstance(message, str) else None


def session_id() -> str | None:
    """The session id this browser holds, if any."""
    value = app.storage.user.get(SESSION_KEY)
    return value if isinstance(value, str) else None


def remember(session: str) -> None:
    """Hand the browser a new session id (after a successful sign-in)."""
    app.storage.user.clear()
    app.storage.user[SESSION_KEY] = session


def forget() -> None:
    app.storage.user.pop(SESSION_KEY, None)


async def current_state(services: Services) -> SessionState | None:
    """The signed-in state, resolved afresh; None (and the stale id dropped) if signed out."""
    token = session_id()
    state = await services.identity.sessions.resolve(token)
    if state is None and token is not None:
        forget()
    app.storage.client[STATE_KEY] = state
    app.storage.client[SERVICES_KEY] = services
    return state


def _here() -> str:
    try:
        request = ui.context.client.request
    except (AttributeError, RuntimeError):
        return DEFAULT_LANDING
    if request is None:
        return DEFAULT_LANDING
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def client_address() -> str | None:
    """The browser's address as the server saw it (for login throttling)."""
    request = ui.context.client.request
    return request.client.host if request is not None and request.client else None


def login_url(next_path: str | None = None) -> str:
    return "/login?next=" + quote(safe_next(next_path or _here()), safe="/")


async def page_state(services: Services) -> SessionState | Response:
    """For pages open to any signed-in user, with or without a tenant (e.g. /workspaces)."""
    state = await current_state(services)
    if state is None:
        return RedirectResponse(login_url(), status_code=303)
    return state


async def current_context(services: Services, min_role: Role = Role.VIEWER) -> TenantContext | None:
    """For event handlers: the context as of now, or None after navigating to /login or notifying."""
    state = await current_state(services)
    if state is None:
        ui.navigate.to(login_url())
        return None
    if state.context is None:
        ui.navigate.to("/workspaces")
        return None
    if state.context.role.rank < min_role.rank:
        ui.notify(f"your role '{state.context.role}' cannot do this; it needs '{min_role}' or higher", type="negative")
        return None
    return state.context


async def sign_out(services: Services) -> None:
    """End the session in the control plane and drop the id from the browser."""
    await services.identity.sessions.end(session_id())
    forget()
    app.storage.client[STATE_KEY] = None
