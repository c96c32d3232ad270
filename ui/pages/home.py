"""Home: how to get in (signed out) or where to go next (signed in), and what this installation runs on.

The home page is the one page open to everyone; every other page sends a signed-out
visitor to /login. Signed in, it sits inside the shell (the navigation shows) and its
quick links follow the navigation's entries, so a page added there shows up here too.
"""

from __future__ import annotations

from nicegui import ui

from core.auth.sessions import SessionState
from ui.layout import NAV_SECTIONS, NavItem, frame
from ui.session import current_state
from ui.tenant_page import Pages, page
from wiring.services import Services

#: What each navigation entry is for, as the quick links say it.
PURPOSES: dict[str, str] = {
    "/flows": "Design workflows on the canvas and run them.",
    "/runs": "Every run of every flow: watch it live, retry, debug.",
    "/crews": "CrewAI crews: agents with ordered tasks, run and tested here.",
    "/agents": "Agents with a role, a goal, tools and a model.",
    "/tasks": "Tasks for your agents, with their expected output and context.",
    "/tools": "Python functions and shell commands your agents can call, tried in the sandbox.",
    "/providers": "The LLMs your agents call: keys kept encrypted, a fallback each, a Test button.",
    "/members": "Who works in this workspace, with which role; invite people.",
    "/api-keys": "Keys for programs that call the API in your name.",
    "/workspaces": "Your workspaces: open another one or create a new one.",
    "/api/docs": "Every route of the REST API; every action here has an API twin.",
}
API_REFERENCE = NavItem("API reference", "/api/docs", "menu_book")


def quick_links() -> list[NavItem]:
    """The navigation's entries in its order, then the API reference."""
    return [item for _, items in NAV_SECTIONS for item in items] + [API_REFERENCE]


def register(pages: Pages) -> None:
    services = pages.services

    @page("/")
    async def home() -> None:
        state = await current_state(services)  # also tells the shell whether to show the navigation
        with frame("Home"):
            ui.label("Design, run and watch multi-agent AI workflows.").classes("text-slate-600")
            if state is None:
                _signed_out()
            else:
                _signed_in(state)
            await _backends(services)


def _signed_out() -> None:
    with ui.card().classes("w-full").props('data-testid="home-signed-out"'):
        ui.label("Sign in to open your workspace, or create an account with a workspace of its own.")
        with ui.row().classes("gap-3"):
            ui.button("Sign in", on_click=lambda: ui.navigate.to("/login")).props('data-testid="home-sign-in"')
            ui.button("Create an account", on_click=lambda: ui.navigate.to("/signup")).props(
                'outline data-testid="home-sign-up"'
            )


def _signed_in(state: SessionState) -> None:
    name = state.user.display_name or state.user.email
    ui.label(f"Welcome, {name}.").classes("text-lg").props('data-testid="home-welcome"')
    ctx = state.context
    if ctx is None:
        with ui.card().classes("w-full").props('data-testid="home-no-workspace"'):
            ui.label("You belong to no workspace yet: create one, or open the invitation link you were sent.")
            ui.button("Create a workspace", on_click=lambda: ui.navigate.to("/workspaces")).props(
                'data-testid="home-create-workspace"'
            )
        return
    workspace = next((t.tenant_name for t in state.tenants if t.tenant_id == ctx.tenant_id), ctx.tenant_slug)
    with ui.card().classes("w-full"):
        with ui.row().classes("items-baseline gap-2"):
            ui.label(workspace).classes("text-xl font-medium").props('data-testid="home-workspace"')
            ui.label(f"{ctx.tenant_slug} · you are {ctx.role}").classes("text-sm text-slate-600").props(
                'data-testid="home-role"'
            )
        with (
            ui.element("div")
            .classes("w-full grid gap-3 sm:grid-cols-2 lg:grid-cols-3")
            .props('data-testid="quick-links"')
        ):
            for item in quick_links():
                _quick_link(item)


def _quick_link(item: NavItem) -> None:
    testid = "quick-" + item.target.strip("/").replace("/", "-")
    with ui.row().classes("items-start gap-3 no-wrap p-2"):
        ui.icon(item.icon, size="sm").classes("text-primary mt-1")
        with ui.column().classes("gap-0"):
            ui.link(item.label, item.target).classes("font-medium").props(f'data-testid="{testid}"')
            ui.label(PURPOSES.get(item.target, "")).classes("text-sm text-slate-600")


async def _backends(services: Services) -> None:
    report = await services.health()
    with ui.card().classes("w-full"):
        ui.label("Backends").classes("text-lg font-medium")
        with ui.grid(columns=2).classes("gap-x-8").props('data-testid="backends"'):
            for concern, backend in report["backends"].items():
                ui.label(concern.replace("_", " "))
                ui.label(backend).classes("font-mono")
        ui.label(f"Status: {report['status']}").classes("mt-2").props('data-testid="status"')
