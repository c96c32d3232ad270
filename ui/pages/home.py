"""Home: where to go next (signed in) or how to get in (signed out), and what this installation runs on.

The home page is the one page open to everyone; every other page sends a signed-out
visitor to /login.
"""

from __future__ import annotations

from nicegui import ui

from core.auth.sessions import SessionState
from core.context import Role
from ui.layout import frame
from ui.session import current_state
from wiring.services import Services

# (label, target, what it is for, the role it needs)
QUICK_LINKS: list[tuple[str, str, str, Role]] = [
    ("Tools", "/tools", "Python functions and shell commands your agents can call, tried in the sandbox.", Role.VIEWER),
    (
        "Providers",
        "/providers",
        "The LLMs your agents call: keys kept encrypted, a fallback each, a Test button.",
        Role.VIEWER,
    ),
    ("Members", "/members", "Who works in this tenant, with which role; invite people.", Role.VIEWER),
    ("API keys", "/api-keys", "Keys for programs that call the API in your name.", Role.VIEWER),
    ("Tenants", "/tenants", "Your tenants: open another one or create a new one.", Role.VIEWER),
    ("API reference", "/api/docs", "Every route of the REST API; every action here has an API twin.", Role.VIEWER),
]


def register(services: Services) -> None:
    @ui.page("/")
    async def home() -> None:
        state = await current_state(services)
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
        with ui.card().classes("w-full").props('data-testid="home-no-tenant"'):
            ui.label("You belong to no tenant yet: create one, or open the invitation link you were sent.")
            ui.button("Create a tenant", on_click=lambda: ui.navigate.to("/tenants"))
        return
    tenant_name = next((t.tenant_name for t in state.tenants if t.tenant_id == ctx.tenant_id), ctx.tenant_slug)
    with ui.card().classes("w-full"):
        with ui.row().classes("items-baseline gap-2"):
            ui.label(tenant_name).classes("text-xl font-medium").props('data-testid="home-tenant"')
            ui.label(f"{ctx.tenant_slug} · you are {ctx.role}").classes("text-sm text-slate-500").props(
                'data-testid="home-role"'
            )
        with ui.grid(columns=2).classes("w-full gap-3"):
            for label, target, purpose, needed in QUICK_LINKS:
                if ctx.role.rank < needed.rank:
                    continue
                with ui.column().classes("gap-0"):
                    ui.link(label, target).classes("font-medium").props(
                        f'data-testid="quick-{target.strip("/") or "home"}"'
                    )
                    ui.label(purpose).classes("text-sm text-slate-600")


async def _backends(services: Services) -> None:
    report = await services.health()
    with ui.card().classes("w-full"):
        ui.label("Backends").classes("text-lg font-medium")
        with ui.grid(columns=2).classes("gap-x-8").props('data-testid="backends"'):
            for concern, backend in report["backends"].items():
                ui.label(concern.replace("_", " "))
                ui.label(backend).classes("font-mono")
        ui.label(f"Status: {report['status']}").classes("mt-2").props('data-testid="status"')
