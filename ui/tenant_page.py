"""What every workspace page shares: the session and role check, the shell, and error handling.

    pages = Pages(services)

    @pages.tenant_page("/agents/{agent_id}", Role.VIEWER, title="Agent")
    async def agent_page(page: PageView, agent_id: str) -> None:
        agent = await services.crews.agents.get(page.ctx, record_id(agent_id))  # NotFound -> not-found page
        ...
        ui.button("Save", on_click=page.action(save, Role.EDITOR))   # save(ctx) gets a fresh context

A page build resolves the session first: signed out -> 303 to /login (and back here
afterwards), no workspace -> /workspaces, role too low -> a page inside the shell that says
which role is needed. A `NotFound` (`record_id` turns a malformed id into one) while building shows the not-found
page inside the shell, so another workspace's URL looks exactly like one that never existed.

Handlers wrapped by `PageView.action` resolve the session again on every click (a logout
or a role change takes effect at once) and turn a `CoreError` (or an engine error) into one notification;
`notify_errors` does the latter for handlers that need no workspace.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from nicegui import ui
from starlette.responses import RedirectResponse, Response

from core.context import Role, TenantContext
from core.errors import CoreError, NotFound
from executor.errors import ExecutorError
from ui.layout import frame
from ui.session import current_context, current_state, login_url
from wiring.services import Services

#: What a handler may raise for the person to read: core's refusals and the engine's (an invalid flow).
REPORTED = (CoreError, ExecutorError)

#: How long a page may take to build before NiceGUI gives up with a 500 (its default is 3 s). Pages read
#: the database while building; a busy host (two test workers, a loaded server) took longer than 3 s.
PAGE_BUILD_TIMEOUT_S = 30.0

P = ParamSpec("P")
T = TypeVar("T")
NO_WORKSPACE = "/workspaces"


def page(path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`ui.page(path)` with the app's build timeout (`PAGE_BUILD_TIMEOUT_S`)."""
    return ui.page(path, response_timeout=PAGE_BUILD_TIMEOUT_S)


def notify_errors(handler: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T | None]]:
    """Wrap an event handler: a `CoreError` or `ExecutorError` becomes one notification saying what was wrong."""

    @functools.wraps(handler)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            return await handler(*args, **kwargs)
        except REPORTED as exc:
            ui.notify(str(exc), type="negative", multi_line=True, close_button=True)
            return None

    return wrapped


@dataclass
class PageView:
    """What a page builder gets: the services, the workspace context and its heading."""

    services: Services
    ctx: TenantContext
    heading: ui.label

    def can(self, role: Role) -> bool:
        """Whether the visitor's role reaches `role` (for showing or hiding what needs it)."""
        return self.ctx.role.rank >= role.rank

    @property
    def can_edit(self) -> bool:
        return self.can(Role.EDITOR)

    def action(
        self, handler: Callable[[TenantContext], Awaitable[Any]], role: Role = Role.VIEWER
    ) -> Callable[[], Awaitable[None]]:
        """An event handler that resolves the session again, checks `role` and reports a `CoreError`."""
        services = self.services

        async def run() -> None:
            ctx = await current_context(services, role)
            if ctx is None:
                return
            try:
                await handler(ctx)
            except REPORTED as exc:
                ui.notify(str(exc), type="negative", multi_line=True, close_button=True)

        return run

    async def fresh(self, role: Role = Role.VIEWER) -> TenantContext | None:
        """The context as of now, for handlers that report errors themselves (a form's submit); None after
        navigating to /login or saying the role is too low."""
        return await current_context(self.services, role)


def not_found_content(what: str = "page") -> None:
    """The body of the not-found page: what happened and the ways back."""
    with ui.column().classes("w-full items-center gap-3 py-12").props('data-testid="not-found"'):
        ui.icon("travel_explore", size="4rem").classes("text-primary")
        ui.label(f"This {what} does not exist, or it is not in your workspace.").classes("text-lg")
        ui.label("Check the address, or switch workspace from the menu at the top.").classes("text-slate-600")
        with ui.row().classes("gap-2"):
            ui.button("Go to flows", on_click=lambda: ui.navigate.to("/flows")).props('data-testid="not-found-home"')
            ui.button("Back", on_click=ui.navigate.back).props("outline")


def forbidden_content(role: Role, needed: Role) -> None:
    with ui.column().classes("w-full items-center gap-3 py-12").props('data-testid="forbidden"'):
        ui.icon("lock", size="4rem").classes("text-primary")
        ui.label(f"Your role '{role}' in this workspace cannot open this page; it needs '{needed}' or higher.")
        ui.label("Ask an owner or admin of the workspace to change your role.").classes("text-slate-600")


def _set_status(status: int) -> None:
    ui.context.client.status_code = status


def record_id(text: str) -> uuid.UUID:
    """A record id from a URL; a malformed one is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"no record with id {text[:60]!r}") from None


class Pages:
    """Registers the pages of one app against its services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def tenant_page(
        self, path: str, role: Role = Role.VIEWER, *, title: str, full_screen: bool = False
    ) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[Response | None]]]:
        """Register `build(page, **path_params)` as the page at `path`, open from `role` upwards
        (`full_screen`: the whole window below the header, as the flow editor wants)."""
        services = self.services

        def register(build: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[Response | None]]:
            params = list(inspect.signature(build).parameters.values())[1:]  # the path parameters

            async def page_builder(**kwargs: Any) -> Response | None:
                state = await current_state(services)
                if state is None:
                    return RedirectResponse(login_url(), status_code=303)
                if state.context is None:
                    return RedirectResponse(NO_WORKSPACE, status_code=303)
                ctx = state.context
                with frame(title, full_screen=full_screen) as heading:
                    if ctx.role.rank < role.rank:
                        _set_status(403)
                        forbidden_content(ctx.role, role)
                        return None
                    content = ui.column().classes("w-full gap-4 p-0" + (" h-full flex-nowrap" if full_screen else ""))
                    with content:
                        try:
                            await build(PageView(services, ctx, heading), **kwargs)
                        except NotFound:
                            content.clear()
                            with content:
                                _set_status(404)
                                not_found_content()
                return None

            page_builder.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
            page_builder.__name__ = build.__name__
            page_builder.__doc__ = build.__doc__
            page(path)(page_builder)
            return page_builder

        return register
