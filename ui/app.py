"""Register every page of the UI."""

from __future__ import annotations

from nicegui import app

from ui import oidc, sign_in
from ui.not_found import install_not_found
from ui.origin import OriginGuard
from ui.pages import (
    agents,
    api_keys,
    crews,
    flow_editor,
    flows,
    home,
    inbox,
    invite,
    login,
    members,
    providers,
    runs,
    signup,
    tasks,
    tools,
    traces,
    workspaces,
)
from ui.tenant_page import Pages
from ui.theme import serve_styles
from wiring.services import Services


def install_ui(services: Services) -> None:
    """Install the Origin guard and register every page on NiceGUI's app."""
    # Socket connections from other sites are refused (APP_BASE_URL, else the request's host, is this site).
    app.add_middleware(OriginGuard, allowed_origins=[services.settings.base_url])
    serve_styles()
    pages = Pages(services)
    sign_in.register()  # /auth/session: every sign-in ends there, under a fresh browser id
    home.register(pages)
    login.register(pages)
    oidc.register(services)  # /auth/oidc/* when OIDC_ISSUER and OIDC_CLIENT_ID are set
    signup.register(pages)
    invite.register(pages)
    workspaces.register(pages)  # and /tenants, its old address
    members.register(pages)
    api_keys.register(pages)
    tools.register(pages)
    providers.register(pages)
    # Workspace pages registered through `pages` (session, role and not-found handled once):
    agents.register(pages)
    tasks.register(pages)
    flows.register(pages)
    flow_editor.register(pages)
    runs.register(pages)
    traces.register(pages)  # /runs/{id}/trace
    inbox.register(pages)
    crews.register(pages)
    install_not_found(services)  # unknown addresses: the shell's not-found page
