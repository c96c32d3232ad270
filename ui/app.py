"""Register every page of the UI."""

from __future__ import annotations

from nicegui import app

from ui import oidc, sign_in
from ui.origin import OriginGuard
from ui.pages import api_keys, home, invite, login, members, providers, signup, tenants, tools
from wiring.services import Services


def install_ui(services: Services) -> None:
    """Install the Origin guard and register every page on NiceGUI's app."""
    # Socket connections from other sites are refused (APP_BASE_URL, else the request's host, is this site).
    app.add_middleware(OriginGuard, allowed_origins=[services.settings.base_url])
    sign_in.register()  # /auth/session: every sign-in ends there, under a fresh browser id
    home.register(services)
    login.register(services)
    oidc.register(services)  # /auth/oidc/* when OIDC_ISSUER and OIDC_CLIENT_ID are set
    signup.register(services)
    invite.register(services)
    tenants.register(services)
    members.register(services)
    api_keys.register(services)
    tools.register(services)
    providers.register(services)
