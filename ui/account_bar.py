"""The header's right-hand side: workspace switcher, who is signed in, log out (or a sign-in link)."""

from __future__ import annotations

from nicegui import app, ui
from nicegui.events import ValueChangeEventArguments

from core.auth.sessions import SessionState
from ui.session import SERVICES_KEY, STATE_KEY, current_state, login_url, session_id, sign_out
from wiring.services import Services


def account_bar() -> None:
    """Render the account area for the state the page resolved (see `ui.session.current_state`)."""
    # Imported here: ui.tenant_page imports the layout, which imports this module.
    from ui.tenant_page import notify_errors

    state: SessionState | None = app.storage.client.get(STATE_KEY)
    services: Services | None = app.storage.client.get(SERVICES_KEY)
    if state is None or services is None:
        ui.link("Sign in", login_url()).classes("text-white no-underline").props('data-testid="sign-in-link"').style(
            "color: white"
        )
        return
    resolved = services

    @notify_errors
    async def switch(event: ValueChangeEventArguments) -> None:
        fresh = await current_state(resolved)  # re-check: the session may have ended meanwhile
        token = session_id()
        if fresh is None or token is None:
            ui.navigate.to(login_url())
            return
        if fresh.context is not None and event.value == fresh.context.tenant_slug:
            return
        await resolved.identity.sessions.switch(token, str(event.value))
        ui.navigate.reload()

    async def log_out() -> None:
        await sign_out(resolved)
        ui.navigate.to("/login")

    with ui.row().classes("items-center gap-3 no-wrap"):
        if state.tenants:
            options = {t.tenant_slug: f"{t.tenant_name} ({t.role})" for t in state.tenants}
            current = state.context.tenant_slug if state.context else None
            ui.select(options, value=current, label="Workspace", on_change=switch).props(
                'dense dark standout aria-label="Workspace" data-testid="workspace-switcher"'
            ).classes("min-w-48")
        else:
            ui.link("Create a workspace", "/workspaces").classes("text-white text-sm").props(
                'data-testid="account-create-workspace"'
            ).style("color: white")
        ui.label(state.user.email).classes("text-white text-sm max-sm:hidden").props('data-testid="signed-in-as"')
        ui.button("Log out", on_click=log_out).props('flat color=white data-testid="log-out"')
